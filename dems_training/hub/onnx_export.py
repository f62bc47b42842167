"""A saved DEMS-ViT classifier as an ONNX model that ONNX Runtime serves: `export_onnx.py` (the command) and the
throughput benchmark use it.

The exporter is PyTorch's own, `torch.onnx.export(..., dynamo=True)`: the graph comes from `torch.export`, which
DEMS passes (transformers' export tests run on it), and is translated by onnxscript. `optimum`'s exporter is not
used: its ONNX part (`optimum-onnx`, 0.1.0 at the time of writing) requires transformers < 4.58, and this project is
built on transformers 5. PyTorch's older TorchScript exporter (`dynamo=False`) also works on DEMS but is deprecated.

The graph takes `pixel_values` `(batch, num_channels, image_size, image_size)`, float32, with a dynamic batch axis,
and returns `logits` `(batch, num_labels)`. Height and width are fixed at the config's `image_size`: the processor
saved beside the model resizes every image to it.

Nothing counts as exported before ONNX Runtime has run it: the logits of the `.onnx` file at batch 1 and 8 must
equal PyTorch's to `MAX_ABS_DIFFERENCE`, else `OnnxCheckError` and nothing is written.
"""

from __future__ import annotations

import copy
import logging
import shutil
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch

from .. import UserInputError


ONNX_FILE = "model.onnx"
# ONNX Runtime runs opset 18 since its version 1.14 (2023); a newer opset would only narrow where the file runs.
DEFAULT_OPSET = 18
CHECK_BATCH_SIZES = (1, 8)
MAX_ABS_DIFFERENCE = 1e-4
INPUT_NAME, OUTPUT_NAME = "pixel_values", "logits"
# What the export needs beyond the model's own requirements (the project's `test` extras have them).
ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")


class OnnxCheckError(RuntimeError):
    """ONNX Runtime's logits differ from PyTorch's: the export is wrong, not the input. export_onnx.py prints it in
    one line and exits with code 1."""


def require_onnx_packages() -> None:
    """A missing package is named before anything is loaded, with how to get it."""
    import importlib.util

    missing = [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise UserInputError(
            f"the ONNX export needs {', '.join(missing)}, not installed: pip install {' '.join(ONNX_PACKAGES)} "
            "(or the project's test extras, pip install -e '.[test]')"
        )


class DemsLogits(torch.nn.Module):
    """A `DemsForImageClassification` as a module from `pixel_values` to `logits` alone: the graph's one input and
    one output (the model's `ImageClassifierOutput` would export its empty fields too)."""

    def __init__(self, classifier):
        super().__init__()
        self.classifier = classifier

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.classifier(pixel_values=pixel_values, return_dict=True).logits


def logits_module(model) -> DemsLogits:
    """`model` as a `DemsLogits`, in eval mode (no dropout, no drop path)."""
    return DemsLogits(model).eval()


def export_onnx(model, path: Path, opset: int = DEFAULT_OPSET) -> None:
    """Write `model` (a float32 `DemsForImageClassification`) to the ONNX file `path`, batch axis dynamic."""
    config = model.config
    # Traced at batch 2: torch.export specialises sizes 0 and 1, so batch 1 would fix the axis.
    example = torch.randn(2, config.num_channels, config.image_size, config.image_size, dtype=torch.float32)
    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings(), _quiet_torch_onnx():
        # torch's own deprecation notices from inside torch.export (pytree internals): nothing the caller can act on
        warnings.simplefilter("ignore", FutureWarning)
        torch.onnx.export(
            logits_module(model),
            (example,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes={INPUT_NAME: {0: batch}},
            opset_version=opset,
            dynamo=True,
            external_data=False,  # one self-contained file (the presets are far below ONNX's 2 GB limit)
            verbose=False,
        )


@contextmanager
def _quiet_torch_onnx():
    """The exporter logs a warning for each torchvision operator it cannot register when torchvision is absent, as
    it is here by design (DEMS needs none): silenced while exporting, errors still shown."""
    torch_onnx = logging.getLogger("torch.onnx")
    level = torch_onnx.level
    torch_onnx.setLevel(logging.ERROR)
    try:
        yield
    finally:
        torch_onnx.setLevel(level)


def onnx_session(path: Path, threads: int | None = None):
    """An ONNX Runtime CPU session on `path`; `threads` sets its intra-op threads (default: ONNX Runtime's)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def check_onnx(model, path: Path, batch_sizes=CHECK_BATCH_SIZES, seed: int = 0) -> dict[int, float]:
    """Run the ONNX file under ONNX Runtime and `model` under PyTorch on the same random pixels at each batch size;
    return the largest absolute logit difference per batch size, or raise `OnnxCheckError` when one exceeds
    `MAX_ABS_DIFFERENCE` or the shapes differ."""
    import numpy as np

    config = model.config
    session = onnx_session(path)
    generator = torch.Generator().manual_seed(seed)
    differences = {}
    for batch in batch_sizes:
        pixels = torch.randn(batch, config.num_channels, config.image_size, config.image_size, generator=generator)
        with torch.no_grad():
            expected = logits_module(model)(pixels).float().numpy()
        got = session.run([OUTPUT_NAME], {INPUT_NAME: pixels.numpy()})[0]
        if got.shape != expected.shape:
            raise OnnxCheckError(
                f"{path} gives logits of shape {got.shape} at batch {batch}, PyTorch {expected.shape}: not written"
            )
        differences[batch] = float(np.abs(got - expected).max())
        if not differences[batch] <= MAX_ABS_DIFFERENCE:  # also catches NaN
            raise OnnxCheckError(
                f"{path}: ONNX Runtime's logits differ from PyTorch's by up to {differences[batch]:.3g} at batch "
                f"{batch} (allowed {MAX_ABS_DIFFERENCE:g}): not written"
            )
    return differences


def check_output_dir(output_dir: Path, model_dir: Path, overwrite: bool) -> None:
    """`output_dir` can be written without touching the model or anything else: not the model folder, not inside or
    above it, and, unless `overwrite`, not an existing file or non-empty folder."""
    resolved, source = output_dir.resolve(), model_dir.resolve()
    if resolved == source or resolved in source.parents:
        raise UserInputError(f"output_dir {output_dir} holds the model folder {model_dir}; choose another folder")
    if source in resolved.parents:
        raise UserInputError(f"output_dir {output_dir} lies inside the model folder {model_dir}; choose another")
    blocking = next((p for p in resolved.parents if p.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise UserInputError(f"output_dir {output_dir} cannot be created: {blocking} is a file")
    if output_dir.exists() and not overwrite and (not output_dir.is_dir() or any(output_dir.iterdir())):
        kind = "a file" if not output_dir.is_dir() else "a folder that is not empty"
        raise UserInputError(f"output_dir {output_dir} exists ({kind}); pass --overwrite to replace it")


def export_folder(model_dir: Path, output_dir: Path, overwrite: bool = False, opset: int = DEFAULT_OPSET) -> dict:
    """Export the saved classifier in `model_dir` to `output_dir` (`model.onnx`, with `config.json` and
    `preprocessor_config.json` for the labels and the image processing), after checking it under ONNX Runtime.
    Returns `{"files": [...], "max_abs_difference": {batch: value}}`. Built beside `output_dir` and moved into
    place only once checked: a failure leaves an existing `output_dir` as it was."""
    from .. import quiet_transformers
    from .source import load_folder

    if not model_dir.is_dir():
        problem = "is not a folder" if model_dir.exists() else "does not exist"
        raise UserInputError(f"model_dir {model_dir} {problem}; give a folder saved by train.py or save_pretrained")
    check_output_dir(output_dir, model_dir, overwrite)
    require_onnx_packages()
    source = load_folder(model_dir)  # a folder that is not a DEMS classifier is refused here, naming what is wrong
    model = source.model.float().eval()
    parent = next(p for p in output_dir.resolve().parents if p.exists())
    with tempfile.TemporaryDirectory(prefix=".dems-onnx-", dir=parent) as tmp:
        staging = Path(tmp) / "onnx"
        staging.mkdir()
        export_onnx(model, staging / ONNX_FILE, opset)
        differences = check_onnx(model, staging / ONNX_FILE)
        with quiet_transformers():
            _onnx_folder_config(model.config).save_pretrained(staging)
            source.processor.save_pretrained(staging)
        if output_dir.is_dir():
            shutil.rmtree(output_dir)
        elif output_dir.exists():
            output_dir.unlink()
        output_dir.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), str(output_dir))
    files = sorted(p.relative_to(output_dir).as_posix() for p in output_dir.rglob("*") if p.is_file())
    return {"files": files, "max_abs_difference": differences}


def _onnx_folder_config(config):
    """The config for the ONNX folder: the model's, with `auto_map` naming only the configuration class, whose code
    is written beside it. The model classes' entries would point at modeling code the folder has no use for."""
    config = copy.deepcopy(config)
    auto_map = getattr(config, "auto_map", None) or {}
    config.auto_map = {key: value for key, value in auto_map.items() if key == "AutoConfig"}
    return config


__all__ = [
    "CHECK_BATCH_SIZES",
    "DEFAULT_OPSET",
    "MAX_ABS_DIFFERENCE",
    "ONNX_FILE",
    "DemsLogits",
    "OnnxCheckError",
    "check_onnx",
    "export_folder",
    "export_onnx",
    "logits_module",
    "onnx_session",
]
