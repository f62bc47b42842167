"""Run in a fresh interpreter by test_push_to_hub.py: load an exported DEMS folder as a Hub user without this
project would, and write what came out to a JSON file.

Usage: python -I push_isolated_load.py EXPORTED_FOLDER PIXELS.npy IMAGE.png OUT.json

`-I` already keeps the current directory and PYTHONPATH off sys.path; an editable install of the project can still
reach it (a .pth path entry or setuptools' import finder), so both are removed here, and the script refuses to go
on unless the project's packages are really out of reach.
"""

import importlib.util
import json
import os
import sys


PROJECT_PACKAGES = ("configuration_dems", "modeling_dems", "dems_training")
REPO_ROOT = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir))


def hide_project() -> None:
    sys.path[:] = [p for p in sys.path if p and os.path.realpath(p) != REPO_ROOT]
    sys.meta_path[:] = [f for f in sys.meta_path if not _from_editable_install(f)]
    sys.path_hooks[:] = [h for h in sys.path_hooks if not _from_editable_install(h)]
    sys.path_importer_cache.clear()
    for name in PROJECT_PACKAGES:
        if importlib.util.find_spec(name) is not None:
            sys.exit(f"ISOLATION FAILED: {name} is importable ({importlib.util.find_spec(name).origin})")
        try:
            importlib.import_module(name)
        except ImportError:
            continue
        sys.exit(f"ISOLATION FAILED: import {name} succeeded")


def _from_editable_install(hook) -> bool:
    # setuptools' editable finder is installed as a class (not an instance) from a module named __editable__...
    modules = (getattr(hook, "__module__", None) or "", type(hook).__module__)
    return any(m.startswith("__editable__") for m in modules)


def main(folder: str, pixels_file: str, image_file: str, out_file: str) -> None:
    hide_project()
    import numpy as np
    import torch
    from PIL import Image
    from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoModelForImageClassification, pipeline

    config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
    processor = AutoImageProcessor.from_pretrained(folder, trust_remote_code=True)
    model = AutoModelForImageClassification.from_pretrained(folder, trust_remote_code=True).eval()
    encoder = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    image = Image.open(image_file)
    pixels = torch.from_numpy(np.load(pixels_file))
    with torch.no_grad():
        logits = model(pixel_values=pixels).logits
        pooled = encoder(pixel_values=pixels).pooler_output
        processed = processor(images=image, return_tensors="pt")["pixel_values"]
        image_logits = model(pixel_values=processed).logits
    classifier = pipeline("image-classification", model=folder, trust_remote_code=True)
    predictions = classifier(image, top_k=model.config.num_labels)  # every class
    result = {
        "config_class": f"{type(config).__module__}.{type(config).__name__}",
        "processor_class": f"{type(processor).__module__}.{type(processor).__name__}",
        "model_class": f"{type(model).__module__}.{type(model).__name__}",
        "encoder_class": f"{type(encoder).__module__}.{type(encoder).__name__}",
        "logits": logits.tolist(),
        "pooled": pooled.tolist(),
        "processed": processed.tolist(),
        "image_logits": image_logits.tolist(),
        "pipeline": predictions,
        "project_modules": sorted(m for m in sys.modules if m.split(".")[0] in PROJECT_PACKAGES),
    }
    with open(out_file, "w", encoding="utf-8") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(*sys.argv[1:5])
