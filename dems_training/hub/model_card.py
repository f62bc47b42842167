"""The model card (README.md) of a DEMS-ViT checkpoint: YAML metadata the Hub reads, a usage snippet, the results,
the per-epoch history with its picture, the data set and the training recipe, and the paper citation.

Rendered from data, never from another card: the run summary that `train.py` saves (`outputs.py`,
`training_summary.json`) or what `push_to_hub.py` is told. Written by `DemsTrainer.create_model_card` (train.py,
`--push_to_hub`) and by `push_to_hub.py`. Only the standard library and huggingface_hub's card classes are needed.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import re
from collections.abc import Mapping
from typing import Any

from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData

from ..outputs import is_hub_dataset_id, shareable_dataset_name


logger = logging.getLogger(__name__)


PAPER_TITLE = "Data-efficient multi-scale fusion vision transformer"
PAPER_URL = "https://doi.org/10.1016/j.patcog.2024.111305"
REFERENCE_CODE_URL = "https://github.com/visresearch/dems"
# The card's license: weights trained by this project are Apache-2.0 as the code; the reference release's weights
# are CC BY-NC 4.0, and a card of converted reference weights must not relabel them.
DEFAULT_LICENSE = "apache-2.0"
REFERENCE_LICENSE = "cc-by-nc-4.0"
CITATION = """@article{tang2025dems,
  title   = {Data-efficient multi-scale fusion vision transformer},
  author  = {Tang, Hao and Liu, Dawei and Shen, Chengchao},
  journal = {Pattern Recognition},
  volume  = {161},
  pages   = {111305},
  year    = {2025},
  doi     = {10.1016/j.patcog.2024.111305}
}"""

DEFAULT_TAGS = ["image-classification", "vision", "vision-transformer", "dems", "dems-vit", "custom_code"]

# Where the top-1 / top-5 accuracy can sit in a results dict, best first. Trainer prefixes metrics with the split
# ("eval_", "test_"); train.py may name top-1 "top1" or plain "accuracy".
TOP1_KEYS = ("top1", "top1_accuracy", "top_1_accuracy", "accuracy", "acc1", "acc")
TOP5_KEYS = ("top5", "top5_accuracy", "top_5_accuracy", "acc5")
SPLIT_PREFIXES = ("eval_", "test_", "validation_", "val_", "")

# Keys of Trainer's save_metrics that describe speed, not quality: left out of the card's metrics table.
_NOISE_SUFFIXES = ("_runtime", "_samples_per_second", "_steps_per_second", "total_flos")

def find_metric(results: Mapping | None, names: tuple[str, ...]) -> tuple[str, float] | None:
    """First `(key, value)` of `results` whose key is one of `names` under a split prefix; None if absent."""
    if not results:
        return None
    for prefix in SPLIT_PREFIXES:
        for name in names:
            value = results.get(prefix + name)
            if _is_number(value):
                return prefix + name, float(value)
    return None


def inherited_license(model_name_or_path: str | None) -> str | None:
    """The license of the weights a run starts from, which the weights it trains keep: the reference release's for a
    reference .pth, else the `license` of the starting checkpoint's model card (README.md of a local folder, or of
    a Hub repository when the Hub can be reached). None when training from scratch or when no card tells."""
    if not model_name_or_path:
        return None
    if model_name_or_path.endswith(".pth"):
        return REFERENCE_LICENSE  # train.py reads a .pth only as a reference-release checkpoint
    card_path = os.path.join(model_name_or_path, "README.md")
    try:
        if os.path.isdir(model_name_or_path):
            license = ModelCard.load(card_path).data.license if os.path.isfile(card_path) else None
        else:  # a Hub id: the card's metadata, in one request (ModelCard.load retries for half a minute offline)
            card_data = HfApi().model_info(model_name_or_path, timeout=10).card_data
            license = card_data.license if card_data is not None else None
    except Exception as error:  # no card, unreachable Hub, unparsable metadata: nothing is known
        license, why = None, f"{type(error).__name__}: {(str(error).splitlines() or [''])[0]}"
    else:
        why = "its model card names none"
    if isinstance(license, str) and license:
        return license
    # Not an error (many checkpoints have no card), but the card would otherwise say apache-2.0 without a word.
    logger.warning(
        f"The license of {model_name_or_path!r}, which this run starts from, is unknown ({why}); model cards of the "
        f"weights it trains will say {DEFAULT_LICENSE}: check the starting weights' terms, and share with "
        "push_to_hub.py --license if they differ."
    )
    return None


def weights_license(summary: Mapping | None, from_reference_release: bool, license: str | None = None) -> str:
    """The license a card gives the weights: `license` when given; the reference release's for its converted weights;
    the license of the weights a run was fine-tuned from (the run summary's `base_model_license`); this project's
    for weights it trained from scratch."""
    if license is not None:
        return license
    if from_reference_release:
        return REFERENCE_LICENSE
    return (summary or {}).get("base_model_license") or DEFAULT_LICENSE


def render_model_card(
    *,
    model_name: str,
    config,
    summary: Mapping | None = None,
    repo_id: str | None = None,
    license: str | None = None,
    num_parameters: int | None = None,
    extra_tags: list[str] | None = None,
    from_reference_release: bool = False,
) -> str:
    """README.md text for a DEMS-ViT image classifier.

    Args:
        model_name: the model's name, shown as the title and in the model-index.
        config: the model's `DemsConfig` (or its dict).
        summary: what is known about the training, as `train.py` saves it (every key optional):
            `dataset`: `{"name": a Hub data set id (goes into the metadata) or a description, "train_images",
            "held_out_images", "classes", ...}`; `base_model`: Hub id of the checkpoint it was fine-tuned from;
            `recipe`: training settings; `results`: metrics as Trainer writes them (`eval_top1_accuracy`, ...),
            top-1/top-5 accuracy going into the metadata's model-index; `history`: one dict per epoch
            (`epoch_history`); `curves`: file name of the picture of that history, beside the card;
            `explanations`: file name of the picture of a few held-out images explained (`explain.py`'s), beside it;
            `base_model_license`: the license of the weights it was fine-tuned from (`inherited_license`).
        repo_id: where the model lives on the Hub, used in the usage snippet.
        license: SPDX-like license id of the weights; None: `weights_license` decides.
        num_parameters: parameter count, shown in the architecture summary.
        extra_tags: tags added to the defaults.
        from_reference_release: the weights are the reference release's, converted: the body says so, and under
            which license (`REFERENCE_LICENSE`) the release put them.
    """
    summary = summary or {}
    cfg = _config_dict(config)
    dataset = (summary.get("dataset") or {}).get("name")
    results = summary.get("results")
    base_model = summary.get("base_model")
    hub_dataset = dataset if is_hub_dataset_id(dataset) else None
    license = weights_license(summary, from_reference_release, license)
    inherited = not from_reference_release and license == summary.get("base_model_license")
    card_data = ModelCardData(
        library_name="transformers",
        pipeline_tag="image-classification",
        license=license,
        datasets=[hub_dataset] if hub_dataset else None,
        metrics=_metric_names(results),
        tags=_dedupe(DEFAULT_TAGS + list(extra_tags or [])),
        base_model=base_model,
        model_name=model_name,
        eval_results=_eval_results(results, dataset) or None,
    )
    sections = [
        f"# {model_name}",
        _intro(cfg, dataset, base_model),
        _reference_release_line() if from_reference_release else "",
        _inherited_license_line(license) if inherited else "",
        _architecture_section(cfg, num_parameters),
        _usage_section(repo_id or f"your-username/{model_name}"),
        _results_section(results),
        _history_section(summary.get("history"), summary.get("curves")),
        _explanations_section(summary.get("explanations")),
        _dataset_section(summary.get("dataset")),
        _recipe_section(summary.get("recipe")),
        _citation_section(),
    ]
    body = "\n\n".join(s for s in sections if s)
    card = ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n{body}\n")
    return str(card)


def write_model_card(
    folder: str | os.PathLike,
    model,
    summary: Mapping | None,
    *,
    model_name: str,
    repo_id: str | None = None,
    license: str | None = None,
    from_reference_release: bool = False,
) -> str:
    """Render the card of `model` and write it as `folder`/README.md; returns its path."""
    text = render_model_card(
        model_name=model_name,
        config=model.config,
        summary=summary,
        repo_id=repo_id,
        license=license,
        num_parameters=model.num_parameters(),
        from_reference_release=from_reference_release,
    )
    path = os.path.join(folder, "README.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def _is_vit_baseline(cfg: dict) -> bool:
    return cfg.get("model_type") == "vit"


def _intro(cfg: dict, dataset: str | None, base_model: str | None) -> str:
    if _is_vit_baseline(cfg):
        text = (
            "A ViT baseline: transformers' `ViTForImageClassification` (class token, no distillation, as DeiT), "
            "trained with the DEMS-ViT recipe of Tang, Liu and Shen, "
            f"[\"{PAPER_TITLE}\"]({PAPER_URL}), so that it compares with a DEMS-ViT of the same width and depth."
        )
    else:
        text = (
            f"A DEMS-ViT image classifier: the data-efficient multi-scale fusion vision transformer of Tang, Liu "
            f"and Shen, [\"{PAPER_TITLE}\"]({PAPER_URL}) (Pattern Recognition 161, 2025; reference code: "
            f"{REFERENCE_CODE_URL}), as a 🤗 Transformers model."
        )
    if dataset:
        shown = shareable_dataset_name(dataset)
        link = f"[{shown}](https://huggingface.co/datasets/{shown})" if is_hub_dataset_id(dataset) else f"`{shown}`"
        text += f" It was trained on {link}"
        text += f", fine-tuned from [{base_model}](https://huggingface.co/{base_model})." if base_model else "."
    elif base_model:
        text += f" It was fine-tuned from [{base_model}](https://huggingface.co/{base_model})."
    return text


def _reference_release_line() -> str:
    return (
        f"The weights come from the reference release ({REFERENCE_CODE_URL}), converted unchanged, and are under its "
        f"license, CC BY-NC 4.0 (`{REFERENCE_LICENSE}`: attribution, non-commercial use only)."
    )


def _inherited_license_line(license: str) -> str:
    return (
        f"It was fine-tuned from weights under `{license}`, and this card gives it the same license: fine-tuned "
        "weights derive from the weights they start from."
    )


def _architecture_section(cfg: dict, num_parameters: int | None) -> str:
    if not cfg:
        return ""
    shared = [
        ("image size", cfg.get("image_size")),
        ("width", cfg.get("hidden_size")),
        ("blocks", cfg.get("num_hidden_layers")),
        ("attention heads", cfg.get("num_attention_heads")),
    ]
    if _is_vit_baseline(cfg):
        rows = [
            ("architecture", "ViT (transformers' `ViTForImageClassification`)"),
            ("patch", cfg.get("patch_size")),
            *shared,
            ("MLP size", cfg.get("intermediate_size")),
        ]
        note = []
    else:
        rows = [
            ("architecture", "DEMS-ViT"),
            ("base patch (scales p, 2p, 4p, 8p)", cfg.get("patch_size")),
            *shared,
            ("merge before blocks", cfg.get("merge_layers")),
            ("tokens per region after each merge", cfg.get("num_merged_tokens")),
        ]
        note = [
            "",
            "Each image is tokenised at four patch scales; the tokens of each coarse region are grouped, attended "
            "jointly, and fused by learned regional cross-scale merges before the class token feeds the classifier.",
        ]
    rows.append(("classes", _num_labels(cfg)))
    if num_parameters is not None:
        rows.append(("parameters", f"{num_parameters:,}"))
    lines = ["## Model", "", "| | |", "|---|---|"]
    lines += [f"| {name} | {_fmt(value)} |" for name, value in rows if value is not None]
    return "\n".join(lines + note)


def _usage_section(repo: str) -> str:
    return f"""## How to use

The model code ships with the weights, so loading needs `trust_remote_code=True` (or, with the `dems` package
installed, `import modeling_dems` first and no remote code at all). It needs `torch`, `Pillow` and
`transformers>=5` (exported with {_transformers_version()}).

```python
import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoModelForImageClassification, pipeline

processor = AutoImageProcessor.from_pretrained("{repo}", trust_remote_code=True)
model = AutoModelForImageClassification.from_pretrained("{repo}", trust_remote_code=True)

image = Image.open("image.png").convert("RGB")
inputs = processor(images=image, return_tensors="pt")
with torch.no_grad():
    logits = model(**inputs).logits
print(model.config.id2label[logits.argmax(-1).item()])

# or in one line
classifier = pipeline("image-classification", model="{repo}", trust_remote_code=True)
print(classifier("image.png"))
```"""


def _transformers_version() -> str:
    try:
        return importlib.metadata.version("transformers")
    except importlib.metadata.PackageNotFoundError:
        return "an unknown version"


def _results_section(results: Mapping | None) -> str:
    quality = {k: v for k, v in (results or {}).items() if _is_number(v) and not k.endswith(_NOISE_SUFFIXES)}
    if not quality:
        return ""
    lines = ["## Results", ""]
    for label, keys in (("Top-1", TOP1_KEYS), ("Top-5", TOP5_KEYS)):
        found = find_metric(results, keys)
        if found:
            lines.append(f"- **{label} accuracy**: {_percent(found[1])} (`{found[0]}`)")
    lines += ["", "| metric | value |", "|---|---|"]
    lines += [f"| {_fmt(k)} | {_fmt(v)} |" for k, v in sorted(quality.items())]
    return "\n".join(lines)


# Column titles of the per-epoch table; any other metric of the history keeps its key as title.
_HISTORY_COLUMNS = {
    "epoch": "epoch",
    "step": "step",
    "train_loss": "training loss",
    "learning_rate": "learning rate",
    "eval_loss": "held-out loss",
    "eval_top1_accuracy": "held-out top-1",
    "eval_top5_accuracy": "held-out top-5",
}
# Facts of the data set table, in this order; other keys follow under their own name.
_DATASET_FACTS = {
    "name": "data set",
    "train_images": "training images",
    "held_out_images": "held-out images",
    "classes": "classes",
}


def _history_section(history: list[Mapping] | None, curves: str | None) -> str:
    if not history:
        return ""
    keys = list(_HISTORY_COLUMNS)
    keys += sorted({k for row in history for k in row} - set(keys))
    keys = [k for k in keys if any(row.get(k) is not None for row in history)]
    lines = ["## Training history", ""]
    if curves:
        lines += [f"![Training loss, learning rate and held-out top-1 per epoch]({curves})", ""]
    lines += [
        "Per epoch: the mean of the training losses logged during it, its learning rate, and the held-out "
        "evaluation at its end.",
        "",
        "| " + " | ".join(_HISTORY_COLUMNS.get(k, k) for k in keys) + " |",
        "|" + "---|" * len(keys),
    ]
    lines += ["| " + " | ".join(_fmt_cell(row.get(k)) for k in keys) + " |" for row in history]
    return "\n".join(lines)


def _explanations_section(picture: str | None) -> str:
    if not picture:
        return ""
    return f"""## What the model looks at

![A few held-out images: class-token saliency, top predictions and each merge's scale mix]({picture})

For a few held-out images: the class-token saliency (attention rollout through the blocks and the regional
cross-scale merges, per patch of the finest size), the top predictions, and for each merge the share of each merged
token's weight that comes from each patch size, beside what a uniform merge would take. `python explain.py MODEL
IMAGE... --output DIR` draws the same for any image (the `dems` project)."""


def _dataset_section(dataset: Mapping | None) -> str:
    facts = {k: v for k, v in (dataset or {}).items() if v is not None}
    if len(facts) <= 1:  # the name alone is already in the introduction
        return ""
    keys = [k for k in _DATASET_FACTS if k in facts] + [k for k in facts if k not in _DATASET_FACTS]
    lines = ["## Data", "", "| | |", "|---|---|"]
    lines += [f"| {_DATASET_FACTS.get(k, k)} | {_fmt(shareable_dataset_name(facts[k]) if k == 'name' else facts[k])} |"
              for k in keys]
    return "\n".join(lines)


def _recipe_section(recipe: Mapping | None) -> str:
    if not recipe:
        return ""
    lines = ["## Training", "", "| setting | value |", "|---|---|"]
    lines += [f"| {_fmt(k)} | {_fmt(v)} |" for k, v in recipe.items() if v is not None]
    return "\n".join(lines)


def _citation_section() -> str:
    return f"## Citation\n\n```bibtex\n{CITATION}\n```"


def _eval_results(results: Mapping | None, dataset: str | None) -> list[EvalResult]:
    """Top-1 / top-5 accuracy as model-index entries (the Hub's evaluation widget). The model-index needs a data
    set; a local one is named by its folder."""
    entries = []
    name = shareable_dataset_name(dataset)
    for label, keys in (("Top-1 accuracy", TOP1_KEYS), ("Top-5 accuracy", TOP5_KEYS)):
        found = find_metric(results, keys)
        if found is None:
            continue
        key, value = found
        entries.append(
            EvalResult(
                task_type="image-classification",
                task_name="Image Classification",
                dataset_type=_dataset_type(dataset, name),
                dataset_name=name,
                dataset_split=_split_of(key),
                metric_type="accuracy",
                metric_name=label,
                metric_value=round(value, 6),
            )
        )
    return entries


def _metric_names(results: Mapping | None) -> list[str] | None:
    return ["accuracy"] if find_metric(results, TOP1_KEYS) or find_metric(results, TOP5_KEYS) else None


def _split_of(key: str) -> str | None:
    for prefix, split in (("eval_", "validation"), ("validation_", "validation"), ("val_", "validation")):
        if key.startswith(prefix):
            return split
    return "test" if key.startswith("test_") else None


def _dataset_type(dataset: str | None, name: str) -> str:
    # The model-index wants an identifier: the Hub id, else a slug of the name.
    if is_hub_dataset_id(dataset):
        return dataset
    return re.sub(r"[^\w.-]+", "-", name).strip("-").lower() or "custom"


def _config_dict(config) -> dict:
    if config is None:
        return {}
    if isinstance(config, Mapping):
        return dict(config)
    return config.to_dict()


def _num_labels(cfg: dict) -> int | None:
    id2label = cfg.get("id2label")
    return len(id2label) if id2label else cfg.get("num_labels")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _percent(value: float) -> str:
    # Trainer metrics are fractions; a value above 1 was already given in percent.
    return f"{value * 100:.2f} %" if value <= 1.0 else f"{value:.2f} %"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt(v) for v in value)
    return str(value).replace("|", "\\|")


def _fmt_cell(value: Any) -> str:
    return "" if value is None else _fmt(value)


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


__all__ = ["CITATION", "DEFAULT_LICENSE", "REFERENCE_LICENSE", "find_metric", "render_model_card", "write_model_card"]
