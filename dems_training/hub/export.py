"""The Hub repository folder of a DEMS-ViT model, as `push_to_hub.py` uploads it or writes it with `--local_dir`.

The folder is what transformers' own remote-code path writes: `save_pretrained` of the model and of its image
processor (registered with `register_for_auto_class` in `modeling_dems`) puts the weights, the configs with
`auto_map` and the configuration, modeling and image-processing files side by side. A `train.py` folder adds its
metrics files, run summary, curves picture and TensorBoard traces (`runs/`, the Hub's Metrics tab). The model card
is rendered from the run summary (`outputs.SUMMARY_FILE`). Before anything leaves, the folder is loaded back and
compared tensor by tensor with the model; the upload is one commit. What goes in is read and checked by
source.py.

Errors: a problem with what the user gave (a path, a file that does not parse, an option that does not fit the
model) is a `UserInputError`, raised while reading (source.py, `card_summary`), before anything is written:
push_to_hub.py prints it in one line and exits with code 2, as every command of the project. A failure of the Hub
itself (unreachable, a refused request) is a `HubError`: one line too, but exit code 1, as the command line itself
was fine.
"""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path

from .. import UserInputError
from ..outputs import CURVES_FILE, EXPLANATIONS_FILE, RESULT_FILES, SUMMARY_FILE, read_results
from .model_card import inherited_license, write_model_card
from .source import JSON_TYPE_NAMES, Source, json_type_name, one_line, quiet_transformers, read_json


TENSORBOARD_DIR = "runs"  # Trainer's default logging_dir under --output_dir
# What the run summary's keys hold when train.py writes them; the card reads them as such.
_SUMMARY_TYPES = {
    "dataset": dict, "results": dict, "recipe": dict, "history": list, "base_model": str, "curves": str,
    "explanations": str, "base_model_license": str,
}


class HubError(Exception):
    """The Hub could not be reached or refused a request: push_to_hub.py prints it as one line and exits with
    code 1 (not the user-error code 2: the command line was fine)."""


def card_summary(source: Source, dataset=None, results_file=None, base_model=None) -> dict:
    """What the card says about the training: the source folder's run summary (train.py), else its Trainer metrics
    files, with what the command line gives on top. Every file is read as JSON here, so that a torn one is named."""
    summary: dict = {}
    if source.folder is not None:
        summary_file = source.folder / SUMMARY_FILE
        if summary_file.is_file():
            summary = dict(read_json(summary_file))
            for key, kind in _SUMMARY_TYPES.items():
                if summary.get(key) is not None and not isinstance(summary[key], kind):
                    raise UserInputError(
                        f"{summary_file}: {key!r} must be a JSON {JSON_TYPE_NAMES[kind]}, not a "
                        f"{json_type_name(summary[key])}"
                    )
        for name in RESULT_FILES:
            if (source.folder / name).is_file():
                read_json(source.folder / name)
        if "results" not in summary:
            summary["results"] = read_results(source.folder)
    if results_file:
        summary["results"] = read_json(Path(results_file), "--results")
    if dataset:
        summary["dataset"] = {**(summary.get("dataset") or {}), "name": dataset}
    if base_model:
        summary["base_model"] = base_model
        summary["base_model_license"] = summary.get("base_model_license") or inherited_license(base_model)
    return summary


# ------------------------------------------------------------------------------------------------------ export


def build_folder(source: Source, out: Path, summary: dict, *, model_name: str, repo_id=None, license=None):
    """Write the repository folder into the empty directory `out`; returns its files, relative to it. `license`:
    see `model_card.weights_license`."""
    source.model.save_pretrained(out)  # weights, config.json with auto_map, modeling + configuration code
    source.processor.save_pretrained(out)  # preprocessor_config.json with auto_map, image-processing code
    if source.folder is not None:
        # Trainer.push_to_hub uploads these with the weights too: the card's numbers have their source beside them.
        for name in (*RESULT_FILES, SUMMARY_FILE, CURVES_FILE, EXPLANATIONS_FILE):
            if (source.folder / name).is_file():
                shutil.copyfile(source.folder / name, out / name)
        if (source.folder / TENSORBOARD_DIR).is_dir():
            shutil.copytree(source.folder / TENSORBOARD_DIR, out / TENSORBOARD_DIR)
    write_model_card(
        out,
        source.model,
        summary,
        model_name=model_name,
        repo_id=repo_id,
        license=license,
        from_reference_release=source.from_reference_release,
    )
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())


def verify_folder(source: Source, out: Path) -> None:
    """Reload the written folder and compare every tensor with the model in memory: catches weights that did not
    make it to disk (tied, renamed or dropped tensors) before anything is shared. Tensors, not logits, so that any
    dtype works on any device. A difference is a bug of the export, not of the input: a RuntimeError, with its
    traceback."""
    import torch

    from modeling_dems import DemsForImageClassification

    expected = source.model.state_dict()
    with quiet_transformers():
        got = DemsForImageClassification.from_pretrained(out, dtype=source.model.dtype).state_dict()
    if set(got) != set(expected):
        raise RuntimeError(
            f"the exported folder holds other tensors than the model: {sorted(set(got) ^ set(expected))}"
        )
    differing = [k for k, v in expected.items() if not torch.equal(v.cpu(), got[k].cpu())]
    if differing:
        raise RuntimeError(f"the exported weights differ from the model's: {differing[:5]}")


def check_local_dir(local_dir: Path, source: Path, overwrite: bool, inputs: dict[str, str | None] | None = None):
    """--local_dir can be written without touching anything the user gave: it is not the source, inside it or
    above it, its parent can be created, and --overwrite would not delete one of the `inputs` ({option: path})."""
    if local_dir.exists() and not local_dir.is_dir():
        raise UserInputError(f"--local_dir {local_dir} exists and is not a directory")
    resolved, src = local_dir.resolve(), source.resolve()
    if resolved == src or resolved in src.parents:
        raise UserInputError(f"--local_dir {local_dir} holds the source {source}; choose another folder")
    if src in resolved.parents:
        raise UserInputError(
            f"--local_dir {local_dir} lies inside the source {source}, which would change it; choose a folder "
            "outside it"
        )
    blocking = next((p for p in resolved.parents if p.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise UserInputError(f"--local_dir {local_dir} cannot be created: {blocking} is a file")
    if local_dir.is_dir() and any(local_dir.iterdir()) and not overwrite:
        raise UserInputError(f"--local_dir {local_dir} is not empty; pass --overwrite to replace its contents")
    for option, value in (inputs or {}).items():
        given = Path(value).resolve() if value and os.path.exists(value) else None
        if given is not None and (given == resolved or resolved in given.parents):
            raise UserInputError(
                f"{option} {value} lies in --local_dir {local_dir}, whose contents --overwrite replaces; move it "
                "or choose another --local_dir"
            )


def staging_parent(local_dir: Path) -> Path:
    """Where to build the folder before it moves to `local_dir`: its nearest existing ancestor, so that the move is
    a rename and a failed run leaves no new directories behind."""
    return next(p for p in local_dir.resolve().parents if p.exists())


def write_local_dir(staging: Path, local_dir: Path) -> None:
    """Move the finished folder into place, replacing `local_dir` (already checked empty or --overwrite)."""
    try:
        if local_dir.exists():
            shutil.rmtree(local_dir)
        local_dir.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), str(local_dir))
    except OSError as error:  # a read-only or full disk, no permission
        raise UserInputError(f"cannot write --local_dir {local_dir}: {one_line(error)}") from None


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
        raise HubError(
            f"the Hub refused to {step} for {repo_id}{hint}: {one_line(error, token)}; {_not_done(step, repo_id)}"
        ) from error
    except _network_errors() as error:
        raise HubError(
            f"could not reach the Hugging Face Hub at {api.endpoint} to {step} "
            f"({type(error).__name__}: {one_line(error, token)}); {_not_done(step, repo_id)}"
        ) from error
    return getattr(info, "pr_url", None) or getattr(info, "commit_url", None) or str(info)


def _not_done(step: str, repo_id: str) -> str:
    # Only create_repo may have taken effect before a failure; the files go in one commit or not at all.
    if step == "create the repository":
        return "nothing was uploaded"
    return f"the repository {repo_id} may exist now, but nothing was uploaded to it"
