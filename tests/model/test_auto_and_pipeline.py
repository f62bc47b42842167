import numpy as np
import pytest
import torch
from PIL import Image
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageClassification,
    pipeline,
)

from modeling_dems import DemsForImageClassification, DemsImageProcessor, DemsModel


def _save_tiny_classifier(folder, config):
    torch.manual_seed(0)
    model = DemsForImageClassification(config).eval()
    model.save_pretrained(folder)
    DemsImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return model


def test_auto_classes_load_a_saved_checkpoint(tmp_path, small_config, pixels):
    model = _save_tiny_classifier(tmp_path, small_config)
    assert type(AutoConfig.from_pretrained(tmp_path)).__name__ == "DemsConfig"
    assert isinstance(AutoImageProcessor.from_pretrained(tmp_path), DemsImageProcessor)
    classifier = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    assert isinstance(classifier, DemsForImageClassification)
    base = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(base, DemsModel)
    with torch.no_grad():
        assert torch.equal(classifier(pixels).logits, model(pixels).logits)
        # the base model loaded from a classifier checkpoint holds the same encoder
        assert torch.equal(base(pixels).pooler_output, model.dems(pixels).pooler_output)


def test_pipeline_returns_top_k_labels_from_id2label(tmp_path, small_config):
    model = _save_tiny_classifier(tmp_path, small_config)
    classify = pipeline("image-classification", model=str(tmp_path))
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 30, 3), dtype=np.uint8))
    predictions = classify(image, top_k=2)
    assert len(predictions) == 2
    assert {p["label"] for p in predictions} <= {"cat", "dog", "bird"}
    assert predictions[0]["score"] >= predictions[1]["score"]

    # the top label is the model's own argmax on the processed image
    pixels = DemsImageProcessor()(image, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        probabilities = model(pixels).logits.softmax(-1)[0]
    assert predictions[0]["label"] == small_config.id2label[int(probabilities.argmax())]
    assert abs(predictions[0]["score"] - probabilities.max().item()) < 1e-5


@pytest.mark.slow  # builds, runs, saves and reloads the full tiny-32 preset
def test_demo_round_trip(tmp_path, capsys):
    from modeling_dems import demo

    demo.main(["--output_dir", str(tmp_path / "demo")])
    printed = capsys.readouterr().out
    assert "5,582,888 parameters" in printed
    assert "identical logits = True" in printed
    assert (tmp_path / "demo" / "model.safetensors").exists()
