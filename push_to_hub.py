#!/usr/bin/env python
"""Share a DEMS-ViT checkpoint on the Hugging Face Hub so that it loads on machines without this project.

The folder is built by dems_training/hub_export.py through transformers' own remote-code path (`save_pretrained`
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
import os
import sys
import tempfile
from pathlib import Path

from dems_training.hub_export import (
    PushError,
    apply_labels,
    build_folder,
    card_summary,
    check_local_dir,
    load_source,
    one_line,
    upload,
    verify_folder,
    write_local_dir,
)


# ----------------------------------------------------------------------------------------------------- arguments


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="a save_pretrained folder (e.g. a train.py output) or a reference .pth file")
    hub = parser.add_argument_group("Hub")
    hub.add_argument("--repo_id", help="target repository, e.g. me/dems-tiny-cifar100")
    hub.add_argument("--private", action="store_true", help="create the repository as private")
    hub.add_argument("--revision", help="branch to commit to (created from main when missing)")
    hub.add_argument("--commit_message", default="Upload DEMS-ViT model", help="default: %(default)r")
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
    card.add_argument("--labels", help="class names: a JSON list, a text file (one per line) or comma-separated")
    card.add_argument("--dataset", help="Hub data set id the model was trained on, e.g. uoft-cs/cifar100")
    card.add_argument("--results", help="a metrics JSON file (default: the source folder's *_results.json)")
    card.add_argument("--model_name", help="title of the card (default: the repository or source name)")
    card.add_argument("--base_model", help="Hub id of the checkpoint this model was fine-tuned from")
    card.add_argument("--license", default="apache-2.0", help="license of the weights (default: %(default)s)")
    return parser.parse_args(argv)


def check_args(args: argparse.Namespace) -> None:
    """Argument combinations that cannot work, refused before anything is loaded."""
    if not args.repo_id and not args.local_dir and not args.dry_run:
        raise PushError("give --repo_id to upload, or --local_dir / --dry_run to build the folder without uploading")
    if args.repo_id:
        from huggingface_hub.utils import HFValidationError, validate_repo_id

        try:
            validate_repo_id(args.repo_id)
        except HFValidationError as error:
            raise PushError(f"--repo_id {args.repo_id!r} is not a valid repository id: {one_line(error)}") from error
    if args.preset is not None:
        from configuration_dems import DEMS_PRESETS

        if args.preset not in DEMS_PRESETS:
            raise PushError(f"unknown preset {args.preset!r}; choose one of: {', '.join(sorted(DEMS_PRESETS))}")
    if args.num_labels is not None and args.num_labels < 1:
        raise PushError(f"--num_labels={args.num_labels} must be a positive integer")
    if args.results and not os.path.isfile(args.results):
        raise PushError(f"--results {args.results} is not a file")
    if args.processor and not os.path.isfile(os.path.join(args.processor, "preprocessor_config.json")):
        raise PushError(f"--processor {args.processor} is not a folder with a preprocessor_config.json")


# ------------------------------------------------------------------------------------------------------ upload


def resolve_token() -> str | None:
    from huggingface_hub import get_token

    return get_token()


# -------------------------------------------------------------------------------------------------------- main


def run(args: argparse.Namespace) -> None:
    check_args(args)
    local_dir = Path(args.local_dir) if args.local_dir else None
    if local_dir is not None:
        check_local_dir(local_dir, Path(args.source), args.overwrite)
    uploading = not (local_dir or args.dry_run)
    # Looked up before the (slow) export so that a missing login fails at once.
    token = resolve_token() if uploading else None
    if uploading and not token:
        raise PushError(
            "no Hugging Face token: set HF_TOKEN or run `hf auth login` (or use --local_dir / --dry_run to only "
            "build the folder); nothing was uploaded"
        )
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the listing below is the output; per-tensor bars only hide it
    source = load_source(Path(args.source), args.preset, args.num_labels, args.image_mean, args.image_std)
    if args.processor:
        from modeling_dems import DemsImageProcessor

        source.processor = DemsImageProcessor.from_pretrained(args.processor)
    apply_labels(source.model, args.labels)
    summary = card_summary(source, args.dataset, args.results, args.base_model)
    model_name = args.model_name or (args.repo_id.split("/")[-1] if args.repo_id else source.name)
    parent = local_dir.resolve().parent if local_dir else None
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    # Built in a fresh directory (next to --local_dir so the final move is a rename) and only moved into place
    # once complete and verified: a failure leaves an existing --local_dir untouched.
    with tempfile.TemporaryDirectory(prefix=".dems-export-", dir=parent) as tmp:
        staging = Path(tmp) / "repo"
        staging.mkdir()
        names = build_folder(
            source, staging, summary, model_name=model_name, repo_id=args.repo_id, license=args.license
        )
        verify_folder(source, staging)
        listing = "\n".join(f"  {n}  ({(staging / n).stat().st_size:,} bytes)" for n in names)
        if uploading:
            url = upload(
                staging, args.repo_id, token, args.private, args.revision, args.commit_message, args.create_pr
            )
            print(f"uploaded {len(names)} files to {args.repo_id}: {url}\n{listing}")
        elif local_dir is not None:
            write_local_dir(staging, local_dir)
            print(f"wrote {len(names)} files to {local_dir} (nothing uploaded)\n{listing}")
        else:
            print(f"dry run: would upload {len(names)} files to {args.repo_id or '<repo_id>'} (nothing uploaded)")
            print(listing)
            if args.repo_id and not resolve_token():
                print("note: no Hugging Face token found; set HF_TOKEN or run `hf auth login` before uploading")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except PushError as error:
        print(f"push_to_hub.py: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
