"""What `push_to_hub.py` reads, checked before anything is written: the source (a save_pretrained folder or a
reference .pth, through the converter), its weight files, its image processor or one given with --processor, and the
class names of --labels. Every problem with them is a `UserInputError` naming the option or file, the value and the
rule (push_to_hub.py prints it in one line and exits with code 2); what is built from them is export.py's.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from .. import UserInputError, one_line, quiet_transformers
from ..modeling import label_fields, processor_for_config
from ..outputs import WEIGHT_FILES, weight_file_error


PROCESSOR_FILE = "preprocessor_config.json"
MODEL_TYPE = "dems"
JSON_TYPE_NAMES = {dict: "object", list: "list", str: "string", bool: "boolean", int: "number", float: "number"}


@dataclass
class Source:
    """What was loaded: the model, its processor, the folder it came from (None for a .pth), and whether the weights
    are the reference release's (a converted .pth: its license, not this project's, applies to them)."""

    model: object
    processor: object
    name: str
    folder: Path | None = None
    from_reference_release: bool = False


def json_type_name(value) -> str:
    return "null" if value is None else JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def read_json(path: Path, option: str | None = None, expect: type | None = dict):
    """The JSON in `path` (of type `expect` unless None), or a `UserInputError` naming the option (or the file) and
    what is wrong: unreadable, not UTF-8, cut short, or of another type."""
    name = f"{option} {path}" if option else str(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text)
    except OSError as error:
        raise UserInputError(f"{name}: cannot read it ({error.strerror or one_line(error)})") from None
    except ValueError as error:  # JSONDecodeError (e.g. a file cut short), UnicodeDecodeError
        raise UserInputError(f"{name} is not valid JSON ({one_line(error)}); is it complete?") from None
    if expect is not None and not isinstance(data, expect):
        raise UserInputError(f"{name} must hold a JSON {JSON_TYPE_NAMES[expect]}, not a {json_type_name(data)}")
    return data


def load_source(path: Path, preset=None, num_labels=None, image_mean=None, image_std=None) -> Source:
    """A save_pretrained folder (e.g. a train.py output) or a reference .pth checkpoint."""
    if not path.exists():
        raise UserInputError(f"source {path} does not exist; give a save_pretrained folder or a reference .pth file")
    if path.is_dir():
        if any(value is not None for value in (preset, num_labels, image_mean, image_std)):
            raise UserInputError(
                "--preset, --num_labels, --image_mean and --image_std apply to a .pth checkpoint only; a "
                "save_pretrained folder carries its own config and preprocessor_config.json"
            )
        return load_folder(path)
    if path.suffix in (".pth", ".pt"):
        return load_reference(path, preset, num_labels, image_mean, image_std)
    # A file of a save_pretrained folder given instead of the folder is the likely slip.
    hint = f"; give the folder that holds it, {path.parent}" if path.name in (*WEIGHT_FILES, "config.json") else ""
    raise UserInputError(f"source {path} is neither a save_pretrained folder nor a reference .pth checkpoint{hint}")


def load_folder(folder: Path) -> Source:
    """A save_pretrained folder: checked by hand first, so that a wrong folder gets a precise message rather than
    a loader traceback."""
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise UserInputError(f"source {folder} has no config.json: not a save_pretrained model folder")
    model_type = read_json(config_file).get("model_type")
    if model_type != MODEL_TYPE:
        raise UserInputError(
            f"{config_file} is the config of a {model_type!r} model, not a DEMS-ViT ({MODEL_TYPE!r}) one; this "
            "script exports DEMS-ViT checkpoints only"
        )
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        # A run stopped before its final save still has Trainer checkpoints: point at them.
        checkpoints = sorted(p.name for p in folder.glob("checkpoint-*") if p.is_dir())
        hint = f"; pass one of its checkpoint folders instead ({', '.join(checkpoints[-3:])})" if checkpoints else ""
        raise UserInputError(f"{folder} has no model weights (none of {', '.join(WEIGHT_FILES)}){hint}")
    check_weight_files(folder)

    from huggingface_hub.errors import StrictDataclassError

    from modeling_dems import DemsForImageClassification

    try:
        with quiet_transformers():
            # Mismatched shapes are collected and refused below, with the tensors named, rather than raised by
            # transformers with a pointer to its (silenced) report.
            model, info = DemsForImageClassification.from_pretrained(
                folder, output_loading_info=True, ignore_mismatched_sizes=True
            )
    except (ValueError, OSError, StrictDataclassError) as error:  # an invalid DemsConfig, a field of the wrong type
        raise UserInputError(f"cannot load the model in {folder}: {one_line(error)}") from None
    if info.get("missing_keys"):
        missing = sorted(info["missing_keys"])
        raise UserInputError(
            f"the weights in {folder} lack {len(missing)} tensors of DemsForImageClassification (e.g. "
            f"{missing[0]}); is it a checkpoint of another model, or a DemsModel without its classification head?"
        )
    if info.get("mismatched_keys"):
        key, stored, expected = sorted(info["mismatched_keys"])[0]
        raise UserInputError(
            f"the weights in {folder} do not fit its config.json: {len(info['mismatched_keys'])} tensors differ in "
            f"shape (e.g. {key}: {tuple(stored)} in the weights, {tuple(expected)} for the config); was config.json "
            "edited (num_labels, hidden_size, ...)?"
        )
    if info.get("unexpected_keys"):
        # transformers drops them with a warning: the pushed model would silently lack part of the checkpoint.
        unexpected = sorted(info["unexpected_keys"])
        raise UserInputError(
            f"the weights in {folder} hold {len(unexpected)} tensors its config.json has no place for (e.g. "
            f"{unexpected[0]}); was config.json edited (num_hidden_layers, ...), or are the weights of another model?"
        )
    if (folder / PROCESSOR_FILE).is_file():
        processor = load_processor(folder)
    else:
        processor = processor_for_config(model.config)
    return Source(model=model, processor=processor, name=folder.resolve().name, folder=folder)


def check_weight_files(folder: Path) -> None:
    """Every weight file of `folder` (and every shard an index names) opens: the safetensors header parses and the
    file is as long as it says; a .bin loads with the safe loader, `torch.load(weights_only=True)`. A torn or unsafe
    file is named here rather than surfacing as a loader traceback."""
    for name in WEIGHT_FILES:
        path = folder / name
        if not path.is_file():
            continue
        if not name.endswith(".index.json"):
            _check_weight_file(path)
            continue
        weight_map = read_json(path).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise UserInputError(f'{path} has no "weight_map" object naming the shard of each tensor')
        for shard in sorted(set(map(str, weight_map.values()))):
            if not (folder / shard).is_file():
                raise UserInputError(f"{path} names the shard {shard}, which is not in {folder}")
            _check_weight_file(folder / shard)


def _check_weight_file(path: Path) -> None:
    error = weight_file_error(path, safe_load=True)
    if error is None:
        return
    if path.suffix == ".safetensors":
        raise UserInputError(f"cannot read {path}: it is truncated or not a safetensors file ({one_line(error)})")
    from modeling_dems.convert import unreadable_torch_file_message

    remedy = (
        "Only the weights are needed: load the model where it was made and save it again with save_pretrained "
        "(model.safetensors)."
    )
    raise UserInputError(unreadable_torch_file_message(path, error, remedy))


def load_processor(folder: Path, option: str | None = None):
    """The DemsImageProcessor saved in `folder` (the source, or --processor's folder)."""
    from huggingface_hub.errors import StrictDataclassError

    from modeling_dems import DemsImageProcessor

    path = folder / PROCESSOR_FILE
    read_json(path, option)  # transformers' own message for a torn file does not say what is wrong
    try:
        with quiet_transformers():
            return DemsImageProcessor.from_pretrained(folder)
    except (OSError, ValueError, TypeError, StrictDataclassError) as error:
        name = f"{option} {path}" if option else str(path)
        raise UserInputError(f"{name} does not describe a DEMS image processor: {one_line(error)}") from None


def load_reference(path: Path, preset, num_labels, image_mean, image_std) -> Source:
    """A reference release checkpoint, through the project's converter."""
    from modeling_dems.convert import ReferenceCheckpointError, load_reference_checkpoint

    try:
        model = load_reference_checkpoint(str(path), preset=preset, num_labels=num_labels)
    except ReferenceCheckpointError as error:  # unreadable (torn, unsafe) or not fitting the model
        raise UserInputError(f"cannot convert {path}: {one_line(error)}") from None
    for option, values in (("--image_mean", image_mean), ("--image_std", image_std)):
        if values is not None and len(values) not in (1, model.config.num_channels):
            channels = model.config.num_channels
            raise UserInputError(
                f"{option} gives {len(values)} values but the model has {channels} channels; give 1 or {channels}"
            )
    processor = processor_for_config(model.config, image_mean=image_mean, image_std=image_std)
    return Source(model=model, processor=processor, name=path.stem, from_reference_release=True)


def check_processor_fits(model, processor, origin: str) -> None:
    """Run the processor on one image and the model on the result: a processor whose output the model refuses (a
    size that is no multiple of 8 * patch_size, another channel count) or that makes NaN (an image_std of 0) gives
    a repository that loads but fails on every image."""
    import numpy as np
    import torch
    from PIL import Image

    image = Image.fromarray(np.random.RandomState(0).randint(0, 256, (37, 45, 3), dtype=np.uint8))
    try:
        pixels = processor(images=image, return_tensors="pt")["pixel_values"]
    except (ValueError, TypeError) as error:
        raise UserInputError(f"{origin} cannot process an image: {one_line(error)}") from None
    if not torch.isfinite(pixels).all():
        raise UserInputError(f"{origin} turns an image into NaN or infinite values (is an image_std 0?)")
    try:
        with torch.no_grad():
            model(pixel_values=pixels.to(model.dtype))
    except ValueError as error:
        raise UserInputError(
            f"{origin} makes pixel_values of shape {tuple(pixels.shape)}, which the model refuses: {one_line(error)}"
        ) from None


def read_labels(spec: str) -> list[str]:
    """Class names from --labels: a JSON file (a list, or an object {"0": name, ...} as convert's --id2label), a
    text file (one name per line), an inline JSON list, or names separated by commas. They must be distinct and
    not empty; their number is checked against the model by `apply_labels`."""
    path = Path(spec)
    if path.is_dir():
        raise UserInputError(
            f"--labels {spec} is a folder; give a label file (JSON list or one name per line) or the names, "
            "comma-separated"
        )
    if path.is_file() and path.suffix == ".json":
        from modeling_dems.convert import read_id2label

        id2label = read_id2label(path, flag=f"--labels {spec}")
        return [id2label[i] for i in range(len(id2label))]
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise UserInputError(f"--labels {spec}: cannot read it ({error.strerror or one_line(error)})") from None
        except ValueError as error:  # UnicodeDecodeError
            raise UserInputError(f"--labels {spec} is not UTF-8 text ({one_line(error)})") from None
        names = [line.strip() for line in text.splitlines() if line.strip()]
    elif spec.lstrip().startswith("["):
        try:
            names = json.loads(spec)
        except ValueError as error:
            raise UserInputError(f"--labels {spec!r} is not a valid JSON list ({one_line(error)})") from None
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            raise UserInputError(f"--labels {spec!r} must be a JSON list of strings")
    elif "," not in spec and (path.suffix in (".json", ".txt") or "/" in spec or os.sep in spec):
        # Read as one class name, a mistyped file name would only surface as a wrong count.
        raise UserInputError(f"--labels {spec}: no such file (a label file, or the names separated by commas)")
    else:
        names = [name.strip() for name in spec.split(",")]
    if not names or not all(name.strip() for name in names):
        raise UserInputError(f"--labels {spec!r} holds an empty class name: {names}")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise UserInputError(
            f"--labels {spec!r} names a class twice ({', '.join(duplicates)}); label2id needs one id each"
        )
    return names


def apply_labels(model, names: list[str] | None, spec: str | None = None) -> None:
    """Set id2label / label2id from --labels; their number must match the classifier."""
    if not names:
        return
    if len(names) != model.config.num_labels:
        raise UserInputError(
            f"--labels gives {len(names)} names but the model has {model.config.num_labels} classes (the "
            f"classifier head's num_labels); --labels {spec} must name each class once"
        )
    model.config.update(label_fields(names))
