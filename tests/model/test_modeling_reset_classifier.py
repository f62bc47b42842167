"""`DemsForImageClassification.reset_classifier`: a new head for other classes, initialised as the model's own init
does, with the config's labels following and the encoder kept."""

import pytest
import torch

from modeling_dems import DemsForImageClassification


def test_new_head_has_the_new_classes_and_the_encoder_is_kept(small_config, pixels):
    model = DemsForImageClassification(small_config).eval()
    encoder = {name: tensor.clone() for name, tensor in model.dems.state_dict().items()}
    names = {0: "ant", 1: "bee", 2: "cow", 3: "dog", 4: "eel"}
    model.reset_classifier(5, id2label=names)
    assert model.classifier.weight.shape == (5, 32) and model.classifier.bias.shape == (5,)
    assert model.num_labels == model.config.num_labels == 5
    assert model.config.id2label == names
    assert model.config.label2id == {"ant": 0, "bee": 1, "cow": 2, "dog": 3, "eel": 4}
    assert model(pixels).logits.shape == (2, 5)
    for name, tensor in model.dems.state_dict().items():
        assert torch.equal(tensor, encoder[name]), name


def test_new_head_is_initialised_as_the_model_initialises_it(small_config):
    # std 0.5 (not the default 0.02) shows that the head follows the config. nn.Linear's own init would give
    # uniform weights of std 1 / sqrt(3 * 32) = 0.10 and a non-zero bias.
    small_config.initializer_range = 0.5
    model = DemsForImageClassification(small_config)
    torch.manual_seed(0)
    model.reset_classifier(400)
    weight, bias = model.classifier.weight, model.classifier.bias
    # 12,800 draws: the standard error of the std is 0.5 / sqrt(2 * 12,800) = 0.003, of the mean 0.0044.
    assert weight.std().item() == pytest.approx(0.5, abs=0.02)
    assert weight.mean().item() == pytest.approx(0.0, abs=0.02)
    # truncated at +-2 (the reference's trunc_normal_ bounds); untruncated, ~0.8 of the draws would lie beyond
    assert weight.abs().max().item() <= 2.0
    assert torch.equal(bias, torch.zeros(400))


def test_same_number_of_classes_still_gets_a_fresh_head_and_default_names(small_config):
    model = DemsForImageClassification(small_config)
    old = model.classifier.weight.detach().clone()
    model.reset_classifier(3)
    assert not torch.equal(model.classifier.weight, old)
    assert model.config.id2label == {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}  # cat, dog, bird are gone
    assert model.config.label2id == {"LABEL_0": 0, "LABEL_1": 1, "LABEL_2": 2}


def test_new_head_takes_the_models_dtype(small_config):
    model = DemsForImageClassification(small_config).to(torch.float64).eval()
    model.reset_classifier(4)
    assert model.classifier.weight.dtype == torch.float64
    pixels = torch.randn(1, 3, 32, 32, dtype=torch.float64)
    assert model(pixels).logits.dtype == torch.float64


def test_no_classes_leaves_the_pooled_features(small_config, pixels):
    model = DemsForImageClassification(small_config).eval()
    model.reset_classifier(0)
    assert isinstance(model.classifier, torch.nn.Identity)
    assert model.config.num_labels == 0
    with torch.no_grad():
        assert torch.equal(model(pixels).logits, model.dems(pixels).pooler_output)


def test_reset_head_survives_save_and_load(small_config, tmp_path):
    model = DemsForImageClassification(small_config)
    model.reset_classifier(2, id2label={0: "no", 1: "yes"})
    model.save_pretrained(tmp_path)
    loaded = DemsForImageClassification.from_pretrained(tmp_path)
    assert loaded.config.id2label == {0: "no", 1: "yes"}
    assert torch.equal(loaded.classifier.weight, model.classifier.weight)


@pytest.mark.parametrize(
    "num_labels, id2label, message",
    [
        (-1, None, "num_labels=-1 must be a whole number >= 0."),
        (2.0, None, "num_labels=2.0 must be a whole number >= 0."),
        (True, None, "num_labels=True must be a whole number >= 0."),
        (2, {0: "a", 2: "b"}, "id2label has the ids [0, 2]; with num_labels=2 it must name each of the ids 0 to 1"),
        (2, {0: "a"}, "id2label has the ids [0]; with num_labels=2"),
    ],
)
def test_bad_arguments_are_refused(small_config, num_labels, id2label, message):
    model = DemsForImageClassification(small_config)
    with pytest.raises(ValueError) as error:
        model.reset_classifier(num_labels, id2label=id2label)
    assert message in str(error.value)
    assert model.config.num_labels == 3  # nothing changed
