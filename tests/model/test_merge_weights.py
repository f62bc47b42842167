"""The merges' soft assignments as an output (`output_merge_weights`): None unless asked, as `attentions`; one
`(batch, regions, tokens_in, tokens_out)` tensor per merge, summing to 1 over the incoming tokens; exactly the mix
the model used; the logits untouched; the same under eager and SDPA attention and through torch.compile."""

import pytest
import torch
from huggingface_hub.errors import StrictDataclassError
from tiny_configs import make_tiny_config
from transformers.modeling_outputs import BaseModelOutputWithPooling, ImageClassifierOutput

from modeling_dems import DemsConfig, DemsForImageClassification, DemsModel
from modeling_dems.modeling_dems import DemsImageClassifierOutput, DemsModelOutput


def _model(attn_implementation: str = "sdpa", **overrides) -> DemsForImageClassification:
    torch.manual_seed(0)
    config = make_tiny_config("four_regions", **overrides)  # 4 regions, merges 85 -> 10 -> 3 before blocks 2 and 4
    return DemsForImageClassification._from_config(config, attn_implementation=attn_implementation).eval()


@pytest.fixture
def images() -> torch.Tensor:
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def test_none_unless_asked_and_the_output_types_stay_transformers_ones(images):
    model = _model()
    with torch.no_grad():
        plain = model(images)
        asked = model(images, output_merge_weights=True)
        base = model.dems(images, output_merge_weights=True)
    assert isinstance(plain, DemsImageClassifierOutput) and isinstance(plain, ImageClassifierOutput)
    assert isinstance(base, DemsModelOutput) and isinstance(base, BaseModelOutputWithPooling)
    assert plain.merge_weights is None and list(plain.keys()) == ["logits"]
    assert [tuple(w.shape) for w in asked.merge_weights] == [(2, 4, 85, 10), (2, 4, 10, 3)]
    assert [tuple(w.shape) for w in base.merge_weights] == [(2, 4, 85, 10), (2, 4, 10, 3)]


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
def test_logits_are_the_same_whatever_is_asked(images, attn_implementation):
    model = _model(attn_implementation)
    with torch.no_grad():
        plain = model(images).logits
        asked = model(images, output_merge_weights=True, output_attentions=True, output_hidden_states=True)
        only_merges = model(images, output_merge_weights=True).logits
    assert torch.equal(only_merges, plain)
    if attn_implementation == "eager":
        assert torch.equal(asked.logits, plain)
    else:  # output_attentions runs eager attention for that call: the same to float32 rounding
        torch.testing.assert_close(asked.logits, plain, rtol=0, atol=1e-5)


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
def test_weights_sum_to_one_and_mix_the_tokens_the_model_merged(images, attn_implementation):
    model = _model(attn_implementation)
    config = model.config
    merged_inputs = {}

    def keep_input(index):
        def hook(module, args):
            merged_inputs[index] = args[0].detach().clone()

        return hook

    # The sequence the block after each merge receives: the class token, then the merged tokens, region by region.
    for merge_layer in config.merge_layers:
        model.dems.encoder.layers[merge_layer - 1].register_forward_pre_hook(keep_input(merge_layer - 1))
    with torch.no_grad():
        outputs = model(images, output_merge_weights=True, output_hidden_states=True)
    for k, merge_layer in enumerate(config.merge_layers):
        weights = outputs.merge_weights[k]
        torch.testing.assert_close(weights.sum(dim=2), torch.ones(weights.shape[0], 4, weights.shape[3]))
        assert (weights >= 0).all()
        before = outputs.hidden_states[merge_layer - 1]  # the embeddings, then each block's output
        regions = before[:, 1:].reshape(2, 4, -1, config.hidden_size)
        mixed = torch.einsum("brij,brid->brjd", weights, regions).flatten(1, 2)
        after = merged_inputs[merge_layer - 1]
        torch.testing.assert_close(mixed, after[:, 1:], rtol=0, atol=1e-6)
        assert torch.equal(after[:, 0], before[:, 0])  # the class token passes through


def test_settable_in_the_config_and_overridden_per_call(tmp_path, images):
    model = _model(output_merge_weights=True)
    with torch.no_grad():
        assert len(model(images).merge_weights) == 2
        assert model(images, output_merge_weights=False).merge_weights is None
    model.save_pretrained(tmp_path)
    assert DemsConfig.from_pretrained(tmp_path).output_merge_weights is True
    assert DemsConfig().output_merge_weights is False
    loaded = DemsModel.from_pretrained(tmp_path, output_merge_weights=False).eval()
    with torch.no_grad():
        assert loaded(images).merge_weights is None


def test_a_non_boolean_setting_is_refused_with_its_name():
    with pytest.raises(StrictDataclassError, match="output_merge_weights"):
        make_tiny_config(output_merge_weights="yes")


def test_tuple_outputs_carry_them_last(images):
    model = _model()
    with torch.no_grad():
        expected = model(images, output_merge_weights=True)
        logits, merge_weights = model(images, output_merge_weights=True, return_dict=False)
        loss, logits_too, attentions, weights_too = model(
            images, labels=torch.tensor([0, 1]), output_attentions=True, output_merge_weights=True, return_dict=False
        )
    assert torch.equal(logits, expected.logits) and len(merge_weights) == 2 and loss.ndim == 0
    assert len(attentions) == 4 and len(weights_too) == 2
    # output_attentions runs eager attention for that call: the same weights to float32 rounding
    torch.testing.assert_close(weights_too, merge_weights, rtol=0, atol=1e-6)


@pytest.mark.slow
@pytest.mark.usefixtures("fresh_dynamo_one_thread")
def test_through_torch_compile_in_one_graph(images):
    model = _model("sdpa")
    explanation = torch._dynamo.explain(model)(images, output_merge_weights=True)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    with torch.no_grad():
        expected = model(images, output_merge_weights=True)
        compiled = torch.compile(model, fullgraph=True)(images, output_merge_weights=True)
    assert len(compiled.merge_weights) == 2
    for got, want in zip(compiled.merge_weights, expected.merge_weights, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    torch.testing.assert_close(compiled.logits, expected.logits, rtol=0, atol=1e-4)
