"""The tests' one factory of tiny DEMS configs: named variants of a few small shapes, as `DemsConfig`s, as plain
fields, and as the `train.py --config_overrides` text, all rendered from the same values.

    make_tiny_config()                                  # the default: one 16x16 region, 2 blocks, cat/dog/bird
    make_tiny_config("four_regions")                    # conftest's small_config
    make_tiny_config("train_py", labels=10)             # what train.py builds for digits from TRAIN_PY_OVERRIDES
    make_tiny_config(labels=5, hidden_dropout_prob=0.1) # any DemsConfig field on top

A plain module (imported as `tiny_configs`, see setup.cfg's pythonpath) rather than a conftest, because helpers that
are not tests (train_helpers, module-level model builders) use it too; tests/conftest.py turns it into fixtures.
Tests whose numbers are counted by hand from a variant (the ViT parameter count of "train_py", the sequence lengths
of "four_regions") depend on its values: change a variant only together with them.
"""

import json
from collections.abc import Sequence

from modeling_dems import DemsConfig


TINY_LABELS = ("cat", "dog", "bird")

TINY_CONFIGS: dict[str, dict] = {
    # One 16x16 region (patch 2), two blocks with a merge before each: every code path of the full model, small.
    "tiny": dict(
        image_size=16, patch_size=2, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        merge_layers=[1, 2], num_merged_tokens=[8, 4],
    ),
    # Every DEMS feature: 4 regions (32x32, patch 2), two merges, 4 blocks, three different MLP ratios.
    "four_regions": dict(
        image_size=32, patch_size=2, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
        merge_layers=[2, 4], num_merged_tokens=[10, 3], mlp_ratios=[4.0, 2.0, 3.0],
    ),
    # The train.py runs' model: one 16x16 region, 3 blocks, width 32. The first block sees every token before the
    # two merges: merging at block 1 would average raw patch embeddings (the merge starts near-uniform) and leave
    # the class token nothing to learn from.
    "train_py": dict(
        image_size=16, patch_size=2, hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
        merge_layers=[2, 3], num_merged_tokens=[16, 8], mlp_ratios=[2.0, 2.0, 2.0],
    ),
}  # fmt: skip


def tiny_config_fields(variant: str = "tiny", labels: Sequence[str] | int = TINY_LABELS, **overrides) -> dict:
    """The `DemsConfig` fields of `variant`: class names (`labels`, a list) or only a class count (an int), then
    `overrides`."""
    if isinstance(labels, int):
        classes = {"num_labels": labels}
    else:
        classes = {
            "num_labels": len(labels),
            "id2label": dict(enumerate(labels)),
            "label2id": {name: i for i, name in enumerate(labels)},
        }
    return {**TINY_CONFIGS[variant], **classes, **overrides}


def make_tiny_config(variant: str = "tiny", labels: Sequence[str] | int = TINY_LABELS, **overrides) -> DemsConfig:
    return DemsConfig(**tiny_config_fields(variant, labels, **overrides))


def tiny_config_overrides(variant: str = "train_py") -> str:
    """`variant` as `train.py --config_overrides` text: `image_size=16,patch_size=2,...` (the data set gives the
    classes)."""
    return ",".join(f"{key}={json.dumps(value, separators=(',', ':'))}" for key, value in TINY_CONFIGS[variant].items())
