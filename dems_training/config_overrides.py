"""The project's one reader of `KEY=VALUE` config overrides, for `train.py --config_overrides` and the benchmarks'
`--override`. It imports only the config, so the benchmarks use it without loading any training code.

Written here because transformers' `PretrainedConfig.update_from_string` splits on every comma, so it cannot take
list values such as `merge_layers=[2,4]`."""

import json
import re
from collections.abc import Sequence

from configuration_dems import DemsConfig

from . import UserInputError


_KEY = re.compile(r"\s*([A-Za-z_]\w*)\s*=\s*")
_SEPARATOR = re.compile(r"\s*(?:,|$)")
_JSON = json.JSONDecoder()


def parse_config_overrides(text: str | Sequence[str] | None, flag: str = "--config_overrides") -> dict:
    """`DemsConfig` fields from comma-separated `key=value` pairs: `"image_size=16,merge_layers=[2,4]"`. A value is
    read as JSON where it is JSON (numbers, `true`, lists) and as a bare string otherwise (`hidden_act=gelu`). A list
    of such texts (one command-line word each) is read in order; a key given twice keeps its last value.

    Raises `UserInputError`, naming `flag`, on text that is not `key=value` pairs and on a key that is not a
    `DemsConfig` field."""
    texts = [text] if isinstance(text, str) else list(text or ())
    fields = DemsConfig().to_dict()
    overrides = {}
    for item in texts:
        position = 0
        while item[position:].strip():  # spaces after the last comma are no pair
            key = _KEY.match(item, position)
            if key is None:
                raise UserInputError(
                    f"{flag}={item!r}: cannot read a key=value pair at position {position}; write comma-separated "
                    "key=value pairs, e.g. 'image_size=16,merge_layers=[2,4]'."
                )
            if key.group(1) not in fields:
                raise UserInputError(f"{flag}: {key.group(1)!r} is not a DemsConfig field.")
            overrides[key.group(1)], position = _value(item, key.end())
    return overrides


def _value(text: str, start: int) -> tuple[object, int]:
    """The value that starts at `start`, and the position after the comma that ends it (or the end of `text`)."""
    try:
        value, end = _JSON.raw_decode(text, start)
        separator = _SEPARATOR.match(text, end)
    except json.JSONDecodeError:
        separator = None
    if separator is not None:
        return value, separator.end()
    # Not JSON up to the next comma (`gelu`, `2x`): the text itself, as a bare string.
    comma = text.find(",", start)
    end = len(text) if comma < 0 else comma
    return text[start:end].strip(), end + 1
