"""A one-minute tour: build a reference preset, classify an image, save it and load it back through the Auto classes.

    python -m modeling_dems.demo [--preset tiny-32] [--output_dir DIR]

The weights are random (nothing is downloaded), so the predicted label means nothing; what the demo shows is the
round trip every DEMS checkpoint takes: processor -> model -> save_pretrained -> AutoModel/pipeline.
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import AutoModelForImageClassification, pipeline

from . import DEMS_PRESETS, DemsConfig, DemsForImageClassification, DemsImageProcessor


CIFAR10_LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _example_image(size: int = 48) -> Image.Image:
    """A colour gradient, so that the demo needs no file."""
    ramp = np.linspace(0, 255, size, dtype=np.float64)
    rgb = np.stack([np.outer(ramp, np.ones(size)), np.outer(np.ones(size), ramp), np.full((size, size), 128.0)], -1)
    return Image.fromarray(rgb.astype(np.uint8))


def run(preset: str, output_dir: Path) -> None:
    id2label = dict(enumerate(CIFAR10_LABELS))
    config = DemsConfig.from_preset(preset, id2label=id2label, label2id={v: k for k, v in id2label.items()})
    torch.manual_seed(0)
    model = DemsForImageClassification(config).eval()
    processor = DemsImageProcessor.from_model_config(config)
    parameters = sum(p.numel() for p in model.parameters())
    print(f"DEMS-ViT {preset}: {parameters:,} parameters, {config.num_labels} classes")

    pixel_values = processor(_example_image(), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        outputs = model(pixel_values, output_hidden_states=True)
    print("tokens per block:", [h.shape[1] for h in outputs.hidden_states])
    print("prediction (random weights):", config.id2label[int(outputs.logits.argmax(-1))])

    model.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    reloaded = AutoModelForImageClassification.from_pretrained(output_dir).eval()
    with torch.no_grad():
        same = torch.equal(reloaded(pixel_values).logits, outputs.logits)
    print(f"saved to {output_dir} and reloaded: identical logits = {same}")
    top3 = pipeline("image-classification", model=str(output_dir))(_example_image(), top_k=3)
    print("pipeline top-3:", ", ".join(f"{p['label']} {p['score']:.3f}" for p in top3))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], prog="python -m modeling_dems.demo")
    parser.add_argument("--preset", default="tiny-32", choices=sorted(DEMS_PRESETS))
    parser.add_argument("--output_dir", type=Path, help="where to save the checkpoint (default: a temporary folder)")
    args = parser.parse_args(argv)
    if args.output_dir is not None:
        if args.output_dir.exists() and any(args.output_dir.iterdir()):
            parser.error(f"output_dir={args.output_dir} is not empty; choose a new folder.")
        run(args.preset, args.output_dir)
        return
    with tempfile.TemporaryDirectory() as folder:
        run(args.preset, Path(folder))


if __name__ == "__main__":
    main()
