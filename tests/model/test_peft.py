"""LoRA fine-tuning with `peft`, as docs/deployment.md shows it: adapters on the attention's linear layers (`qkv`,
`proj`), a new head trained in full (`modules_to_save`), the Trainer; and the input embeddings that let gradients
through frozen weights under reentrant gradient checkpointing."""

import pytest
import torch
from datasets import Dataset
from peft import LoraConfig, PeftModel, get_peft_model
from tiny_configs import make_tiny_config
from transformers import AutoModelForImageClassification, Trainer, TrainingArguments

from modeling_dems import DemsForImageClassification
from modeling_dems.modeling_dems import DemsMultiScalePatchEmbeddings


pytestmark = pytest.mark.usefixtures("single_torch_thread")

LORA_TARGETS = ["qkv", "proj"]


def _lora_config() -> LoraConfig:
    return LoraConfig(r=4, lora_alpha=8, target_modules=LORA_TARGETS, lora_dropout=0.0, modules_to_save=["classifier"])


def _pretrained(folder) -> DemsForImageClassification:
    """A 'pre-trained' model saved to `folder`, then loaded back as a user would load it."""
    torch.manual_seed(0)
    DemsForImageClassification(make_tiny_config("four_regions")).save_pretrained(folder)
    return AutoModelForImageClassification.from_pretrained(folder)


def _images(n=8) -> Dataset:
    generator = torch.Generator().manual_seed(1)
    pixels = torch.randn(n, 3, 32, 32, generator=generator)
    return Dataset.from_dict({"pixel_values": pixels.numpy(), "labels": [i % 3 for i in range(n)]}).with_format("torch")


def _train(model, output_dir, steps=4) -> None:
    args = TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=4,
        max_steps=steps,
        learning_rate=1e-2,
        # A PeftModel's forward takes **kwargs: Trainer cannot read the column names from it.
        remove_unused_columns=False,
        label_names=["labels"],
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        seed=0,
    )
    Trainer(model=model, args=args, train_dataset=_images()).train()


@pytest.fixture
def trained_lora(tmp_path):
    """(the base model's folder, every tensor of the base model and of the new trainable ones before training,
    the trained LoRA model)."""
    base_dir = tmp_path / "base"
    base = _pretrained(base_dir)
    before = {name: value.clone() for name, value in base.state_dict().items()}
    model = get_peft_model(base, _lora_config())
    before |= {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
    _train(model, tmp_path / "run")
    return base_dir, before, model.eval()


def test_lora_changes_only_the_adapters_and_the_head(trained_lora):
    _, before, model = trained_lora
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable, "LoRA left nothing to train"
    assert all("lora_" in name or ".modules_to_save." in name for name in trainable), sorted(trainable)
    # both attention layers of every block got adapters, and nothing else did
    adapted = {name.split(".lora_")[0] for name in trainable if "lora_" in name}
    assert {name.rsplit(".", 1)[-1] for name in adapted} == set(LORA_TARGETS)
    assert len(adapted) == len(LORA_TARGETS) * model.config.num_hidden_layers

    checked = set()
    for name, value in model.named_parameters():
        if name in trainable:
            assert not torch.equal(value, before[name]), f"{name} was not trained"
            continue
        # frozen: the base model's weights, under PEFT's names
        original = name.removeprefix("base_model.model.").replace(".base_layer.", ".")
        original = original.replace(".original_module.", ".")
        assert torch.equal(value, before[original]), f"frozen {original} changed"
        checked.add(original)
    assert checked == set(before) - trainable  # every weight of the base model was looked at


def test_the_adapter_saves_loads_and_merges_to_the_same_logits(trained_lora, tmp_path):
    base_dir, _, model = trained_lora
    pixels = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = model(pixel_values=pixels).logits
        base_logits = AutoModelForImageClassification.from_pretrained(base_dir).eval()(pixels).logits
    assert not torch.allclose(expected, base_logits, atol=1e-3)  # training moved the logits

    model.save_pretrained(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists()
    loaded = PeftModel.from_pretrained(AutoModelForImageClassification.from_pretrained(base_dir), tmp_path / "adapter")
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(pixel_values=pixels).logits, expected, rtol=0, atol=1e-5)

    merged = loaded.merge_and_unload().eval()
    assert isinstance(merged, DemsForImageClassification)
    assert not any("lora_" in name for name, _ in merged.named_parameters())
    with torch.no_grad():
        torch.testing.assert_close(merged(pixels).logits, expected, rtol=0, atol=1e-5)


def test_frozen_weights_and_reentrant_checkpointing_still_train_the_adapters():
    torch.manual_seed(0)
    model = DemsForImageClassification(make_tiny_config("four_regions"))
    embeddings = model.get_input_embeddings()
    assert isinstance(embeddings, DemsMultiScalePatchEmbeddings)
    assert embeddings is model.dems.get_input_embeddings() is model.dems.embeddings.patch_embeddings

    for parameter in model.parameters():
        parameter.requires_grad_(False)
    model.enable_input_require_grads()
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": True})
    model = get_peft_model(model, LoraConfig(r=4, target_modules=LORA_TARGETS, lora_dropout=0.0)).train()
    seen = []
    embeddings.register_forward_hook(lambda module, args, output: seen.append(output.requires_grad))

    pixels = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    model(pixel_values=pixels, labels=torch.tensor([0, 1])).loss.backward()
    assert seen == [True]
    # lora_A gets no gradient in the first step (lora_B is zero); lora_B does, in every block
    lora_b = {name: p.grad for name, p in model.named_parameters() if "lora_B" in name}
    assert len(lora_b) == 2 * make_tiny_config("four_regions").num_hidden_layers
    assert all(grad is not None and grad.abs().sum() > 0 for grad in lora_b.values()), sorted(lora_b)
