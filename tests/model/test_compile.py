"""torch.compile and mixed precision: the model traces as one graph (no graph breaks), compiled logits match eager
ones, and bf16/fp16 autocast runs forward and backward cleanly. A tiny config keeps the inductor compile short."""

import warnings

import pytest
import torch
from tiny_configs import make_tiny_config

from modeling_dems.modeling_dems import DemsForImageClassification


# torch.compile: each test compiles a model, minutes on a CPU.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("fresh_dynamo_one_thread")]


def tiny_model(attn_implementation: str = "sdpa", **overrides) -> DemsForImageClassification:
    # The "tiny" config (one 16x16 region, two blocks with a merge before each): every code path of the full model.
    torch.manual_seed(0)
    config = make_tiny_config(labels=5, **overrides)
    return DemsForImageClassification._from_config(config, attn_implementation=attn_implementation)


def images(batch: int = 2, size: int = 16) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1))


def labels(batch: int = 2) -> torch.Tensor:
    return torch.arange(batch) % 5


def assert_one_graph(fn, *args, **kwargs) -> None:
    explanation = torch._dynamo.explain(fn)(*args, **kwargs)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
def test_no_graph_breaks_in_inference(attn_implementation):
    model = tiny_model(attn_implementation).eval()
    with torch.no_grad():
        assert_one_graph(model, images())


def test_no_graph_breaks_in_training_with_loss():
    model = tiny_model(hidden_dropout_prob=0.1, drop_path_rate=0.1).train()
    assert_one_graph(model, images(), labels=labels())


def test_no_graph_breaks_with_dynamic_batch_and_other_image_size():
    # A symbolic batch size, and a 32x32 input on a 16x16 config (the position embedding is then computed in the
    # graph): neither may force Python-side decisions on tensor values.
    model = tiny_model().eval()
    pixel_values = images(batch=3, size=32)
    torch._dynamo.mark_dynamic(pixel_values, 0)
    with torch.no_grad():
        assert_one_graph(model, pixel_values)


def test_compiled_logits_match_eager():
    # One block after one merge: every kind of kernel inductor generates for the model, at half the C++ build time
    # of two (the build dominates this test).
    model = tiny_model(num_hidden_layers=1, merge_layers=[1], num_merged_tokens=[16], mlp_ratios=[4.0, 4.0]).eval()
    pixel_values = images(batch=4)
    with torch.no_grad():
        expected = model(pixel_values).logits
        # fullgraph=True turns any graph break into an error.
        compiled = torch.compile(model, fullgraph=True)(pixel_values).logits
    torch.testing.assert_close(compiled, expected, rtol=0, atol=1e-4)


def test_compiled_training_step_matches_eager_gradients():
    # aot_eager traces forward and backward exactly as inductor would, without inductor's C++ build (kept for the
    # inference test above): enough to show the backward graph is whole and numerically the eager one.
    model = tiny_model()
    model(images(), labels=labels()).loss.backward()
    expected = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    loss = torch.compile(model, backend="aot_eager", fullgraph=True)(images(), labels=labels()).loss
    loss.backward()
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(parameter.grad, expected[name], rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
def test_autocast_forward_backward_is_clean(dtype, attn_implementation):
    model = tiny_model(attn_implementation)
    with torch.no_grad():
        reference = model(images()).logits
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a dtype mismatch that autocast papers over with a warning fails here
        with torch.autocast("cpu", dtype=dtype):
            output = model(images(), labels=labels())
        output.loss.backward()
    assert output.logits.dtype == dtype
    assert output.loss.dtype == torch.float32  # the loss is taken in fp32 whatever the autocast dtype
    assert torch.isfinite(output.loss)
    # Close to fp32: a half-precision path that silently drops a term would be far off.
    torch.testing.assert_close(output.logits.float(), reference, rtol=0, atol=5e-2)
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert parameter.grad.dtype == torch.float32, name  # weights stay fp32 under autocast
        assert torch.isfinite(parameter.grad).all(), name
