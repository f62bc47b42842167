"""What a DEMS-ViT classifier looks at, for `explain.py` and the model card of a `train.py` run: the model loaded from
a folder or a Hub id (refused in one line when it is no DEMS-ViT), images run through it with its attention and
merge assignments, and per image the class-token saliency, the top predictions and the merges' scale mix
(modeling_dems/saliency.py). The pictures are drawn by explanation_plots.py."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from modeling_dems.saliency import class_token_rollout, merge_scale_mix, rollout_to_patches

from .. import UserInputError


MODEL_TYPE = "dems"
# A Hub model id: "name" or "owner/name"; anything else that is no folder here cannot be loaded.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


@dataclass
class ImageExplanation:
    """One image as the model saw it and what it made of it.

    - `image`: `(H, W, 3)` uint8, the model's input with the normalisation undone (resized, cropped as the
      processor does; a grey model's input repeated on three channels).
    - `predictions`: the top classes, `(label, score)`, best first (softmax; sigmoid for a multi-label model).
    - `saliency`: `(H / p, W / p)`, the class-token rollout per fine patch (`rollout_to_patches`).
    - `saliency_by_scale`: `(5,)`, the rollout's share of the class token's own embedding, then of the tokens of
      patch p, 2p, 4p and 8p; sums to 1.
    - `scale_mix`: per merge, `(tokens_out, 4)`: each merged token's shares of patch p, 2p, 4p, 8p, averaged over
      the image's regions (`merge_scale_mix`).
    - `regions`: how many regions the image has (the scale mix is their mean).
    - `label`: the true class name when known.
    """

    image: np.ndarray
    predictions: list[tuple[str, float]]
    saliency: np.ndarray
    saliency_by_scale: np.ndarray
    scale_mix: list[np.ndarray]
    regions: int = 1
    label: str | None = None
    name: str = ""


def load_classifier(model: str, revision: str | None = None):
    """(model, image processor) of a DEMS-ViT classifier: a `train.py` output or `save_pretrained` folder, or a Hub
    id. A path that is no such folder, a model of another type or one without its classification head is a
    `UserInputError` naming `model` and what is wrong."""
    from huggingface_hub.errors import StrictDataclassError
    from transformers import PretrainedConfig

    from modeling_dems import DemsForImageClassification, DemsImageProcessor

    from .. import one_line, quiet_transformers

    path = Path(model)
    local = path.exists()
    if local and not path.is_dir():
        raise UserInputError(
            f"MODEL {model} is a file; give the folder that train.py (--output_dir) or save_pretrained wrote, or a "
            "Hub model id"
        )
    if local and not (path / "config.json").is_file():
        raise UserInputError(f"MODEL {model} has no config.json: it is not a train.py output or save_pretrained folder")
    if not local and not _HUB_ID.match(model):
        raise UserInputError(f"MODEL {model} is neither an existing folder nor a Hub model id (owner/name)")
    kwargs = {"revision": revision} if revision else {}
    try:
        with quiet_transformers():
            config, _ = PretrainedConfig.get_config_dict(model, **kwargs)
    except (OSError, ValueError) as error:  # not on the Hub, no network, a config.json that does not parse
        raise UserInputError(f"MODEL {model}: cannot read its config ({one_line(error)})") from None
    model_type = config.get("model_type")
    if model_type != MODEL_TYPE:
        raise UserInputError(
            f"MODEL {model} is a {model_type!r} model, not a DEMS-ViT ({MODEL_TYPE!r}): only DEMS-ViT has the "
            "cross-scale merges this command draws"
        )
    try:
        with quiet_transformers():
            classifier, info = DemsForImageClassification.from_pretrained(
                model, output_loading_info=True, **kwargs
            )
    except (OSError, ValueError, StrictDataclassError) as error:  # no weights, torn weights, an invalid config
        raise UserInputError(f"MODEL {model}: cannot load the model ({one_line(error)})") from None
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        raise UserInputError(
            f"MODEL {model}: its weights lack {len(missing)} tensors of a DEMS-ViT classifier (e.g. {missing[0]}); "
            "a bare encoder (DemsModel) has no classification head to explain"
        )
    try:
        with quiet_transformers():
            processor = DemsImageProcessor.from_pretrained(model, **kwargs)
    except OSError:  # no preprocessor_config.json: the processor the model was built for
        processor = DemsImageProcessor.from_model_config(classifier.config)
    return classifier.eval(), processor


def read_image(path: str | os.PathLike):
    """The image in `path`, decoded, or a `UserInputError` naming it and why it cannot be read."""
    from PIL import Image, UnidentifiedImageError

    if os.path.isdir(path):
        raise UserInputError(f"IMAGE {path} is a folder, not an image file")
    try:
        with Image.open(path) as image:
            image.load()  # decode now: a truncated file fails here, not in the processor
            return image.copy()
    except FileNotFoundError:
        raise UserInputError(f"IMAGE {path} does not exist") from None
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise UserInputError(f"IMAGE {path} cannot be read as an image ({' '.join(str(error).split())})") from None


def explain_images(
    model,
    processor,
    images: Sequence,
    labels: Sequence[str | None] | None = None,
    names: Sequence[str] | None = None,
    top_k: int = 3,
    batch_size: int = 16,
) -> list[ImageExplanation]:
    """Run `images` (PIL images, or anything `processor` takes) through `model` and explain each. The model is put
    in evaluation mode for the call and left in the mode it was in."""
    from .. import one_line

    explanations = []
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(images), batch_size):
            batch = list(images[start : start + batch_size])
            try:
                pixel_values = processor(images=batch, return_tensors="pt")["pixel_values"]
            except (ValueError, TypeError) as error:
                raise UserInputError(f"the image processor cannot process an image: {one_line(error)}") from None
            explanations += _explain_batch(model, processor, pixel_values, top_k)
    finally:
        model.train(was_training)
    for index, explanation in enumerate(explanations):
        explanation.label = labels[index] if labels is not None else None
        explanation.name = names[index] if names is not None else ""
    return explanations


@torch.no_grad()
def _explain_batch(model, processor, pixel_values: torch.Tensor, top_k: int) -> list[ImageExplanation]:
    config = model.config
    pixels = pixel_values.to(model.device)
    outputs = model(pixels, output_attentions=True, output_merge_weights=True)
    logits = outputs.logits.float()
    if config.problem_type == "multi_label_classification":
        scores = logits.sigmoid()
    else:
        scores = logits.softmax(-1)
    top = scores.topk(min(top_k, scores.shape[-1]), dim=-1)
    rollout = class_token_rollout(outputs.attentions, outputs.merge_weights, config.merge_layers)
    height, width = pixels.shape[-2:]
    saliency = rollout_to_patches(rollout, height // config.region_size, width // config.region_size)
    by_scale = torch.stack([saliency.class_token] + [grid.sum((1, 2)) for grid in saliency.per_scale], dim=1)
    mixes = [mix.mean(dim=1).cpu().numpy() for mix in merge_scale_mix(outputs.merge_weights)]  # over the regions
    images = display_images(pixel_values, processor)
    return [
        ImageExplanation(
            image=images[i],
            predictions=[
                (config.id2label.get(int(label), str(int(label))), float(score))
                for score, label in zip(top.values[i], top.indices[i], strict=True)
            ],
            saliency=saliency.per_patch[i].cpu().numpy(),
            saliency_by_scale=by_scale[i].cpu().numpy(),
            scale_mix=[mix[i] for mix in mixes],
            regions=outputs.merge_weights[0].shape[1],
        )
        for i in range(pixels.shape[0])
    ]


def display_images(pixel_values: torch.Tensor, processor) -> np.ndarray:
    """`(batch, H, W, 3)` uint8: the processor's output with its normalisation and rescaling undone, i.e. the
    pixels the model was given."""
    values = pixel_values.float()
    channels = values.shape[1]
    if getattr(processor, "do_normalize", False):
        mean = torch.as_tensor(processor.image_mean, dtype=torch.float32).flatten()
        std = torch.as_tensor(processor.image_std, dtype=torch.float32).flatten()
        values = values * std.expand(channels).reshape(1, -1, 1, 1) + mean.expand(channels).reshape(1, -1, 1, 1)
    if getattr(processor, "do_rescale", False):
        values = values / processor.rescale_factor
    values = values.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1)
    if channels == 1:
        values = values.expand(-1, -1, -1, 3)
    return values.numpy()


def pick_examples(labels: Sequence[int], count: int) -> list[int]:
    """Indices of `count` images, one of each class in the order the classes first appear, then the next ones in
    order: a few held-out images that show several classes."""
    chosen, seen = [], set()
    for index, label in enumerate(labels):
        if label not in seen:
            seen.add(label)
            chosen.append(index)
        if len(chosen) == count:
            return chosen
    rest = [i for i in range(len(labels)) if i not in set(chosen)]
    return chosen + rest[: count - len(chosen)]


def draw_held_out_examples(model, processor, dataset, path: str | os.PathLike, count: int = 4,
                           title: str | None = None) -> bool:
    """The model card's picture: `count` held-out images of `dataset` (a `TransformedImageDataset`, whose raw
    images are taken, not its transformed ones) explained in one PNG at `path`. Returns False, writing nothing, for
    a model that is no DEMS-ViT (the ViT baseline) or without held-out images."""
    from .plots import plot_explanations

    if getattr(model.config, "model_type", None) != MODEL_TYPE or processor is None or not dataset:
        return False
    rows = dataset.dataset
    # The first classes' first images, among the first few hundred rows (reading labels is cheap, images are not).
    label_column, image_column = dataset.label_column, dataset.image_column
    head = rows.select(range(min(len(rows), 50 * count)))
    indices = pick_examples(list(head[label_column]), count)
    picked = head.select(indices)
    names = model.config.id2label
    labels = [names.get(int(label), str(label)) for label in picked[label_column]]
    explanations = explain_images(model, processor, list(picked[image_column]), labels=labels)
    plot_explanations(explanations, path, patch_size=model.config.patch_size, title=title)
    return True


__all__ = [
    "ImageExplanation",
    "display_images",
    "draw_held_out_examples",
    "explain_images",
    "load_classifier",
    "pick_examples",
    "read_image",
]
