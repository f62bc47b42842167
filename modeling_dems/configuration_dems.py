"""Configuration for DEMS-ViT (Tang, Liu, Shen, "Data-efficient multi-scale fusion vision transformer",
Pattern Recognition 161, 2025).

This file is self-contained (it imports only transformers and huggingface_hub, which transformers requires), so that
`save_pretrained` can ship it as remote code next to a checkpoint; `configuration_dems` (the project's top-level name
for it) re-exports this module's classes.
"""

from huggingface_hub.dataclasses import strict
from transformers import PretrainedConfig
from transformers.activations import ACT2FN


# Tokens that one coarse region carries into the encoder: an 8x8 block of p-patches, 4x4 of 2p, 2x2 of 4p, one 8p.
TOKENS_PER_REGION = 64 + 16 + 4 + 1

# The reference release's four model presets (docs/architecture.md, reference figures). The number of classes is not
# part of a preset: pass `num_labels` (or `id2label`) to `DemsConfig.from_preset`.
DEMS_PRESETS: dict[str, dict] = {
    "tiny-32": {
        "image_size": 32,
        "patch_size": 2,
        "hidden_size": 192,
        "num_attention_heads": 3,
        "num_merged_tokens": [64, 64],
    },
    "tiny-256": {
        "image_size": 256,
        "patch_size": 16,
        "hidden_size": 192,
        "num_attention_heads": 3,
        "num_merged_tokens": [64, 64],
    },
    "small-32": {
        "image_size": 32,
        "patch_size": 2,
        "hidden_size": 384,
        "num_attention_heads": 6,
        "num_merged_tokens": [64, 32],
    },
    "small-256": {
        "image_size": 256,
        "patch_size": 16,
        "hidden_size": 384,
        "num_attention_heads": 6,
        "num_merged_tokens": [64, 32],
    },
}


@strict
class DemsConfig(PretrainedConfig):
    r"""
    Configuration of a DEMS-ViT model ([`DemsModel`], [`DemsForImageClassification`]). The defaults give the
    reference "tiny" model for 32x32 images with 2x2 base patches.

    Args:
        image_size (`int`, *optional*, defaults to 32):
            Side `S` of the (square) training images. Must be a multiple of `8 * patch_size`. The model also runs on
            any other height and width that are multiples of `8 * patch_size`.
        patch_size (`int`, *optional*, defaults to 2):
            Base patch side `p`. The four token scales use patches of `p`, `2p`, `4p` and `8p`.
        num_channels (`int`, *optional*, defaults to 3):
            Number of input channels.
        hidden_size (`int`, *optional*, defaults to 192):
            Token width `D`. Must be divisible by 4 (the 2-D sin-cos embedding) and by `num_attention_heads`.
        num_hidden_layers (`int`, *optional*, defaults to 12):
            Number of transformer blocks.
        num_attention_heads (`int`, *optional*, defaults to 3):
            Attention heads per block.
        mlp_ratios (`list[float]`, *optional*, defaults to `[4.0, 4.0, 4.0]`):
            MLP hidden width over `hidden_size`, one per stage: the blocks before the first merge, between merges,
            and after the last merge (`len(merge_layers) + 1` values).
        merge_layers (`list[int]`, *optional*, defaults to `[6, 10]`):
            1-based block numbers before which each region's tokens are fused (the reference's numbering: `6` merges
            before the 6th block, i.e. before `layers[5]`). Strictly increasing, each in `[1, num_hidden_layers]`.
            Keep merges after a few blocks, as the reference does: at initialisation the soft assignment is nearly
            uniform, so a merge before the first block averages raw patch embeddings and learns very slowly.
        num_merged_tokens (`list[int]`, *optional*, defaults to `[64, 64]`):
            Tokens per region after each merge. The first is at most 85 (the tokens a region holds), each next one at
            most the one before.
        hidden_act (`str`, *optional*, defaults to `"gelu"`):
            Activation of the block MLPs and of the merge MLPs (exact GELU in the reference).
        hidden_dropout_prob (`float`, *optional*, defaults to 0.0):
            Dropout after the embeddings, in the MLPs and after the attention projection.
        attention_probs_dropout_prob (`float`, *optional*, defaults to 0.0):
            Dropout on the attention probabilities.
        drop_path_rate (`float`, *optional*, defaults to 0.0):
            Stochastic depth; it grows linearly from 0 at the first block to this value at the last.
        qkv_bias (`bool`, *optional*, defaults to `False`):
            Whether the query/key/value projection has a bias.
        layer_norm_eps (`float`, *optional*, defaults to 1e-5):
            Epsilon of every LayerNorm (the reference uses PyTorch's default, not ViT's 1e-6 or 1e-12).
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the truncated normal that initialises the linear layers and the class token.
        output_merge_weights (`bool`, *optional*, defaults to `False`):
            Whether the models return each merge's soft assignment (`merge_weights`, one
            `(batch, regions, tokens_in, tokens_out)` tensor per merge) unless `forward` is told otherwise, as
            `output_attentions` does for the attention probabilities.

    Example:

    ```python
    >>> from configuration_dems import DemsConfig
    >>> config = DemsConfig.from_preset("tiny-32", num_labels=10)
    >>> config.hidden_size, config.num_merged_tokens
    (192, [64, 64])
    ```
    """

    model_type = "dems"

    # `@strict` (as transformers' own configs) checks these types on construction and on every assignment, so that a
    # hand-edited config.json with "32" or 2.5 is refused with the field's name; `validate_architecture` checks ranges.
    image_size: int = 32
    patch_size: int = 2
    num_channels: int = 3
    hidden_size: int = 192
    num_hidden_layers: int = 12
    num_attention_heads: int = 3
    mlp_ratios: list[float | int] | tuple[float | int, ...] | None = None
    merge_layers: list[int] | tuple[int, ...] | None = None
    num_merged_tokens: list[int] | tuple[int, ...] | None = None
    hidden_act: str = "gelu"
    hidden_dropout_prob: float | int = 0.0
    attention_probs_dropout_prob: float | int = 0.0
    drop_path_rate: float | int = 0.0
    qkv_bias: bool = False
    layer_norm_eps: float = 1e-5
    initializer_range: float = 0.02
    output_merge_weights: bool = False

    def __post_init__(self, **kwargs):
        # Lists are filled here rather than as dataclass defaults so that no two configs share one list object.
        self.mlp_ratios = [float(r) for r in (self.mlp_ratios if self.mlp_ratios is not None else [4.0, 4.0, 4.0])]
        self.merge_layers = list(self.merge_layers if self.merge_layers is not None else [6, 10])
        self.num_merged_tokens = list(self.num_merged_tokens if self.num_merged_tokens is not None else [64, 64])
        # num_labels is no dataclass field (PretrainedConfig derives it), so @strict does not see its type
        num_labels = kwargs.get("num_labels")
        if num_labels is not None and (type(num_labels) is not int or num_labels < 0):  # bool is no count either
            raise ValueError(f"DemsConfig.num_labels={num_labels!r} must be a non-negative integer.")
        self.validate_architecture()
        super().__post_init__(**kwargs)

    @classmethod
    def from_preset(cls, name: str, **kwargs) -> "DemsConfig":
        """Build the config of a reference preset (`tiny-32`, `tiny-256`, `small-32`, `small-256`); any keyword
        overrides the preset's value, e.g. `num_labels=100` or `drop_path_rate=0.1`."""
        if name not in DEMS_PRESETS:
            raise ValueError(f"preset={name!r} is not a DEMS preset; choose one of {sorted(DEMS_PRESETS)}.")
        return cls(**{**DEMS_PRESETS[name], **kwargs})

    @property
    def region_size(self) -> int:
        """Side in pixels of one region, the coarsest patch (8 x patch_size)."""
        return 8 * self.patch_size

    def validate_architecture(self) -> None:
        """Raise a `ValueError` naming the field, its value and the rule it breaks. Called on construction; call it
        again after changing fields by hand."""
        for name in (
            "image_size",
            "patch_size",
            "num_channels",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"DemsConfig.{name}={value!r} must be a positive integer.")
        if self.image_size % self.region_size:
            raise ValueError(
                f"DemsConfig.image_size={self.image_size} must be a multiple of 8 * patch_size = {self.region_size} "
                f"(patch_size={self.patch_size}): the coarsest patch, 8 * patch_size, must tile the image."
            )
        if self.hidden_size % 4:
            raise ValueError(
                f"DemsConfig.hidden_size={self.hidden_size} must be divisible by 4: the 2-D sin-cos position "
                "embedding splits it into four equal blocks."
            )
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"DemsConfig.hidden_size={self.hidden_size} must be divisible by "
                f"num_attention_heads={self.num_attention_heads}."
            )
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "drop_path_rate"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"DemsConfig.{name}={value!r} must be in [0, 1).")
        for name in ("layer_norm_eps", "initializer_range"):
            if not getattr(self, name) > 0:
                raise ValueError(f"DemsConfig.{name}={getattr(self, name)!r} must be positive.")
        if self.hidden_act not in ACT2FN:
            raise ValueError(
                f"DemsConfig.hidden_act={self.hidden_act!r} is not an activation transformers knows; choose one of "
                f"{sorted(ACT2FN)}."
            )
        self._validate_merges()

    def _validate_merges(self) -> None:
        layers, tokens, ratios = self.merge_layers, self.num_merged_tokens, self.mlp_ratios
        if len(tokens) != len(layers):
            raise ValueError(
                f"DemsConfig.num_merged_tokens={tokens} must have one entry per merge layer "
                f"(merge_layers={layers} has {len(layers)})."
            )
        if len(ratios) != len(layers) + 1:
            raise ValueError(
                f"DemsConfig.mlp_ratios={ratios} must have len(merge_layers) + 1 = {len(layers) + 1} entries, "
                "one per stage (before the first merge, between merges, after the last)."
            )
        if any(not r > 0 for r in ratios):
            raise ValueError(f"DemsConfig.mlp_ratios={ratios} must all be positive.")
        for i, layer in enumerate(layers):
            if not 1 <= layer <= self.num_hidden_layers:
                raise ValueError(
                    f"DemsConfig.merge_layers={layers}: entry {layer} is out of range; each must be a 1-based block "
                    f"number in [1, num_hidden_layers={self.num_hidden_layers}]."
                )
            if i and layer <= layers[i - 1]:
                raise ValueError(f"DemsConfig.merge_layers={layers} must be strictly increasing.")
        tokens_before = TOKENS_PER_REGION
        for count in tokens:
            if not 1 <= count <= tokens_before:
                raise ValueError(
                    f"DemsConfig.num_merged_tokens={tokens}: {count} merged tokens per region is more than the "
                    f"{tokens_before} tokens a region holds at that merge (or less than 1); each entry must be in "
                    f"[1, {tokens_before}]."
                )
            tokens_before = count


__all__ = ["DEMS_PRESETS", "DemsConfig", "TOKENS_PER_REGION"]
