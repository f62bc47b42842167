"""Bring checkpoints of the reference DEMS-ViT release into this model.

A reference checkpoint is a `torch.save` dict with the weights under `model` (keys usually prefixed `module.` by
DistributedDataParallel) and `optimizer`, `epoch`, `scaler` beside them. Its layout is listed in the project's
spec (reference_state_dict.txt). Every reference key is either mapped onto a weight of
`DemsForImageClassification` or knowingly dropped: the frozen sin-cos `pos_embed*` tables (we compute them; they
are checked against our formula) and `norm_merge*`, the reference's second name for `mlp*.norm` (checked equal).

Command line:

    python -m modeling_dems.convert checkpoint.pth output_dir [--preset tiny-32] [--id2label labels.json]
"""

import argparse
import json
import math
import re
from pathlib import Path

import torch
from huggingface_hub.errors import StrictDataclassError

from .command_line import UserInputError, run_command
from .configuration_dems import DEMS_PRESETS, DemsConfig
from .image_processing_dems import DemsImageProcessor
from .modeling_dems import DemsForImageClassification, sincos_position_embedding_2d


# Reference key pattern -> our key template. Checked in order; the first match wins.
_KEY_RULES: list[tuple[str, str]] = [
    (r"cls_token", "dems.embeddings.cls_token"),
    (r"patch_embed\.proj\.(weight|bias)", r"dems.embeddings.patch_embeddings.0.projection.\1"),
    (r"patch_embed_2\.proj\.(weight|bias)", r"dems.embeddings.patch_embeddings.1.projection.\1"),
    (r"patch_embed_4\.proj\.proj-1\.weight", "dems.embeddings.patch_embeddings.2.depthwise1.weight"),
    (r"patch_embed_4\.proj\.proj-2\.weight", "dems.embeddings.patch_embeddings.2.depthwise2.weight"),
    (r"patch_embed_4\.proj\.point_wise\.(weight|bias)", r"dems.embeddings.patch_embeddings.2.pointwise.\1"),
    (r"patch_embed_8\.proj\.proj-1\.weight", "dems.embeddings.patch_embeddings.3.depthwise1.weight"),
    (r"patch_embed_8\.proj\.proj-2\.weight", "dems.embeddings.patch_embeddings.3.depthwise2.weight"),
    (r"patch_embed_8\.proj\.point_wise\.(weight|bias)", r"dems.embeddings.patch_embeddings.3.pointwise.\1"),
    (r"blocks\.(\d+)\.norm1\.(weight|bias)", r"dems.encoder.layers.\1.layernorm_before.\2"),
    (r"blocks\.(\d+)\.attn\.qkv\.(weight|bias)", r"dems.encoder.layers.\1.attention.qkv.\2"),
    (r"blocks\.(\d+)\.attn\.proj\.(weight|bias)", r"dems.encoder.layers.\1.attention.proj.\2"),
    (r"blocks\.(\d+)\.norm2\.(weight|bias)", r"dems.encoder.layers.\1.layernorm_after.\2"),
    (r"blocks\.(\d+)\.mlp\.(fc1|fc2)\.(weight|bias)", r"dems.encoder.layers.\1.mlp.\2.\3"),
    (r"norm\.(weight|bias)", r"dems.layernorm.\1"),
    (r"head\.(weight|bias)", r"classifier.\1"),
]
_MERGER_KEY = re.compile(r"mlp(\d+)\.(scale|norm\.weight|norm\.bias|fc[123]\.weight|fc[123]\.bias)")
_POSITION_KEY = re.compile(r"pos_embed(?:_(\d+))?")
_MERGE_NORM_ALIAS = re.compile(r"norm_merge(\d+)\.(weight|bias)")
_BLOCK_KEY = re.compile(r"blocks\.(\d+)\.")
# The reference's fixed tables, frozen parameters of shape (1, G*G, D), equal our formula to float32 rounding.
_POSITION_TOLERANCE = 1e-5
# How torch.load(weights_only=True) names the Python object it refuses to build.
_REFUSED_GLOBAL = re.compile(r"Unsupported global: GLOBAL (\S+)")
_WEIGHTS_ONLY_REMEDY = (
    "Only the weights are needed: where the checkpoint was made, save its 'model' entry (a dict of tensors) alone "
    "with torch.save, and convert that file."
)


class ReferenceCheckpointError(UserInputError):
    """A reference checkpoint that cannot be read or does not fit the model: the message names the file or keys."""


def load_reference_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a reference `.pth` safely (`weights_only=True`) and return its model weights, `module.` prefix removed."""
    path = Path(path)
    if path.is_dir():
        raise ReferenceCheckpointError(f"{path} is a folder, not a .pth file.")
    if not path.is_file():
        raise ReferenceCheckpointError(f"{path}: no such file.")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a damaged file comes as RuntimeError, EOFError, KeyError or UnpicklingError
        raise ReferenceCheckpointError(unreadable_torch_file_message(path, error, _WEIGHTS_ONLY_REMEDY)) from None
    return unwrap_reference_state_dict(checkpoint)


def unreadable_torch_file_message(path: Path, error: Exception, remedy: str) -> str:
    """Why `torch.load(path, weights_only=True)` failed, in one sentence or two: a Python object the safe loader
    refuses (named, with `remedy`: how to get a file of weights only), or a truncated / damaged / foreign file.
    Shared with push_to_hub.py, which reads a folder's pytorch_model.bin the same safe way."""
    # torch's own messages suggest weights_only=False, which runs whatever code the file carries: never repeated here.
    message = str(error)
    refused = _REFUSED_GLOBAL.search(message)
    if refused:
        return (
            f"{path}: the safe loader, torch.load(weights_only=True), refuses it: it holds {refused.group(1)}, which "
            f"is not a tensor, number, string or plain container (or the file is damaged). {remedy}"
        )
    # The first sentence of torch's detail: the rest is advice on how the file may have been damaged.
    lines = [line.strip() for line in message.split("WeightsUnpickler error:")[-1].splitlines() if line.strip()]
    return (
        f"cannot read {path} as a PyTorch checkpoint: it is truncated, damaged or not a torch.save file "
        f"({type(error).__name__}: {lines[0].split('. ')[0] if lines else 'no detail'})."
    )


def unwrap_reference_state_dict(checkpoint: dict) -> dict[str, torch.Tensor]:
    """The weights of a loaded reference checkpoint: under `model` when present, without DDP's `module.` prefix."""
    state_dict = checkpoint.get("model", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ReferenceCheckpointError(
            "not a reference DEMS checkpoint: expected a dict of tensors, or a dict with one under the key 'model'."
        )
    return {k.removeprefix("module."): v for k, v in state_dict.items()}


def infer_reference_config(state_dict: dict[str, torch.Tensor], preset: str | None = None, **overrides) -> DemsConfig:
    """Build the `DemsConfig` a reference state dict was trained with.

    Shapes give the width, patch size, channels, depth, classes, merged-token counts, MLP ratios, qkv bias and (from
    `pos_embed`) the image size. Two things leave no trace in the shapes: the number of attention heads (taken
    from `preset`, else `hidden_size / 64` as in both reference presets) and the merge positions (the reference's
    `[6, 10]` unless `merge_layers` is given). Keyword arguments override anything inferred.
    """
    if preset is not None and preset not in DEMS_PRESETS:
        raise ReferenceCheckpointError(f"preset={preset!r} is not a DEMS preset; choose one of {sorted(DEMS_PRESETS)}.")
    _require(state_dict, ["cls_token", "patch_embed.proj.weight", "head.weight", "blocks.0.mlp.fc1.weight"])
    hidden_size = state_dict["cls_token"].shape[-1]
    patch_size = state_dict["patch_embed.proj.weight"].shape[-1]
    try:
        inferred = {
            "hidden_size": hidden_size,
            "patch_size": patch_size,
            "num_channels": state_dict["patch_embed.proj.weight"].shape[1],
            "num_hidden_layers": 1 + max(int(m.group(1)) for k in state_dict if (m := _BLOCK_KEY.match(k))),
            "num_labels": state_dict["head.weight"].shape[0],
            "qkv_bias": "blocks.0.attn.qkv.bias" in state_dict,
            "num_merged_tokens": [
                state_dict[f"mlp{i}.fc3.weight"].shape[0] for i in range(1, 1 + _count_mergers(state_dict))
            ],
        }
    except KeyError as error:
        raise _missing_weights([error.args[0]]) from None
    if "pos_embed" in state_dict:
        inferred["image_size"] = math.isqrt(state_dict["pos_embed"].shape[1]) * patch_size
    settings = {**DEMS_PRESETS[preset]} if preset else {}
    settings.update(inferred)
    settings.setdefault("num_attention_heads", max(1, hidden_size // 64))
    settings.update(overrides)
    merge_layers = settings.get("merge_layers") or [6, 10][: len(settings["num_merged_tokens"])]
    settings["merge_layers"] = merge_layers
    if "mlp_ratios" not in overrides:
        # A stage that starts at no block (a merge layer out of range) gets a placeholder: DemsConfig names the cause.
        stage_keys = [f"blocks.{start}.mlp.fc1.weight" for start in [0] + [m - 1 for m in merge_layers]]
        settings["mlp_ratios"] = [state_dict[k].shape[0] / hidden_size if k in state_dict else 4.0 for k in stage_keys]
    names = settings.get("id2label")
    if names is not None and len(names) != inferred["num_labels"]:
        raise ReferenceCheckpointError(
            f"id2label has {len(names)} class names but the checkpoint's head has {inferred['num_labels']} classes "
            "(head.weight); give one name per class."
        )
    try:
        return DemsConfig(**settings)
    except (ValueError, TypeError, StrictDataclassError) as error:
        raise ReferenceCheckpointError(f"the checkpoint with these settings is no valid DemsConfig: {error}") from None


def convert_reference_state_dict(state_dict: dict[str, torch.Tensor], config: DemsConfig) -> dict[str, torch.Tensor]:
    """Map reference keys to `DemsForImageClassification` keys. Raises `ReferenceCheckpointError` listing every key
    that has no place in the model, and checks the keys that are dropped (position tables, merge-norm aliases)."""
    converted, unknown = {}, []
    for key, tensor in state_dict.items():
        if _POSITION_KEY.fullmatch(key):
            _check_position_table(key, tensor, config)
        elif match := _MERGE_NORM_ALIAS.fullmatch(key):
            _check_merge_norm_alias(state_dict, key, f"mlp{match.group(1)}.norm.{match.group(2)}")
        elif match := _MERGER_KEY.fullmatch(key):
            converted[f"dems.encoder.mergers.{int(match.group(1)) - 1}.{match.group(2)}"] = tensor
        else:
            target = next((re.sub(p, t, key) for p, t in _KEY_RULES if re.fullmatch(p, key)), None)
            if target is None:
                unknown.append(key)
            else:
                converted[target] = tensor
    if unknown:
        raise ReferenceCheckpointError(f"reference checkpoint has keys this model has no place for: {sorted(unknown)}")
    return converted


def load_reference_checkpoint(
    path_or_state_dict: str | Path | dict, preset: str | None = None, num_labels: int | None = None, **config_overrides
) -> DemsForImageClassification:
    """A `DemsForImageClassification` holding a reference checkpoint's weights (a `.pth` path, or a loaded
    checkpoint dict). `preset` and `config_overrides` (e.g. `id2label`, `merge_layers`, `num_attention_heads`)
    complete what the shapes do not tell; `num_labels`, when given, must match the checkpoint's head."""
    if isinstance(path_or_state_dict, dict):
        state_dict = unwrap_reference_state_dict(path_or_state_dict)
    else:
        state_dict = load_reference_state_dict(path_or_state_dict)
    config = infer_reference_config(state_dict, preset, **config_overrides)
    if num_labels is not None and num_labels != config.num_labels:
        raise ReferenceCheckpointError(
            f"num_labels={num_labels} but the checkpoint's head has {config.num_labels} classes (head.weight)."
        )
    weights = convert_reference_state_dict(state_dict, config)
    model = DemsForImageClassification(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    if missing:
        raise _missing_weights(missing)
    mismatched = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
        for k, v in weights.items()
        if v.shape != expected[k].shape
    ]
    if mismatched:
        raise ReferenceCheckpointError(
            "reference weights do not fit the config (give the right preset or overrides): " + "; ".join(mismatched)
        )
    model.load_state_dict(weights, strict=True)
    return model.eval()


def _count_mergers(state_dict: dict[str, torch.Tensor]) -> int:
    return len({m.group(1) for k in state_dict if (m := _MERGER_KEY.fullmatch(k))})


def _require(state_dict: dict[str, torch.Tensor], keys: list[str]) -> None:
    missing = [k for k in keys if k not in state_dict]
    if missing:
        raise _missing_weights(missing)


def _missing_weights(keys: list[str]) -> ReferenceCheckpointError:
    return ReferenceCheckpointError(f"reference checkpoint lacks weights the model needs: {keys}")


def _check_position_table(key: str, table: torch.Tensor, config: DemsConfig) -> None:
    factor = int(_POSITION_KEY.fullmatch(key).group(1) or 1)
    if factor not in (1, 2, 4, 8):
        raise ReferenceCheckpointError(f"reference checkpoint has keys this model has no place for: [{key!r}]")
    side = config.image_size // (config.patch_size * factor)
    expected = sincos_position_embedding_2d(side, side, config.hidden_size)[None]
    if table.shape != expected.shape or (table.float() - expected).abs().max() > _POSITION_TOLERANCE:
        raise ReferenceCheckpointError(
            f"{key} of shape {tuple(table.shape)} is not the fixed sin-cos embedding of a {side}x{side} grid "
            f"(expected shape {tuple(expected.shape)}); this model would give different logits."
        )


def _check_merge_norm_alias(state_dict: dict[str, torch.Tensor], alias: str, original: str) -> None:
    if original not in state_dict or not torch.equal(state_dict[alias], state_dict[original]):
        raise ReferenceCheckpointError(
            f"{alias} should be the same tensor as {original} (the reference saves the merge norm twice); "
            "it is missing or different."
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], prog="python -m modeling_dems.convert")
    parser.add_argument("checkpoint", type=Path, help="reference .pth file")
    parser.add_argument("output_dir", type=Path, help="folder for save_pretrained (model, config, image processor)")
    parser.add_argument("--preset", choices=sorted(DEMS_PRESETS), help="reference preset (inferred when omitted)")
    parser.add_argument("--merge_layers", type=int, nargs="+", help="1-based merge positions (default 6 10)")
    parser.add_argument("--num_attention_heads", type=int, help="default: the preset's, else hidden_size / 64")
    parser.add_argument("--id2label", type=Path, help="JSON file: a list of class names or an {id: name} object")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output_dir")
    return run_command(lambda arguments: convert_command(parser.parse_args(arguments)), parser.prog, argv)


def convert_command(args: argparse.Namespace) -> None:
    """What `main` does once the arguments are parsed; a user error raises `UserInputError` before anything is
    written."""
    output_dir = args.output_dir
    if output_dir.exists() and not output_dir.is_dir():
        raise UserInputError(f"output_dir={output_dir} is a file; give a folder (new, or empty, or with --overwrite).")
    if output_dir.is_dir() and any(output_dir.iterdir()) and not args.overwrite:
        raise UserInputError(f"output_dir={output_dir} is not empty; pass --overwrite to replace its contents.")
    overrides = {
        k: v
        for k, v in (("merge_layers", args.merge_layers), ("num_attention_heads", args.num_attention_heads))
        if v is not None
    }
    if args.id2label:
        id2label = read_id2label(args.id2label)
        overrides.update(id2label=id2label, label2id={v: k for k, v in id2label.items()})
    model = load_reference_checkpoint(args.checkpoint, preset=args.preset, **overrides)
    try:
        model.save_pretrained(output_dir)
        DemsImageProcessor.from_model_config(model.config).save_pretrained(output_dir)
    except OSError as error:
        raise UserInputError(f"cannot write output_dir={output_dir}: {error}") from None
    print(
        f"wrote {output_dir}: {sum(p.numel() for p in model.parameters()):,} parameters, "
        f"{model.config.num_labels} classes, image size {model.config.image_size}"
    )


def read_id2label(path: Path, flag: str | None = None) -> dict[int, str]:
    """Class names from a JSON file: a list of names, or an object `{id: name}` with the ids 0 .. n-1. `flag` is
    how the messages name the file (default `--id2label=path`; push_to_hub.py's `--labels` reads the same files)."""
    flag = flag or f"--id2label={path}"
    try:
        names = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise UserInputError(f"{flag}: cannot read it ({error.strerror}).") from None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
        raise UserInputError(f"{flag} is not valid JSON: {error}.") from None
    if isinstance(names, list):
        id2label = dict(enumerate(names))
    elif isinstance(names, dict) and all(isinstance(k, str) and k.isdigit() for k in names):
        id2label = {int(k): v for k, v in names.items()}
    else:
        raise UserInputError(f"{flag} must hold a list of class names or an object {{\"0\": name, ...}}.")
    if sorted(id2label) != list(range(len(id2label))):
        ids = sorted(id2label)
        raise UserInputError(f"{flag}: the class ids must be 0 .. {len(ids) - 1}, once each; got {ids}.")
    if not all(isinstance(name, str) for name in id2label.values()) or len(set(id2label.values())) != len(id2label):
        raise UserInputError(f"{flag}: the class names must be distinct strings; got {list(id2label.values())}.")
    return id2label


__all__ = [
    "ReferenceCheckpointError",
    "convert_reference_state_dict",
    "infer_reference_config",
    "load_reference_checkpoint",
    "load_reference_state_dict",
    "main",
    "read_id2label",
    "unreadable_torch_file_message",
]

if __name__ == "__main__":
    raise SystemExit(main())
