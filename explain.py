#!/usr/bin/env python
"""See what a DEMS-ViT classifier fuses: per image, the class-token saliency over the image (attention rollout
through the blocks and the cross-scale merges), the top predictions, and the scale mix of each merge (the share of
each merged token's weight that comes from each patch size); for a data set, the mean scale mix per merge.

    # images of your own, with a train.py output folder or a Hub id
    python explain.py outputs/fmnist-dems shoe.png shirt.jpg --output explained/
    # 500 held-out images of a data set: scale_mix.png (mean scale mix per merge), examples.png, scale_mix.json
    python explain.py outputs/fmnist-dems --dataset fashion_mnist --max_images 500 --output explained/

Writes PNGs into --output: `<image name>.explained.png` per image; with --dataset `scale_mix.png`, `examples.png`
(a few of its images, one row each) and `scale_mix.json` (the numbers of the chart). CPU by default, about a second
per image. A model or image that cannot be used is refused in one line, exit code 2.
"""

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
import torch

from dems_training import UserInputError, run_command


logger = logging.getLogger("explain")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
    )
    parser.add_argument("model", metavar="MODEL", help="a train.py --output_dir, a save_pretrained folder or a Hub id")
    parser.add_argument("images", metavar="IMAGE", nargs="*", help="image files to explain, one PNG each")
    parser.add_argument("--output", required=True, type=Path, help="folder for the PNGs (made if missing)")
    parser.add_argument("--revision", default=None, help="Hub branch, tag or commit of MODEL")
    data = parser.add_argument_group("a data set (as train.py reads it)")
    data.add_argument("--dataset", default=None,
                      help="a train.py preset (digits, fashion_mnist, cifar10, ...) or a Hub data set id; its "
                      "held-out split is explained")
    data.add_argument("--data_dir", default=None, help="an IDX release folder, as train.py's --data_dir")
    data.add_argument("--train_dir", default=None, help="an image folder of class sub-folders, as train.py's")
    data.add_argument("--max_images", type=int, default=200, help="held-out images to average over (default 200)")
    data.add_argument("--examples", type=int, default=4, help="of them, images drawn in examples.png (default 4)")
    parser.add_argument("--top_k", type=int, default=3, help="predictions shown per image (default 3)")
    parser.add_argument("--batch_size", type=int, default=16, help="images per forward pass (default 16)")
    return parser.parse_args(argv)


def check_args(args: argparse.Namespace) -> None:
    if not args.images and args.dataset is None and args.train_dir is None:
        raise UserInputError("nothing to explain: give IMAGE files, --dataset or --train_dir")
    if args.data_dir is not None and args.dataset is None:
        raise UserInputError(f"--data_dir={args.data_dir!r} needs --dataset (fashion_mnist, mnist or emnist)")
    for flag, value in (("--max_images", args.max_images), ("--top_k", args.top_k),
                        ("--batch_size", args.batch_size), ("--examples", args.examples)):
        if value < 1:
            raise UserInputError(f"{flag}={value} must be at least 1")
    if args.output.exists() and not args.output.is_dir():
        raise UserInputError(f"--output {args.output} is a file; give a folder")


def output_names(paths: list[str]) -> list[str]:
    """`<stem>.explained.png` per image; images of the same name (from different folders) get a number."""
    names, used = [], set()
    for path in paths:
        stem = Path(path).stem or "image"
        name, number = f"{stem}.explained.png", 2
        while name in used:
            name, number = f"{stem}-{number}.explained.png", number + 1
        used.add(name)
        names.append(name)
    return names


def explain_files(model, processor, images: list, args) -> list[Path]:
    from dems_training.explain.explanations import explain_images
    from dems_training.explain.plots import plot_explanations

    explanations = explain_images(model, processor, images, names=[Path(p).name for p in args.images],
                                  top_k=args.top_k, batch_size=args.batch_size)
    written = []
    for explanation, name in zip(explanations, output_names(args.images), strict=True):
        path = args.output / name
        plot_explanations([explanation], path, patch_size=model.config.patch_size)
        written.append(path)
    return written


def explain_dataset(model, processor, args) -> list[Path]:
    from dems_training.data.loading import load_data
    from dems_training.explain.explanations import explain_images, pick_examples
    from dems_training.explain.plots import plot_explanations, plot_scale_mix_summary
    from dems_training.outputs import shareable_dataset_name

    data = load_data(dataset=args.dataset or "digits", data_dir=args.data_dir, train_dir=args.train_dir)
    held_out = data.eval.select(range(min(args.max_images, len(data.eval))))
    mixes, saliency, correct = None, [], 0
    for start in range(0, len(held_out), args.batch_size):
        rows = held_out[start : start + args.batch_size]
        names = [data.class_names[int(label)] for label in rows[data.label_column]]
        batch = explain_images(model, processor, rows[data.image_column], labels=names, top_k=1,
                               batch_size=args.batch_size)
        # Per image: each merge's mix averaged over its merged tokens; the saliency's shares of the image's tokens.
        per_image = [np.stack([mix.mean(axis=0) for mix in e.scale_mix]) for e in batch]
        mixes = np.concatenate([m for m in (mixes, np.stack(per_image)) if m is not None])
        saliency += [e.saliency_by_scale[1:] / max(1e-12, 1.0 - e.saliency_by_scale[0]) for e in batch]
        correct += sum(e.predictions[0][0] == e.label for e in batch)
    count = len(held_out)
    mean_mixes, mean_saliency = mixes.mean(axis=0), np.mean(saliency, axis=0)
    sizes, tokens_in = [], 85
    for tokens_out in model.config.num_merged_tokens:
        sizes.append((tokens_in, tokens_out))
        tokens_in = tokens_out
    model_name = Path(args.model).name if Path(args.model).exists() else args.model
    source = shareable_dataset_name(data.source)  # a local path shortened to the data set's folder name
    chart = args.output / "scale_mix.png"
    plot_scale_mix_summary(list(mean_mixes), mean_saliency, chart, sizes, patch_size=model.config.patch_size,
                           title=f"{model_name}: mean over {count} held-out images of {source}")
    picked = pick_examples(list(held_out[data.label_column]), min(args.examples, count))
    chosen = held_out.select(picked)
    examples = explain_images(model, processor, chosen[data.image_column], top_k=args.top_k,
                              labels=[data.class_names[int(label)] for label in chosen[data.label_column]])
    example_path = args.output / "examples.png"
    plot_explanations(examples, example_path, patch_size=model.config.patch_size,
                      title=f"{model_name} on held-out images of {source}")
    numbers = args.output / "scale_mix.json"
    numbers.write_text(json.dumps({
        "model": model_name,
        "data": source,
        "images": count,
        "top1_accuracy": correct / count,
        "scales": ["p", "2p", "4p", "8p"],
        "merges": [
            {"tokens_in": n_in, "tokens_out": n_out, "mean_scale_mix": [round(float(v), 4) for v in mix]}
            for (n_in, n_out), mix in zip(sizes, mean_mixes, strict=True)
        ],
        "uniform_scale_mix": [round(v / 85, 4) for v in (64, 16, 4, 1)],
        "class_token_saliency_by_scale": [round(float(v), 4) for v in mean_saliency],
    }, indent=2) + "\n")
    print(f"{count} held-out images of {source}: top-1 {100 * correct / count:.1f}%")
    for k, mix in enumerate(mean_mixes):
        shares = ", ".join(f"{name} {100 * v:.1f}%" for name, v in zip(("p", "2p", "4p", "8p"), mix, strict=True))
        print(f"merge {k + 1} scale mix: {shares}")
    return [chart, example_path, numbers]


def run(argv: list[str] | None = None) -> list[Path]:
    args = parse_args(argv)
    check_args(args)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from transformers.utils import logging as hf_logging

    from dems_training.explain.explanations import load_classifier, read_image

    hf_logging.disable_progress_bar()  # the weights' loading bar: noise on stderr for a model this size
    images = [read_image(path) for path in args.images]  # every file is checked before anything is loaded
    model, processor = load_classifier(args.model, args.revision)
    args.output.mkdir(parents=True, exist_ok=True)
    written = []
    with torch.inference_mode():
        if images:
            written += explain_files(model, processor, images, args)
        if args.dataset is not None or args.train_dir is not None:
            written += explain_dataset(model, processor, args)
    for path in written:
        print(f"wrote {path}")
    return written


def main(argv: list[str] | None = None) -> int:
    return run_command(run, "explain.py", argv)


if __name__ == "__main__":
    sys.exit(main())
