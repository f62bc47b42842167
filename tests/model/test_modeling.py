import math

import pytest
import torch
from torch import nn

from modeling_dems import DemsConfig, DemsForImageClassification, DemsModel
from modeling_dems.modeling_dems import group_grid_by_region, sincos_position_embedding_2d


# docs/architecture.md, reference figures: trainable parameters of the reference presets.
REFERENCE_PARAMETER_COUNTS = [
    ("tiny-32", 10, 5_582_888),
    ("tiny-32", 100, 5_600_258),
    ("tiny-256", 101, 6_329_991),
    ("small-32", 10, 22_218_504),
    ("small-32", 100, 22_253_154),
    ("small-256", 101, 23_708_839),
]


def _eval_model(config, seed=0):
    torch.manual_seed(seed)
    return DemsForImageClassification(config).eval()


@pytest.mark.parametrize(("preset", "classes", "expected"), REFERENCE_PARAMETER_COUNTS)
def test_parameter_counts_match_the_reference(preset, classes, expected):
    with torch.device("meta"):
        model = DemsForImageClassification(DemsConfig.from_preset(preset, num_labels=classes))
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == expected
    # the position embeddings are a formula, not weights: nothing frozen hides among the parameters
    assert all(p.requires_grad for p in model.parameters())


def test_sequence_lengths_before_and_after_each_merge(small_config, pixels):
    # 32 / (8 * 2) = 2 regions a side, R = 4; 1 + 85 R = 341, then 1 + 10 R = 41, then 1 + 3 R = 13.
    outputs = DemsModel(small_config)(pixels, output_hidden_states=True)
    lengths = [h.shape[1] for h in outputs.hidden_states]
    assert lengths == [341, 341, 41, 41, 13]  # embeddings, then blocks 1..4; merges before blocks 2 and 4
    assert outputs.last_hidden_state.shape == (2, 13, 32)
    assert outputs.pooler_output.shape == (2, 32)


@pytest.mark.slow  # the full tiny-32 preset
def test_reference_tiny_sequence_lengths():
    model = DemsModel(DemsConfig.from_preset("tiny-32")).eval()
    with torch.no_grad():
        outputs = model(torch.zeros(1, 3, 32, 32), output_hidden_states=True)
    # merge_layers [6, 10]: blocks 1-5 see 341 tokens, 6-12 see 1 + 64 * 4 = 257
    assert [h.shape[1] for h in outputs.hidden_states] == [341] * 6 + [257] * 7


def test_sincos_values_at_known_positions():
    # dim 8 -> D/4 = 2 frequencies: w = (1, 1/100)
    table = sincos_position_embedding_2d(4, 4, 8)
    row, col = 2, 3
    expected = [math.sin(2), math.sin(0.02), math.cos(2), math.cos(0.02),
                math.sin(3), math.sin(0.03), math.cos(3), math.cos(0.03)]  # fmt: skip
    torch.testing.assert_close(table[row * 4 + col], torch.tensor(expected), rtol=0, atol=1e-7)
    torch.testing.assert_close(table[0], torch.tensor([0.0, 0, 1, 1, 0, 0, 1, 1]), rtol=0, atol=0)
    # a non-square grid keeps row-major order: token 5 of a 2x3 grid is row 1, col 2
    wide = sincos_position_embedding_2d(2, 3, 8)
    assert wide[5, 0].item() == pytest.approx(math.sin(1)) and wide[5, 4].item() == pytest.approx(math.sin(2))


def test_sincos_table_equals_the_reference_release_bit_for_bit():
    from reference_dems import float64_sincos_2d, reference_sincos_2d

    for side, dim in [(16, 192), (8, 384), (2, 192), (16, 32)]:
        ours = sincos_position_embedding_2d(side, side, dim)
        assert torch.equal(ours, reference_sincos_2d(side, dim))  # what reference checkpoints store
        exact = torch.from_numpy(float64_sincos_2d(side, dim)).float()
        torch.testing.assert_close(ours, exact, rtol=0, atol=1e-6)  # and the formula, to float32 rounding


def test_group_grid_by_region_by_hand():
    # a 4x4 grid whose token value is 10 * row + col, regions of 2x2 tokens
    grid = (10 * torch.arange(4)[:, None] + torch.arange(4)[None, :]).float().reshape(1, 1, 4, 4)
    regions = group_grid_by_region(grid, 2)[0, :, :, 0]
    assert regions.tolist() == [[0, 1, 10, 11], [2, 3, 12, 13], [20, 21, 30, 31], [22, 23, 32, 33]]


def _position_probe_model():
    """One grey channel, width 4, every scale's embedding set to average its patch into channel 0."""
    config = DemsConfig(image_size=32, patch_size=2, num_channels=1, hidden_size=4, num_attention_heads=1)
    model = DemsModel(config).eval()
    embeddings = model.embeddings
    with torch.no_grad():
        for module in embeddings.patch_embeddings.modules():
            if isinstance(module, nn.Conv2d):
                module.weight.zero_()
                if module.bias is not None:
                    module.bias.zero_()
        for scale in (0, 1):
            conv = embeddings.patch_embeddings[scale].projection
            conv.weight[0].fill_(1.0 / conv.weight[0].numel())
        for scale in (2, 3):
            factorized = embeddings.patch_embeddings[scale]
            factorized.depthwise1.weight.fill_(1.0 / factorized.depthwise1.weight[0].numel())
            factorized.depthwise2.weight.fill_(1.0 / 16)
            factorized.pointwise.weight[0].fill_(1.0)
        embeddings.cls_token.zero_()
    return model


def test_regional_regrouping_of_a_known_image():
    # 32x32 image, p = 2: each 2x2 pixel patch (r, c) of the 16x16 grid holds the value 100 r + c.
    rows = torch.arange(16).repeat_interleave(2)
    image = (100 * rows[:, None] + rows[None, :]).float()[None, None]
    with torch.no_grad():
        tokens = _position_probe_model().embeddings(image)[0, :, 0]  # channel 0: content + sin(row * 1)
    assert tokens.shape == (1 + 4 * 85,)

    def slot(region, index):
        return tokens[1 + 85 * region + index].item()

    # scale 1 (p): 8x8 tokens per region, row-major; value 100 r + c at grid (r, c), plus sin(r)
    assert slot(0, 0) == pytest.approx(0.0)
    assert slot(1, 0) == pytest.approx(8 + math.sin(0), abs=1e-4)  # region 1 is top-right: grid (0, 8)
    assert slot(2, 9) == pytest.approx(901 + math.sin(9), abs=1e-4)  # region 2 bottom-left, offset (1, 1): (9, 1)
    assert slot(3, 63) == pytest.approx(1515 + math.sin(15), abs=1e-4)  # last token: grid (15, 15)
    # scale 2 (2p): slots 64..79; the 2p patch (R, C) averages to 200 R + 2 C + 50.5, position sin(R)
    assert slot(1, 64) == pytest.approx(2 * 4 + 50.5, abs=1e-4)  # grid (0, 4)
    assert slot(3, 79) == pytest.approx(200 * 7 + 2 * 7 + 50.5 + math.sin(7), abs=1e-4)  # grid (7, 7)
    # scale 3 (4p): slots 80..83, 2x2 per region; patch (R, C) averages to 400 R + 4 C + 151.5
    assert slot(2, 81) == pytest.approx(400 * 2 + 4 * 1 + 151.5 + math.sin(2), abs=1e-4)  # grid (2, 1)
    # scale 4 (8p): slot 84, one per region; region (1, 1) averages to 100 * 11.5 + 11.5, position sin(1)
    assert slot(3, 84) == pytest.approx(1161.5 + math.sin(1), abs=1e-4)


def test_eager_and_sdpa_give_the_same_logits(small_config, pixels):
    model = _eval_model(small_config)
    assert model.config._attn_implementation == "sdpa"  # the default
    with torch.no_grad():
        sdpa = model(pixels).logits
        model.set_attn_implementation("eager")
        eager = model(pixels).logits
    torch.testing.assert_close(eager, sdpa, rtol=0, atol=1e-5)


def test_attentions_have_the_sequence_length_of_their_block(small_config, pixels):
    outputs = _eval_model(small_config)(pixels, output_attentions=True)
    assert [tuple(a.shape) for a in outputs.attentions] == [(2, 2, 341, 341), (2, 2, 41, 41), (2, 2, 41, 41),
                                                            (2, 2, 13, 13)]  # fmt: skip
    torch.testing.assert_close(outputs.attentions[0].sum(-1), torch.ones(2, 2, 341))


def test_save_and_load_give_identical_logits(tmp_path, small_config, pixels):
    model = _eval_model(small_config)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    loaded = DemsForImageClassification.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert torch.equal(model(pixels).logits, loaded(pixels).logits)
    assert torch.equal(model.dems.embeddings.position_embeddings, loaded.dems.embeddings.position_embeddings)


def test_loading_in_bfloat16_runs(tmp_path, small_config, pixels):
    model = _eval_model(small_config)
    model.save_pretrained(tmp_path)
    loaded = DemsForImageClassification.from_pretrained(tmp_path, dtype=torch.bfloat16).eval()
    assert loaded.classifier.weight.dtype == torch.bfloat16
    with torch.no_grad():
        logits = loaded(pixels).logits
        expected = model(pixels).logits
    assert logits.dtype == torch.bfloat16
    torch.testing.assert_close(logits.float(), expected, rtol=0, atol=0.1)


def test_gradient_checkpointing_gives_the_same_gradients(small_config, pixels):
    labels = torch.tensor([0, 2])
    model = _eval_model(small_config).train()

    def gradients():
        model.zero_grad()
        model(pixels, labels=labels).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    plain = gradients()
    model.activation_checkpointing_enable()
    assert all(layer.gradient_checkpointing for layer in model.dems.encoder.layers)
    checkpointed = gradients()
    for name, grad in plain.items():
        torch.testing.assert_close(checkpointed[name], grad, rtol=1e-5, atol=1e-7, msg=name)


def test_other_input_sizes_run(small_config):
    model = _eval_model(small_config)
    with torch.no_grad():
        for height, width in [(64, 64), (48, 32), (16, 16)]:
            outputs = model(torch.randn(1, 3, height, width), output_hidden_states=True)
            regions = (height // 16) * (width // 16)
            assert outputs.hidden_states[0].shape[1] == 1 + 85 * regions
            assert outputs.logits.shape == (1, 3)


def test_position_embedding_follows_the_input_size(small_config):
    """The table computed on the fly for the configured size equals the stored one, so any size uses the formula."""
    from modeling_dems.modeling_dems import regional_position_embedding

    model = _eval_model(small_config)
    torch.testing.assert_close(
        regional_position_embedding(32, 32, small_config), model.dems.embeddings.position_embeddings, rtol=0, atol=0
    )


def test_hard_label_loss_is_cross_entropy(small_config, pixels):
    model = _eval_model(small_config)
    labels = torch.tensor([2, 0])
    outputs = model(pixels, labels=labels)
    log_probs = outputs.logits.log_softmax(-1)
    expected = -(log_probs[0, 2] + log_probs[1, 0]) / 2
    torch.testing.assert_close(outputs.loss, expected)


def test_soft_target_loss(small_config, pixels):
    small_config.problem_type = "single_label_classification"
    model = _eval_model(small_config)
    targets = torch.tensor([[0.7, 0.2, 0.1], [0.0, 0.5, 0.5]])
    outputs = model(pixels, labels=targets)
    log_probs = outputs.logits.log_softmax(-1)
    expected = -(0.7 * log_probs[0, 0] + 0.2 * log_probs[0, 1] + 0.1 * log_probs[0, 2]
                 + 0.5 * log_probs[1, 1] + 0.5 * log_probs[1, 2]) / 2  # fmt: skip
    torch.testing.assert_close(outputs.loss, expected)
    # one-hot soft targets give exactly the hard-label loss
    one_hot = model(pixels, labels=torch.tensor([[0.0, 0, 1], [1, 0, 0]])).loss
    torch.testing.assert_close(one_hot, model(pixels, labels=torch.tensor([2, 0])).loss)
    assert model.config.problem_type == "single_label_classification"
    with pytest.raises(ValueError, match=r"soft-target labels must have shape \(2, 3\) .* got \(2, 5\)"):
        model(pixels, labels=torch.ones(2, 5) / 5)


def test_problem_type_rules(small_config, pixels):
    model = _eval_model(small_config)
    multi_hot = torch.tensor([[1.0, 0, 1], [0, 1, 0]])
    logits = model(pixels).logits
    bce = nn.functional.binary_cross_entropy_with_logits(logits, multi_hot)
    torch.testing.assert_close(model(pixels, labels=multi_hot).loss, bce)  # float labels, no problem type
    assert model.config.problem_type is None  # inferred per batch, never written back

    regression = DemsConfig(**{**small_config.to_dict(), "num_labels": 1, "id2label": None, "label2id": None})
    model = _eval_model(regression)
    targets = torch.tensor([0.5, -1.0])
    outputs = model(pixels, labels=targets)
    torch.testing.assert_close(outputs.loss, ((outputs.logits.squeeze(-1) - targets) ** 2).mean())


def test_integer_and_bool_labels_of_other_dtypes(small_config, pixels):
    model = _eval_model(small_config)
    with torch.no_grad():
        logits = model(pixels).logits
        # int32 class ids are class ids (cross_entropy itself wants int64)
        expected = -(logits.log_softmax(-1)[0, 2] + logits.log_softmax(-1)[1, 0]) / 2
        torch.testing.assert_close(model(pixels, labels=torch.tensor([2, 0], dtype=torch.int32)).loss, expected)
        # bool labels are multi-hot targets, as transformers reads every dtype but int32/int64
        multi_hot = torch.tensor([[True, False, True], [False, True, False]])
        bce = nn.functional.binary_cross_entropy_with_logits(logits, multi_hot.float())
        torch.testing.assert_close(model(pixels, labels=multi_hot).loss, bce)


def _model_for(config: DemsConfig, **fields):
    values = {**config.to_dict(), "id2label": None, "label2id": None, "num_labels": config.num_labels}
    return _eval_model(DemsConfig(**{**values, **fields}))


@pytest.mark.parametrize(
    ("fields", "labels", "error", "message"),
    [
        ({}, torch.tensor([0, 3]), ValueError, r"class id 3, out of range: .* in \[0, num_labels\) = \[0, 3\)"),
        ({}, torch.tensor([-1, 0]), ValueError, r"class id -1, out of range"),
        ({}, torch.tensor([0, 1, 2]), ValueError, r"class-id labels must have shape \(2,\) .* got \(3,\)"),
        ({}, torch.tensor([[0], [1]]), ValueError, r"class-id labels must have shape \(2,\) .* got \(2, 1\)"),
        ({}, torch.ones(2, 4), ValueError, r"multi-label \(multi-hot\) labels must have shape \(2, 3\) .*\(2, 4\)"),
        ({}, [0, 1], TypeError, r"labels must be a torch.Tensor, got list"),
        ({"problem_type": "single_label_classification"}, torch.ones(2, 3, dtype=torch.bool), TypeError,
         r"bool labels are multi-hot targets"),
        ({"problem_type": "multi_label_classification"}, torch.tensor([0, 1]), ValueError,
         r"multi-label \(multi-hot\) labels must have shape \(2, 3\) .* got \(2,\)"),
        ({"num_labels": 1}, torch.ones(3), ValueError, r"regression labels must have shape \(2,\) or \(2, 1\) .*3,"),
        ({"problem_type": "regression"}, torch.ones(2), ValueError, r"regression labels must have shape \(2, 3\)"),
    ],
)
def test_bad_labels_are_named_before_the_loss(small_config, pixels, fields, labels, error, message):
    # Without the check: IndexError "Target 3 is out of bounds" on CPU, a device-side assert on a GPU, or a size
    # error from inside torch.
    with pytest.raises(error, match=message):
        _model_for(small_config, **fields)(pixels, labels=labels)


def test_backward_reaches_every_parameter(small_config, pixels):
    model = _eval_model(small_config).train()
    model(pixels, labels=torch.tensor([1, 2])).loss.backward()
    without = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert without == []


def test_initialisation_follows_the_reference(small_config):
    model = _eval_model(DemsConfig.from_preset("tiny-32", num_labels=10))
    linear_weights = torch.cat([m.weight.flatten() for m in model.modules() if isinstance(m, nn.Linear)])
    assert linear_weights.std().item() == pytest.approx(0.02, rel=0.05)
    assert linear_weights.abs().max().item() <= 2.0  # truncated at +-2 (absolute), as timm's trunc_normal_
    assert all(m.bias.abs().sum() == 0 for m in model.modules() if isinstance(m, nn.Linear) and m.bias is not None)
    norms = [m for m in model.modules() if isinstance(m, nn.LayerNorm)]
    assert all(m.eps == 1e-5 and torch.all(m.weight == 1) and torch.all(m.bias == 0) for m in norms)
    assert all(torch.all(m.scale == 1) for m in model.dems.encoder.mergers)
    cls = model.dems.embeddings.cls_token
    assert 0.01 < cls.std().item() < 0.03
    # convolutions keep PyTorch's default: kaiming-uniform(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    conv = model.dems.embeddings.patch_embeddings[0].projection  # fan_in = 3 * 2 * 2
    bound = 1 / math.sqrt(12)
    assert conv.weight.abs().max().item() <= bound and conv.weight.abs().max().item() > 0.8 * bound
    assert conv.bias.abs().max().item() <= bound


@pytest.mark.slow  # the full tiny-32 preset
def test_stochastic_depth_grows_linearly():
    model = DemsModel(DemsConfig.from_preset("tiny-32", drop_path_rate=0.11))
    rates = [layer.drop_path.drop_prob for layer in model.encoder.layers]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.11)
    assert rates[5] == pytest.approx(0.05)


def test_mlp_ratio_per_stage():
    config = DemsConfig(hidden_size=32, num_attention_heads=2, num_hidden_layers=5, merge_layers=[2, 4],
                        num_merged_tokens=[8, 4], mlp_ratios=[1.0, 2.0, 3.0])  # fmt: skip
    widths = [layer.mlp.fc1.out_features for layer in DemsModel(config).encoder.layers]
    assert widths == [32, 64, 64, 96, 96]


def test_return_dict_false_gives_tuples(small_config, pixels):
    model = _eval_model(small_config)
    with torch.no_grad():
        loss, logits = model(pixels, labels=torch.tensor([0, 1]), return_dict=False)
        expected = model(pixels).logits
    assert torch.equal(logits, expected) and loss.ndim == 0


@pytest.mark.parametrize(
    ("pixel_values", "error", "message"),
    [
        (torch.randn(1, 1, 32, 32), ValueError, r"pixel_values has 1 channels but config.num_channels=3"),
        (torch.randn(1, 3, 24, 32), ValueError, r"24 x 32: both must be multiples of 8 \* patch_size = 16"),
        (
            torch.randn(3, 32, 32),
            ValueError,
            r"must be 4-D \(batch, channels, height, width\), got shape \(3, 32, 32\)",
        ),
        (torch.randn(0, 3, 32, 32), ValueError, r"empty batch"),
        (torch.zeros(1, 3, 32, 32, dtype=torch.uint8), TypeError, r"floating-point tensor, got torch.uint8"),
        (None, ValueError, r"pixel_values is required"),
    ],
)
def test_bad_inputs_are_rejected_at_the_boundary(small_config, pixel_values, error, message):
    with pytest.raises(error, match=message):
        _eval_model(small_config)(pixel_values)
