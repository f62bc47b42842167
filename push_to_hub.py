#!/usr/bin/env python
"""Share a DEMS-ViT checkpoint on the Hugging Face Hub so that it loads on machines without this project.

The folder is built by dems_training/hub/export.py through transformers' own remote-code path (`save_pretrained`
writes the weights, the configs with `auto_map` and the configuration, modeling and image-processing files), with
the model card rendered from train.py's run summary, the metrics files and the TensorBoard traces. Anyone can then
run `AutoModelForImageClassification.from_pretrained(repo_id, trust_remote_code=True)`.

Examples:

    # a train.py / save_pretrained output folder
    python push_to_hub.py outputs/dems-tiny-cifar100 --repo_id me/dems-tiny-cifar100
    # a reference .pth checkpoint (preset inferred from the weights when not given)
    python push_to_hub.py checkpoint.pth --preset tiny-32 --num_labels 100 --dataset uoft-cs/cifar100 --repo_id me/x
    # write the folder that would be uploaded, upload nothing
    python push_to_hub.py outputs/dems-tiny-cifar100 --local_dir exported/ --repo_id me/dems-tiny-cifar100
    python push_to_hub.py outputs/dems-tiny-cifar100 --repo_id me/dems-tiny-cifar100 --dry_run

The token comes from the environment (`HF_TOKEN`) or the cached login (`hf auth login`); it is never printed or
written anywhere by this script.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

from dems_training import UserInputError, run_command
from dems_training.hub.export import (
    HubError,
    build_folder,
    card_summary,
    check_local_dir,
    staging_parent,
    upload,
    verify_folder,
    write_local_dir,
)
from dems_training.hub.source import (
    apply_labels,
    check_processor_fits,
    load_processor,
    load_source,
    one_line,
    read_labels,
)


PROG = "push_to_hub.py"
DEFAULT_COMMIT_MESSAGE = "Upload DEMS-ViT model"
# Exit code of a failure of the Hub itself (unreachable, a refused request); a user error exits with 2.
HUB_ERROR_EXIT_CODE = 1
# What an upload uses and --local_dir (which uploads nothing) would silently ignore.
UPLOAD_OPTIONS = ("private", "revision", "commit_message", "create_pr")
# Options that take text: an empty value ("--revision ''", an unset shell variable) is refused rather than read as
# "not given".
TEXT_OPTIONS = (
    "repo_id", "revision", "commit_message", "local_dir", "preset", "processor", "labels", "dataset", "results",
    "model_name", "base_model", "license",
)  # fmt: skip


# ----------------------------------------------------------------------------------------------------- arguments


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("source", help="a save_pretrained folder (e.g. a train.py output) or a reference .pth file")
    hub = parser.add_argument_group("Hub")
    hub.add_argument("--repo_id", help="target repository, e.g. me/dems-tiny-cifar100")
    hub.add_argument("--private", action="store_true", help="create the repository as private")
    hub.add_argument("--revision", help="branch to commit to (created from main when missing)")
    hub.add_argument("--commit_message", help=f"default: {DEFAULT_COMMIT_MESSAGE!r}")
    hub.add_argument("--create_pr", action="store_true", help="open a pull request instead of committing")
    local = parser.add_argument_group("local export (uploads nothing)")
    local.add_argument("--local_dir", help="write the repository folder here and upload nothing")
    local.add_argument("--dry_run", action="store_true", help="build the folder, list it, upload nothing")
    local.add_argument("--overwrite", action="store_true", help="replace the contents of a non-empty --local_dir")
    pth = parser.add_argument_group(".pth input")
    pth.add_argument("--preset", help="tiny-32, tiny-256, small-32 or small-256 (inferred when omitted)")
    pth.add_argument("--num_labels", type=int, help="number of classes (inferred from the head when omitted)")
    pth.add_argument("--image_mean", type=float, nargs="+", help="normalisation mean (default ImageNet's)")
    pth.add_argument("--image_std", type=float, nargs="+", help="normalisation std (default ImageNet's)")
    parser.add_argument(
        "--processor",
        help="a folder whose preprocessor_config.json replaces the source's (e.g. a Caltech101 resize + crop)",
    )
    card = parser.add_argument_group("labels and model card")
    card.add_argument(
        "--labels",
        help="class names, one per class of the model: a JSON file (a list, or {\"0\": name, ...}), a text file "
        "(one per line), a JSON list or comma-separated",
    )
    card.add_argument("--dataset", help="Hub data set id the model was trained on, e.g. uoft-cs/cifar100")
    card.add_argument("--results", help="a metrics JSON file (default: the source folder's *_results.json)")
    card.add_argument("--model_name", help="title of the card (default: the repository or source name)")
    card.add_argument("--base_model", help="Hub id of the checkpoint this model was fine-tuned from")
    card.add_argument(
        "--license",
        help="license of the weights (default: cc-by-nc-4.0 for a reference .pth, the reference release's license; "
        "for fine-tuned weights, the license of the weights they started from, when the run summary or the "
        "--base_model card tells it; else apache-2.0, for weights trained by this project)",
    )
    return parser.parse_args(argv)


def check_args(args: argparse.Namespace) -> None:
    """Options that cannot work, alone or together, refused before anything is loaded or written."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    for option in TEXT_OPTIONS:
        value = getattr(args, option)
        if value is not None and not value.strip():
            raise UserInputError(f"--{option} {value!r} is empty; give a value or leave the option out")
    if not Path(args.source).exists():
        raise UserInputError(
            f"source {args.source} does not exist; give a save_pretrained folder or a reference .pth file"
        )
    if not args.repo_id and not args.local_dir and not args.dry_run:
        raise UserInputError(
            "give --repo_id to upload, or --local_dir / --dry_run to build the folder without uploading"
        )
    if args.local_dir and args.dry_run:
        raise UserInputError(
            f"--dry_run writes nothing, --local_dir {args.local_dir} writes the folder there: give one of them"
        )
    if args.local_dir:
        given = [f"--{option}" for option in UPLOAD_OPTIONS if getattr(args, option) not in (None, False)]
        if given:
            raise UserInputError(
                f"{', '.join(given)} apply to an upload, and --local_dir {args.local_dir} uploads nothing; leave "
                f"{'them' if len(given) > 1 else 'it'} out (or use --dry_run to rehearse the upload)"
            )
    for option in ("repo_id", "base_model"):
        value = getattr(args, option)
        if value:
            try:
                validate_repo_id(value)
            except HFValidationError as error:
                raise UserInputError(f"--{option} {value!r} is not a valid repository id: {one_line(error)}") from None
    if args.license is not None and len(args.license.split()) != 1:
        raise UserInputError(f"--license {args.license!r} is not a license id such as apache-2.0, mit or other")
    if args.preset is not None:
        from configuration_dems import DEMS_PRESETS

        if args.preset not in DEMS_PRESETS:
            choices = ", ".join(sorted(DEMS_PRESETS))
            raise UserInputError(f"--preset: unknown preset {args.preset!r}; choose one of: {choices}")
    if args.num_labels is not None and args.num_labels < 1:
        raise UserInputError(f"--num_labels={args.num_labels} must be a positive integer")
    for option in ("image_mean", "image_std"):
        values = getattr(args, option)
        if values is not None and not all(math.isfinite(v) for v in values):
            raise UserInputError(f"--{option} {' '.join(map(str, values))}: every value must be a finite number")
    if args.image_std is not None and min(args.image_std) <= 0:
        raise UserInputError(
            f"--image_std {' '.join(map(str, args.image_std))}: every value must be positive (pixels are divided by it)"
        )
    if args.results:
        results = Path(args.results)
        if not results.exists():
            raise UserInputError(f"--results {args.results} does not exist; give a metrics JSON file")
        if not results.is_file():
            raise UserInputError(f"--results {args.results} is not a file; give a metrics JSON file")
    if args.processor:
        processor = Path(args.processor)
        if not processor.exists():
            raise UserInputError(
                f"--processor {args.processor} does not exist; give a folder with a preprocessor_config.json"
            )
        if not processor.is_dir():
            raise UserInputError(
                f"--processor {args.processor} is a file; give the folder that holds a preprocessor_config.json"
            )
        if not (processor / "preprocessor_config.json").is_file():
            raise UserInputError(f"--processor {args.processor} is not a folder with a preprocessor_config.json")
        if args.image_mean is not None or args.image_std is not None:
            raise UserInputError(
                f"--image_mean / --image_std would be overridden by --processor {args.processor}'s normalisation; "
                "give one or the other"
            )


# ------------------------------------------------------------------------------------------------------ upload


def resolve_token() -> str | None:
    from huggingface_hub import get_token

    return get_token()


# -------------------------------------------------------------------------------------------------------- main


def run(args: argparse.Namespace) -> None:
    check_args(args)
    local_dir = Path(args.local_dir) if args.local_dir else None
    if local_dir is not None:
        inputs = {"--labels": args.labels, "--results": args.results, "--processor": args.processor}
        check_local_dir(local_dir, Path(args.source), args.overwrite, inputs)
    names = read_labels(args.labels) if args.labels else None  # before the (slow) load: a bad file fails at once
    uploading = not (local_dir or args.dry_run)
    # Looked up before the (slow) export so that a missing login fails at once.
    token = resolve_token() if uploading else None
    if uploading and not token:
        raise UserInputError(
            "no Hugging Face token: set HF_TOKEN or run `hf auth login` (or use --local_dir / --dry_run to only "
            "build the folder); nothing was uploaded"
        )
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the listing below is the output; per-tensor bars only hide it
    source = load_source(Path(args.source), args.preset, args.num_labels, args.image_mean, args.image_std)
    if args.processor:
        source.processor = load_processor(Path(args.processor), "--processor")
        origin = f"--processor {args.processor}"
    elif source.folder is not None and (source.folder / "preprocessor_config.json").is_file():
        origin = f"{source.folder / 'preprocessor_config.json'}"
    else:
        origin = "the image processor built for the checkpoint (--image_mean / --image_std)"
    check_processor_fits(source.model, source.processor, origin)
    apply_labels(source.model, names, args.labels)
    summary = card_summary(source, args.dataset, args.results, args.base_model)
    model_name = args.model_name or (args.repo_id.split("/")[-1] if args.repo_id else source.name)
    # Built in a fresh directory (next to --local_dir so the final move is a rename) and only moved into place
    # once complete and verified: a failure leaves an existing --local_dir untouched.
    try:
        workspace = tempfile.TemporaryDirectory(
            prefix=".dems-export-", dir=staging_parent(local_dir) if local_dir else None
        )
    except OSError as error:
        raise UserInputError(f"cannot write next to --local_dir {local_dir}: {one_line(error)}") from None
    with workspace as tmp:
        staging = Path(tmp) / "repo"
        staging.mkdir()
        files = build_folder(
            source, staging, summary, model_name=model_name, repo_id=args.repo_id, license=args.license
        )
        verify_folder(source, staging)
        listing = "\n".join(f"  {n}  ({(staging / n).stat().st_size:,} bytes)" for n in files)
        if uploading:
            url = upload(
                staging,
                args.repo_id,
                token,
                args.private,
                args.revision,
                args.commit_message or DEFAULT_COMMIT_MESSAGE,
                args.create_pr,
            )
            print(f"uploaded {len(files)} files to {args.repo_id}: {url}\n{listing}")
        elif local_dir is not None:
            write_local_dir(staging, local_dir)
            print(f"wrote {len(files)} files to {local_dir} (nothing uploaded)\n{listing}")
        else:
            print(f"dry run: would upload {len(files)} files to {args.repo_id or '<repo_id>'} (nothing uploaded)")
            print(listing)
            if args.repo_id and not resolve_token():
                print("note: no Hugging Face token found; set HF_TOKEN or run `hf auth login` before uploading")


def main(argv: list[str] | None = None) -> int:
    """0 on success; 2 after a user error (one line on stderr, as every command of the project); 1 when the Hub
    fails (one line too). Anything else is a bug and keeps its traceback."""
    return run_command(lambda arguments: run(parse_args(arguments)), PROG, argv, {HubError: HUB_ERROR_EXIT_CODE})


if __name__ == "__main__":
    sys.exit(main())
