import json

import pytest
from huggingface_hub.errors import StrictDataclassFieldValidationError

from configuration_dems import DEMS_PRESETS, DemsConfig


def test_defaults_are_the_reference_tiny_model():
    config = DemsConfig()
    assert (config.image_size, config.patch_size, config.hidden_size) == (32, 2, 192)
    assert (config.num_hidden_layers, config.num_attention_heads) == (12, 3)
    assert config.merge_layers == [6, 10]
    assert config.num_merged_tokens == [64, 64]
    assert config.mlp_ratios == [4.0, 4.0, 4.0]
    assert config.layer_norm_eps == 1e-5
    assert config.qkv_bias is False


@pytest.mark.parametrize(
    ("preset", "size", "patch", "width", "heads", "merged"),
    [
        ("tiny-32", 32, 2, 192, 3, [64, 64]),
        ("tiny-256", 256, 16, 192, 3, [64, 64]),
        ("small-32", 32, 2, 384, 6, [64, 32]),
        ("small-256", 256, 16, 384, 6, [64, 32]),
    ],
)
def test_presets(preset, size, patch, width, heads, merged):
    config = DemsConfig.from_preset(preset, num_labels=7)
    assert (config.image_size, config.patch_size, config.hidden_size) == (size, patch, width)
    assert (config.num_attention_heads, config.num_merged_tokens, config.num_labels) == (heads, merged, 7)


def test_preset_overrides_and_unknown_preset():
    assert DemsConfig.from_preset("tiny-32", drop_path_rate=0.15).drop_path_rate == 0.15
    with pytest.raises(ValueError, match=r"preset='huge-32'.*tiny-32"):
        DemsConfig.from_preset("huge-32")
    assert sorted(DEMS_PRESETS) == ["small-256", "small-32", "tiny-256", "tiny-32"]


def test_presets_do_not_share_lists():
    a, b = DemsConfig.from_preset("tiny-32"), DemsConfig.from_preset("tiny-32")
    a.num_merged_tokens.append(1)
    assert b.num_merged_tokens == [64, 64]
    assert DEMS_PRESETS["tiny-32"]["num_merged_tokens"] == [64, 64]


def test_save_and_load_round_trip(tmp_path):
    config = DemsConfig.from_preset("small-32", num_labels=3, id2label={0: "a", 1: "b", 2: "c"})
    config.save_pretrained(tmp_path)
    loaded = DemsConfig.from_pretrained(tmp_path)
    assert loaded.to_dict() == config.to_dict()
    assert loaded.id2label == {0: "a", 1: "b", 2: "c"}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"image_size": 30}, r"image_size=30 must be a multiple of 8 \* patch_size = 16"),
        ({"image_size": 32, "patch_size": 3}, r"image_size=32 must be a multiple of 8 \* patch_size = 24"),
        ({"hidden_size": 90, "num_attention_heads": 3}, r"hidden_size=90 must be divisible by 4"),
        ({"hidden_size": 192, "num_attention_heads": 5}, r"hidden_size=192 must be divisible by num_attention_heads=5"),
        ({"merge_layers": [10, 6]}, r"merge_layers=\[10, 6\] must be strictly increasing"),
        ({"merge_layers": [0, 6]}, r"merge_layers=\[0, 6\]: entry 0 is out of range"),
        ({"merge_layers": [6, 13]}, r"merge_layers=\[6, 13\]: entry 13 is out of range.*num_hidden_layers=12"),
        ({"num_merged_tokens": [86, 64]}, r"num_merged_tokens=\[86, 64\]: 86 .* 85 tokens a region holds"),
        ({"num_merged_tokens": [32, 64]}, r"num_merged_tokens=\[32, 64\]: 64 .* 32 tokens a region holds"),
        ({"num_merged_tokens": [64]}, r"num_merged_tokens=\[64\] must have one entry per merge layer"),
        ({"mlp_ratios": [4.0, 4.0]}, r"mlp_ratios=\[4.0, 4.0\] must have len\(merge_layers\) \+ 1 = 3"),
        ({"patch_size": 0}, r"patch_size=0 must be a positive integer"),
        ({"drop_path_rate": 1.0}, r"drop_path_rate=1.0 must be in \[0, 1\)"),
        ({"initializer_range": 0.0}, r"initializer_range=0.0 must be positive"),
        ({"hidden_act": "gelu_x"}, r"hidden_act='gelu_x' is not an activation transformers knows; .*'gelu_new'"),
        ({"num_labels": "3"}, r"num_labels='3' must be a non-negative integer"),
    ],
)
def test_invalid_configs_name_field_value_and_rule(fields, message):
    with pytest.raises(ValueError, match=message):
        DemsConfig(**fields)


def test_merges_can_be_changed_consistently():
    config = DemsConfig(num_hidden_layers=4, merge_layers=[2], num_merged_tokens=[16], mlp_ratios=[4.0, 2.0])
    assert config.merge_layers == [2] and config.mlp_ratios == [4.0, 2.0]


@pytest.mark.parametrize(
    ("fields", "rule"),
    [
        ({"image_size": "32"}, r"Field 'image_size' expected int, got str \(value: '32'\)"),
        ({"num_hidden_layers": 12.0}, r"Field 'num_hidden_layers' expected int, got float \(value: 12.0\)"),
        ({"num_attention_heads": True}, r"Field 'num_attention_heads' expected int, got bool"),
        ({"merge_layers": [2.5, 4]}, r"Field 'merge_layers' with value \[2.5, 4\] doesn't match .*list\[int\]"),
        ({"num_merged_tokens": ["64", 64]}, r"Field 'num_merged_tokens' with value \['64', 64\]"),
        ({"mlp_ratios": ["4", 4, 4]}, r"Field 'mlp_ratios' with value \['4', 4, 4\]"),
        ({"qkv_bias": 1}, r"Field 'qkv_bias' expected bool, got int \(value: 1\)"),
        ({"qkv_bias": "false"}, r"Field 'qkv_bias' expected bool, got str \(value: 'false'\)"),
        ({"hidden_dropout_prob": "0.1"}, r"Field 'hidden_dropout_prob' with value '0.1' doesn't match"),
        ({"layer_norm_eps": "1e-5"}, r"Field 'layer_norm_eps' expected float, got str"),
        ({"hidden_act": 3}, r"Field 'hidden_act' expected str, got int"),
    ],
)
def test_wrong_types_name_field_value_and_expected_type(fields, rule):
    # Accepted, merge_layers=[2.5, 4] would silently skip the first merge.
    with pytest.raises(StrictDataclassFieldValidationError, match=rule):
        DemsConfig(**fields)


def test_a_hand_edited_config_json_with_a_string_number_is_refused(tmp_path):
    DemsConfig().save_pretrained(tmp_path)
    path = tmp_path / "config.json"
    values = json.loads(path.read_text())
    values["hidden_size"] = "192"
    path.write_text(json.dumps(values))
    with pytest.raises(StrictDataclassFieldValidationError, match=r"'hidden_size' expected int, got str"):
        DemsConfig.from_pretrained(tmp_path)


def test_assignments_are_type_checked_too():
    config = DemsConfig()
    with pytest.raises(StrictDataclassFieldValidationError, match=r"'merge_layers' with value \[6.0, 10\]"):
        config.merge_layers = [6.0, 10]
    assert config.merge_layers == [6, 10]


def test_lists_may_be_given_as_tuples_and_integer_ratios():
    config = DemsConfig(merge_layers=(6, 10), num_merged_tokens=(64, 64), mlp_ratios=(4, 4, 2))
    assert config.merge_layers == [6, 10] and config.num_merged_tokens == [64, 64]
    assert config.mlp_ratios == [4.0, 4.0, 2.0] and all(isinstance(r, float) for r in config.mlp_ratios)
