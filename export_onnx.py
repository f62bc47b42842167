#!/usr/bin/env python
"""Export a saved DEMS-ViT classifier (a train.py output or any save_pretrained folder) to ONNX, for ONNX Runtime.

    python export_onnx.py outputs/digits outputs/digits-onnx [--overwrite]

OUTPUT_DIR gets model.onnx (input `pixel_values` of shape (batch, channels, image_size, image_size), float32, the
batch axis dynamic; output `logits`), config.json (the labels) and preprocessor_config.json (the image processing
the model expects). The export is run under ONNX Runtime before it is written: its logits must equal PyTorch's to
1e-4 at batch 1 and 8. It needs onnx, onnxscript and onnxruntime (the project's test extras). docs/deployment.md
shows inference with ONNX Runtime and the image processor.

A bad input (a folder that is not a DEMS model, an existing output without --overwrite) is one line on stderr and
exit code 2; an export whose ONNX Runtime logits differ is one line and exit code 1, and nothing is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dems_training import run_command


PROG = "export_onnx.py"
CHECK_FAILED_EXIT_CODE = 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model_dir", type=Path, help="a folder saved by train.py or save_pretrained")
    parser.add_argument("output_dir", type=Path, help="the folder to write model.onnx and its configs into")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output_dir")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> None:
    from transformers.utils import logging as hf_logging

    from dems_training.hub.onnx_export import MAX_ABS_DIFFERENCE, export_folder

    hf_logging.disable_progress_bar()  # the weights' loading bar would only hide the two lines below
    result = export_folder(args.model_dir, args.output_dir, overwrite=args.overwrite)
    checks = ", ".join(f"batch {b}: {d:.1e}" for b, d in result["max_abs_difference"].items())
    print(f"wrote {args.output_dir}: {', '.join(result['files'])}")
    print(f"ONNX Runtime vs PyTorch, largest logit difference (allowed {MAX_ABS_DIFFERENCE:g}): {checks}")


def main(argv: list[str] | None = None) -> int:
    """0 on success; 2 after a user error; 1 when ONNX Runtime's logits differ from PyTorch's. Each is one line."""
    from dems_training.hub.onnx_export import OnnxCheckError

    try:
        return run_command(lambda arguments: run(parse_args(arguments)), PROG, argv)
    except OnnxCheckError as error:
        print(f"{PROG}: error: {' '.join(str(error).split())}", file=sys.stderr)
        return CHECK_FAILED_EXIT_CODE


if __name__ == "__main__":
    sys.exit(main())
