#!/usr/bin/env python
"""Share a DEMS-ViT checkpoint on the Hugging Face Hub so that it loads on machines without this project.

The repository folder it builds holds the weights (`model.safetensors`), `config.json` and
`preprocessor_config.json` with `auto_map` entries, the project's own configuration, modeling and image-processing
source files (copied from the installed project at export time, so they cannot drift), and a model card.
Anyone can then run `AutoModelForImageClassification.from_pretrained(repo_id, trust_remote_code=True)`.

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
import importlib
import json
import os
import pickle
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path


WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
# Top-level packages of this project: remote code that imports them (outside a try block) breaks where the
# project is not installed.
PROJECT_PACKAGES = ("configuration_dems", "modeling_dems", "dems_training")
MODEL_TYPE = "dems"


class PushError(Exception):
    """A problem the user can fix; main() prints it as one line and exits with status 1."""


@dataclass
class Source:
    """What was loaded: the model, its processor and what the card can say about it."""

    model: object
    processor: object
    name: str
    folder: Path | None = None  # set for a save_pretrained folder, None for a .pth
    results: dict | None = None
    card_meta: dict = field(default_factory=dict)


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
            raise PushError(f"--repo_id {args.repo_id!r} is not a valid repository id: {_one_line(error)}") from error
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


# ------------------------------------------------------------------------------------------------------ loading


def load_source(args: argparse.Namespace) -> Source:
    path = Path(args.source)
    if not path.exists():
        raise PushError(f"{path} does not exist")
    if path.is_dir():
        if args.preset or args.num_labels or args.image_mean or args.image_std:
            raise PushError(
                "--preset, --num_labels, --image_mean and --image_std apply to a .pth checkpoint only; a "
                "save_pretrained folder carries its own config and preprocessor_config.json"
            )
        return load_folder(path)
    if path.suffix in (".pth", ".pt"):
        return load_reference(path, args)
    raise PushError(f"{path} is neither a save_pretrained folder nor a reference .pth checkpoint")


def load_folder(folder: Path) -> Source:
    """A save_pretrained folder: checked by hand first, so that a wrong folder gets a precise message rather than
    a loader traceback."""
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise PushError(f"{folder} has no config.json: not a save_pretrained model folder")
    try:
        model_type = json.loads(config_file.read_text(encoding="utf-8")).get("model_type")
    except (json.JSONDecodeError, AttributeError) as error:
        raise PushError(f"{config_file} is not a JSON object: {_one_line(error)}") from error
    if model_type != MODEL_TYPE:
        raise PushError(
            f"{config_file} is the config of a {model_type!r} model, not a DEMS-ViT ({MODEL_TYPE!r}) one; this "
            "script exports DEMS-ViT checkpoints only"
        )
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        # A run stopped before its final save still has Trainer checkpoints: point at them.
        checkpoints = sorted(p.name for p in folder.glob("checkpoint-*") if p.is_dir())
        hint = f"; pass one of its checkpoint folders instead ({', '.join(checkpoints[-3:])})" if checkpoints else ""
        raise PushError(f"{folder} has no model weights (none of {', '.join(WEIGHT_FILES)}){hint}")

    from modeling_dems import DemsForImageClassification, DemsImageProcessor

    try:
        model, info = DemsForImageClassification.from_pretrained(folder, output_loading_info=True)
    except (ValueError, OSError) as error:  # an invalid DemsConfig, unreadable or mis-shaped weights
        raise PushError(f"cannot load the model in {folder}: {_one_line(error)}") from error
    if info.get("missing_keys"):
        missing = sorted(info["missing_keys"])
        raise PushError(
            f"the weights in {folder} lack {len(missing)} tensors of DemsForImageClassification (e.g. "
            f"{missing[0]}); is it a checkpoint of another model, or a DemsModel without its classification head?"
        )
    if (folder / "preprocessor_config.json").is_file():
        processor = DemsImageProcessor.from_pretrained(folder)
    else:
        processor = processor_for(model.config)
    return Source(
        model=model,
        processor=processor,
        name=folder.resolve().name,
        folder=folder,
        results=_read_results(folder),
        card_meta=_existing_card_meta(folder),
    )


def load_reference(path: Path, args: argparse.Namespace) -> Source:
    """A reference release checkpoint, through the project's converter."""
    from modeling_dems.convert import load_reference_checkpoint

    try:
        model = load_reference_checkpoint(str(path), preset=args.preset, num_labels=args.num_labels)
    except (ValueError, KeyError) as error:  # ReferenceCheckpointError is a ValueError
        raise PushError(f"cannot convert {path}: {_one_line(error)}") from error
    except (RuntimeError, EOFError, pickle.UnpicklingError) as error:  # torch.load on a damaged or foreign file
        raise PushError(f"cannot read {path} as a PyTorch checkpoint: {_one_line(error)}") from error
    processor = processor_for(model.config, image_mean=args.image_mean, image_std=args.image_std)
    return Source(model=model, processor=processor, name=path.stem)


def processor_for(config, image_mean=None, image_std=None):
    """The evaluation transform of the reference (resize to the training size, bicubic; normalise)."""
    from modeling_dems import DemsImageProcessor

    normalisation = {"image_mean": image_mean, "image_std": image_std}
    return DemsImageProcessor.from_model_config(config, **{k: v for k, v in normalisation.items() if v is not None})


def apply_labels(model, spec: str | None) -> None:
    """Set id2label / label2id from --labels; their number must match the classifier."""
    if not spec:
        return
    names = _parse_labels(spec)
    if len(names) != model.config.num_labels:
        raise PushError(f"--labels gives {len(names)} names but the model has {model.config.num_labels} classes")
    model.config.id2label = dict(enumerate(names))
    model.config.label2id = {name: i for i, name in enumerate(names)}


def _parse_labels(spec: str) -> list[str]:
    if os.path.isfile(spec):
        text = Path(spec).read_text(encoding="utf-8")
        if spec.endswith(".json"):
            return [str(name) for name in json.loads(text)]
        return [line.strip() for line in text.splitlines() if line.strip()]
    if spec.lstrip().startswith("["):
        return [str(name) for name in json.loads(spec)]
    return [name.strip() for name in spec.split(",")]


def _read_results(folder: Path) -> dict | None:
    from modeling_dems.model_card import read_results

    return read_results(folder)


def _existing_card_meta(folder: Path) -> dict:
    """What a card already in the folder (train.py writes one) says that the checkpoint does not: data set, base
    model, training recipe. The card is rendered again rather than copied so that it names the target repo."""
    readme = folder / "README.md"
    if not readme.is_file():
        return {}
    from modeling_dems.model_card import read_card_inputs

    try:
        return read_card_inputs(readme)
    except Exception:  # a hand-written README without valid metadata: nothing to reuse
        return {}


# ------------------------------------------------------------------------------------------------- remote code


def remote_code_classes() -> dict[str, type]:
    """Auto class -> project class that the exported folder maps it to."""
    from modeling_dems import DemsConfig, DemsForImageClassification, DemsImageProcessor, DemsModel

    return {
        "AutoConfig": DemsConfig,
        "AutoModel": DemsModel,
        "AutoModelForImageClassification": DemsForImageClassification,
        "AutoImageProcessor": DemsImageProcessor,
    }


def remote_code_files(classes: dict[str, type]) -> dict[str, Path]:
    """The project source files to ship, by file name: the modules defining `classes` plus, recursively, what they
    import relatively (transformers' loader fetches those from next to the importing file). Raises if the set is
    not self-contained."""
    from transformers.dynamic_module_utils import get_relative_imports

    files: dict[str, Path] = {}
    for cls in classes.values():
        _add_source(files, Path(sys.modules[cls.__module__].__file__))
    pending = list(files.values())
    while pending:
        source = pending.pop()
        for name in get_relative_imports(source):
            if f"{name}.py" in files:
                continue
            sibling = source.parent / f"{name}.py"
            if not sibling.is_file():
                raise PushError(
                    f"remote code is not self-contained: {source.name} imports .{name}, which is neither one of "
                    f"the exported files ({', '.join(sorted(files))}) nor next to it"
                )
            _add_source(files, sibling)
            pending.append(sibling)
    for path in files.values():
        _check_no_project_imports(path)
    return files


def _add_source(files: dict[str, Path], path: Path) -> None:
    known = files.get(path.name)
    if known is not None and known.resolve() != path.resolve():
        raise PushError(f"two source files are both named {path.name} ({known} and {path}); the Hub folder is flat")
    files[path.name] = path


def _check_no_project_imports(path: Path) -> None:
    # get_imports is what check_imports runs on the user's machine: it skips try blocks, so the
    # `try: from .x import ... except ImportError: from project import ...` fallback passes, a bare import does not.
    from transformers.dynamic_module_utils import get_imports

    bad = sorted(set(get_imports(path)) & set(PROJECT_PACKAGES))
    if bad:
        raise PushError(
            f"{path} imports the project package(s) {', '.join(bad)} outside a try block; as remote code it would "
            "fail wherever the project is not installed"
        )


def auto_map_for(classes: dict[str, type]) -> dict[str, str]:
    return {auto: f"{Path(sys.modules[cls.__module__].__file__).stem}.{cls.__name__}" for auto, cls in classes.items()}


# ------------------------------------------------------------------------------------------------------ export


def build_folder(source: Source, args: argparse.Namespace, out: Path) -> list[str]:
    """Write the repository folder into the empty directory `out`; returns the file names."""
    classes = remote_code_classes()
    code_files = remote_code_files(classes)
    auto_map = auto_map_for(classes)
    # The weights and configs are written by transformers itself, so they load exactly as any save_pretrained
    # output; the auto_map is added afterwards because custom_object_save would look for the relative imports
    # next to modeling_dems.py in the project, where configuration_dems.py does not live.
    source.model.save_pretrained(out)
    source.processor.save_pretrained(out)
    model_auto_map = {k: v for k, v in auto_map.items() if k != "AutoImageProcessor"}
    _add_auto_map(out / "config.json", model_auto_map)
    _add_auto_map(out / "preprocessor_config.json", {"AutoImageProcessor": auto_map["AutoImageProcessor"]})
    for name, path in code_files.items():
        shutil.copyfile(path, out / name)
    if source.folder is not None:
        from modeling_dems.model_card import RESULT_FILES

        # Trainer's save_metrics files travel with the weights, as Trainer.push_to_hub does, so that the card's
        # numbers have their source next to them.
        for name in RESULT_FILES:
            if (source.folder / name).is_file():
                shutil.copyfile(source.folder / name, out / name)
    (out / "README.md").write_text(render_card(source, args), encoding="utf-8")
    return sorted(p.name for p in out.iterdir())


def _add_auto_map(json_file: Path, auto_map: dict[str, str]) -> None:
    data = json.loads(json_file.read_text(encoding="utf-8"))
    data["auto_map"] = auto_map
    json_file.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def render_card(source: Source, args: argparse.Namespace) -> str:
    from modeling_dems.model_card import render_model_card

    results = source.results
    if args.results:
        results = json.loads(Path(args.results).read_text(encoding="utf-8"))
    model_name = args.model_name or (args.repo_id.split("/")[-1] if args.repo_id else source.name)
    return render_model_card(
        model_name=model_name,
        dataset=args.dataset or source.card_meta.get("dataset"),
        recipe=source.card_meta.get("recipe"),
        results=results,
        config=source.model.config,
        repo_id=args.repo_id,
        license=args.license,
        base_model=args.base_model or source.card_meta.get("base_model"),
        num_parameters=sum(p.numel() for p in source.model.parameters()),
    )


def verify_folder(source: Source, out: Path) -> None:
    """Reload the written folder and compare every tensor with the model in memory: catches weights that did not
    make it to disk (tied, renamed or dropped tensors) before anything is shared. Tensors, not logits, so that any
    dtype works on any device."""
    import torch

    from modeling_dems import DemsForImageClassification

    expected = source.model.state_dict()
    got = DemsForImageClassification.from_pretrained(out, dtype=source.model.dtype).state_dict()
    if set(got) != set(expected):
        raise PushError(f"the exported folder holds other tensors than the model: {sorted(set(got) ^ set(expected))}")
    differing = [k for k, v in expected.items() if not torch.equal(v.cpu(), got[k].cpu())]
    if differing:
        raise PushError(f"the exported weights differ from the model's: {differing[:5]}")


def write_local_dir(staging: Path, local_dir: Path) -> None:
    """Move the finished folder into place, replacing `local_dir` (already checked empty or --overwrite)."""
    if local_dir.exists():
        shutil.rmtree(local_dir)
    local_dir.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(staging), str(local_dir))


def check_local_dir(local_dir: Path, source: Path, overwrite: bool) -> None:
    if local_dir.exists() and not local_dir.is_dir():
        raise PushError(f"--local_dir {local_dir} exists and is not a directory")
    resolved, src = local_dir.resolve(), source.resolve()
    if resolved == src or resolved in src.parents:
        raise PushError(f"--local_dir {local_dir} holds the source {source}; choose another folder")
    if local_dir.is_dir() and any(local_dir.iterdir()) and not overwrite:
        raise PushError(f"--local_dir {local_dir} is not empty; pass --overwrite to replace its contents")


# ------------------------------------------------------------------------------------------------------ upload


def resolve_token() -> str | None:
    from huggingface_hub import get_token

    return get_token()


def _network_errors() -> tuple[type[BaseException], ...]:
    """Transport-level failures (no connection, DNS, timeout, offline mode) across huggingface_hub's HTTP
    backends: httpx2/httpx in recent releases, requests in older ones."""
    errors: list[type[BaseException]] = [OSError, TimeoutError]  # OfflineModeIsEnabled is a ConnectionError
    for module, name in (("httpx2", "TransportError"), ("httpx", "TransportError"), ("requests", "RequestException")):
        try:
            errors.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


def upload(folder: Path, args: argparse.Namespace, token: str) -> str:
    """create_repo + upload_folder; upload_folder is a single commit, so a failure leaves nothing half-uploaded."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(token=token)
    step = "create the repository"
    try:
        api.create_repo(args.repo_id, private=args.private or None, exist_ok=True)
        if args.revision and args.revision != "main":
            step = f"create the branch {args.revision}"
            api.create_branch(args.repo_id, branch=args.revision, exist_ok=True)
        step = "upload the files"
        info = api.upload_folder(
            repo_id=args.repo_id,
            folder_path=str(folder),
            commit_message=args.commit_message,
            revision=args.revision,
            create_pr=args.create_pr or None,
        )
    except HfHubHTTPError as error:
        status = getattr(getattr(error, "response", None), "status_code", None)
        hint = " (check that your token has write access to it)" if status in (401, 403) else ""
        raise PushError(
            f"the Hub refused to {step} for {args.repo_id}{hint}: {_one_line(error, token)}; {_not_done(step, args)}"
        ) from error
    except _network_errors() as error:
        raise PushError(
            f"could not reach the Hugging Face Hub at {api.endpoint} to {step} "
            f"({type(error).__name__}: {_one_line(error, token)}); {_not_done(step, args)}"
        ) from error
    return getattr(info, "pr_url", None) or getattr(info, "commit_url", None) or str(info)


def _not_done(step: str, args: argparse.Namespace) -> str:
    # Only create_repo may have taken effect before a failure; the files go in one commit or not at all.
    if step == "create the repository":
        return "nothing was uploaded"
    return f"the repository {args.repo_id} may exist now, but nothing was uploaded to it"


def _one_line(error: BaseException, secret: str | None = None) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text.replace(secret, "<token>") if secret else text


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
    source = load_source(args)
    if args.processor:
        from modeling_dems import DemsImageProcessor

        source.processor = DemsImageProcessor.from_pretrained(args.processor)
    apply_labels(source.model, args.labels)
    parent = local_dir.resolve().parent if local_dir else None
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    # Built in a fresh directory (next to --local_dir so the final move is a rename) and only moved into place
    # once complete and verified: a failure leaves an existing --local_dir untouched.
    with tempfile.TemporaryDirectory(prefix=".dems-export-", dir=parent) as tmp:
        staging = Path(tmp) / "repo"
        staging.mkdir()
        names = build_folder(source, args, staging)
        verify_folder(source, staging)
        listing = "\n".join(f"  {n}  ({(staging / n).stat().st_size:,} bytes)" for n in names)
        if uploading:
            url = upload(staging, args, token)
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
