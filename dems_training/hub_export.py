"""The Hub repository folder of a DEMS-ViT model, as `push_to_hub.py` uploads it or writes it with `--local_dir`.

The folder is what transformers' own remote-code path writes: `save_pretrained` of the model and of its image
processor (registered with `register_for_auto_class` in `modeling_dems`) puts the weights, the configs with
`auto_map` and the configuration, modeling and image-processing files side by side. A `train.py` folder adds its
metrics files, run summary, curves picture and TensorBoard traces (`runs/`, the Hub's Metrics tab). The model card
is rendered from the run summary (`outputs.SUMMARY_FILE`). Before anything leaves, the folder is loaded back and
compared tensor by tensor with the model; the upload is one commit.
"""

from __future__ import annotations

import importlib
import json
import os
import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path

from .model_card import RESULT_FILES, read_results, write_model_card
from .outputs import CURVES_FILE, SUMMARY_FILE, read_run_summary


WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
MODEL_TYPE = "dems"
TENSORBOARD_DIR = "runs"  # Trainer's default logging_dir under --output_dir


class PushError(Exception):
    """A problem the user can fix; push_to_hub.py prints it as one line and exits with status 1."""


@dataclass
class Source:
    """What was loaded: the model, its processor, and the folder it came from (None for a .pth)."""

    model: object
    processor: object
    name: str
    folder: Path | None = None


def one_line(error: BaseException, secret: str | None = None) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text.replace(secret, "<token>") if secret else text


# ------------------------------------------------------------------------------------------------------ loading


def load_source(path: Path, preset=None, num_labels=None, image_mean=None, image_std=None) -> Source:
    """A save_pretrained folder (e.g. a train.py output) or a reference .pth checkpoint."""
    if not path.exists():
        raise PushError(f"{path} does not exist")
    if path.is_dir():
        if preset or num_labels or image_mean or image_std:
            raise PushError(
                "--preset, --num_labels, --image_mean and --image_std apply to a .pth checkpoint only; a "
                "save_pretrained folder carries its own config and preprocessor_config.json"
            )
        return load_folder(path)
    if path.suffix in (".pth", ".pt"):
        return load_reference(path, preset, num_labels, image_mean, image_std)
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
        raise PushError(f"{config_file} is not a JSON object: {one_line(error)}") from error
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
        raise PushError(f"cannot load the model in {folder}: {one_line(error)}") from error
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
    return Source(model=model, processor=processor, name=folder.resolve().name, folder=folder)


def load_reference(path: Path, preset, num_labels, image_mean, image_std) -> Source:
    """A reference release checkpoint, through the project's converter."""
    from modeling_dems.convert import load_reference_checkpoint

    try:
        model = load_reference_checkpoint(str(path), preset=preset, num_labels=num_labels)
    except (ValueError, KeyError) as error:  # ReferenceCheckpointError is a ValueError
        raise PushError(f"cannot convert {path}: {one_line(error)}") from error
    except (RuntimeError, EOFError, pickle.UnpicklingError) as error:  # torch.load on a damaged or foreign file
        raise PushError(f"cannot read {path} as a PyTorch checkpoint: {one_line(error)}") from error
    processor = processor_for(model.config, image_mean=image_mean, image_std=image_std)
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


def card_summary(source: Source, dataset=None, results_file=None, base_model=None) -> dict:
    """What the card says about the training: the source folder's run summary (train.py), else its Trainer metrics
    files, with what the command line gives on top."""
    summary = dict((read_run_summary(source.folder) if source.folder else None) or {})
    if "results" not in summary and source.folder is not None:
        summary["results"] = read_results(source.folder)
    if results_file:
        summary["results"] = json.loads(Path(results_file).read_text(encoding="utf-8"))
    if dataset:
        summary["dataset"] = {**(summary.get("dataset") or {}), "name": dataset}
    if base_model:
        summary["base_model"] = base_model
    return summary


# ------------------------------------------------------------------------------------------------------ export


def build_folder(source: Source, out: Path, summary: dict, *, model_name: str, repo_id=None, license="apache-2.0"):
    """Write the repository folder into the empty directory `out`; returns its files, relative to it."""
    source.model.save_pretrained(out)  # weights, config.json with auto_map, modeling + configuration code
    source.processor.save_pretrained(out)  # preprocessor_config.json with auto_map, image-processing code
    if source.folder is not None:
        # Trainer.push_to_hub uploads these with the weights too: the card's numbers have their source beside them.
        for name in (*RESULT_FILES, SUMMARY_FILE, CURVES_FILE):
            if (source.folder / name).is_file():
                shutil.copyfile(source.folder / name, out / name)
        if (source.folder / TENSORBOARD_DIR).is_dir():
            shutil.copytree(source.folder / TENSORBOARD_DIR, out / TENSORBOARD_DIR)
    write_model_card(out, source.model, summary, model_name=model_name, repo_id=repo_id, license=license)
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())


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


def check_local_dir(local_dir: Path, source: Path, overwrite: bool) -> None:
    if local_dir.exists() and not local_dir.is_dir():
        raise PushError(f"--local_dir {local_dir} exists and is not a directory")
    resolved, src = local_dir.resolve(), source.resolve()
    if resolved == src or resolved in src.parents:
        raise PushError(f"--local_dir {local_dir} holds the source {source}; choose another folder")
    if local_dir.is_dir() and any(local_dir.iterdir()) and not overwrite:
        raise PushError(f"--local_dir {local_dir} is not empty; pass --overwrite to replace its contents")


def write_local_dir(staging: Path, local_dir: Path) -> None:
    """Move the finished folder into place, replacing `local_dir` (already checked empty or --overwrite)."""
    if local_dir.exists():
        shutil.rmtree(local_dir)
    local_dir.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(staging), str(local_dir))


# ------------------------------------------------------------------------------------------------------ upload


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


def upload(folder: Path, repo_id: str, token: str, private=False, revision=None, commit_message=None, create_pr=False):
    """create_repo + upload_folder; upload_folder is a single commit, so a failure leaves nothing half-uploaded.
    Returns the commit's (or pull request's) URL."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(token=token)
    step = "create the repository"
    try:
        api.create_repo(repo_id, private=private or None, exist_ok=True)
        if revision and revision != "main":
            step = f"create the branch {revision}"
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        step = "upload the files"
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            commit_message=commit_message,
            revision=revision,
            create_pr=create_pr or None,
        )
    except HfHubHTTPError as error:
        status = getattr(getattr(error, "response", None), "status_code", None)
        hint = " (check that your token has write access to it)" if status in (401, 403) else ""
        raise PushError(
            f"the Hub refused to {step} for {repo_id}{hint}: {one_line(error, token)}; {_not_done(step, repo_id)}"
        ) from error
    except _network_errors() as error:
        raise PushError(
            f"could not reach the Hugging Face Hub at {api.endpoint} to {step} "
            f"({type(error).__name__}: {one_line(error, token)}); {_not_done(step, repo_id)}"
        ) from error
    return getattr(info, "pr_url", None) or getattr(info, "commit_url", None) or str(info)


def _not_done(step: str, repo_id: str) -> str:
    # Only create_repo may have taken effect before a failure; the files go in one commit or not at all.
    if step == "create the repository":
        return "nothing was uploaded"
    return f"the repository {repo_id} may exist now, but nothing was uploaded to it"
