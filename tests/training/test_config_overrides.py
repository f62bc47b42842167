"""The project's one `KEY=VALUE` override reader (`train.py --config_overrides`, the benchmarks' `--override`)."""


import pytest
from fragments import raises_naming

from dems_training import UserInputError
from dems_training.config_overrides import parse_config_overrides


def test_values_are_json_where_they_are_json_and_bare_strings_otherwise():
    text = 'image_size=16 , merge_layers=[2, 4],hidden_act=gelu,qkv_bias=true,layer_norm_eps=1e-5,problem_type="x"'
    assert parse_config_overrides(text) == {
        "image_size": 16,
        "merge_layers": [2, 4],
        "hidden_act": "gelu",
        "qkv_bias": True,
        "layer_norm_eps": 0.00001,
        "problem_type": "x",
    }
    # JSON that does not run to the next comma is not the value: the text is, as a string.
    assert parse_config_overrides("hidden_act=2x,image_size=8") == {"hidden_act": "2x", "image_size": 8}
    # A JSON value may hold commas of its own.
    assert parse_config_overrides('id2label={"0": "cat", "1": "dog"},num_channels=1') == {
        "id2label": {"0": "cat", "1": "dog"},
        "num_channels": 1,
    }


def test_command_line_words_are_read_in_order_and_the_last_value_wins():
    words = ["num_hidden_layers=2", "merge_layers=[1,2]", "mlp_ratios=[2,2,2],num_hidden_layers=3"]
    assert parse_config_overrides(words, flag="--override") == {
        "num_hidden_layers": 3,
        "merge_layers": [1, 2],
        "mlp_ratios": [2, 2, 2],
    }


def test_nothing_gives_no_overrides():
    assert parse_config_overrides(None) == {}
    assert parse_config_overrides("") == {}
    assert parse_config_overrides([]) == {}
    assert parse_config_overrides("image_size=16, ") == {"image_size": 16}  # a trailing comma and space


@pytest.mark.parametrize(
    "text, position",
    [("num_hidden_layers", 0), ("image_size=16,,hidden_size=64", 14), ("=3", 0), ("image_size=16,2", 14)],
)
def test_text_that_is_not_pairs_is_refused_with_the_flag_and_the_position(text, position):
    with raises_naming(UserInputError, f"--override={text!r}", f"position {position}"):
        parse_config_overrides([text], flag="--override")


def test_a_key_that_is_not_a_config_field_is_refused():
    with raises_naming(UserInputError, "--config_overrides", "'hidden'"):
        parse_config_overrides("image_size=16,hidden=3")
