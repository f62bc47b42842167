"""PyTorch DEMS-ViT: the data-efficient multi-scale fusion vision transformer (Tang, Liu, Shen, Pattern Recognition
161, 2025).

An image is embedded at four patch sizes (p, 2p, 4p, 8p). The tokens are regrouped so that each 8p region carries
its finer tokens along (64 + 16 + 4 + 1 = 85 per region), a class token is prepended, and a pre-norm transformer
runs over them. Twice during the encoder each region's tokens are fused into fewer ones by a learned soft
assignment (`DemsTokenMerger`). docs/architecture.md in the project's repository states every detail reproduced
here.

This file only imports torch, transformers and its configuration next to it, so that it can be shipped as remote code.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import transformers.initialization as init
from torch import nn
from transformers import PreTrainedModel
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPooling, ImageClassifierOutput
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from .configuration_dems import DemsConfig


# Patch side of each scale in units of the base patch p, finest first, and the side (in tokens) of one region's
# block at that scale: the coarsest patch, 8p, is one region.
SCALE_FACTORS = (1, 2, 4, 8)
REGION_SIDES = tuple(8 // f for f in SCALE_FACTORS)


@dataclass
class DemsModelOutput(BaseModelOutputWithPooling):
    r"""
    [`DemsModel`]'s output: transformers' `BaseModelOutputWithPooling` and the merges' soft assignments.

    Args:
        merge_weights (`tuple(torch.FloatTensor)`, *optional*):
            Returned when `output_merge_weights=True` is passed or when `config.output_merge_weights=True`, else
            `None`. One tensor per merge, in encoder order, of shape
            `(batch_size, num_regions, tokens_in, tokens_out)`: the weight of each of a region's incoming tokens in
            each of its merged tokens. Every column sums to 1 over `tokens_in`; merged token `j` of region `r` is
            `sum_i merge_weights[b, r, i, j] * token_i`. At the first merge the `tokens_in` axis holds the region's 85
            tokens as the embeddings lay them out: 64 of patch `p`, 16 of `2p`, 4 of `4p`, 1 of `8p`, each row-major;
            at a later merge, the previous merge's tokens.
    """

    merge_weights: tuple[torch.Tensor, ...] | None = None


@dataclass
class DemsImageClassifierOutput(ImageClassifierOutput):
    r"""
    [`DemsForImageClassification`]'s output: transformers' `ImageClassifierOutput` and the merges' soft assignments.

    Args:
        merge_weights (`tuple(torch.FloatTensor)`, *optional*):
            The merges' soft assignments, exactly as [`DemsModelOutput`]'s `merge_weights` (same condition, same
            shapes).
    """

    merge_weights: tuple[torch.Tensor, ...] | None = None


def sincos_position_embedding_2d(
    height: int, width: int, dim: int, device: torch.device | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Fixed 2-D sin-cos embedding of a `height x width` token grid in row-major order: `(height * width, dim)`.

    Token `t` at row `r`, column `c` gets `[sin(r w), cos(r w), sin(c w), cos(c w)]` with
    `w_k = 1 / 10000^(k / (dim / 4))`, `k = 0 .. dim/4 - 1`. The arithmetic is float32 in the reference's order
    (frequencies, then products, then sin/cos), so that the values equal the tables stored in reference
    checkpoints bit for bit; only then is the result cast to `dtype`.
    """
    quarter = dim // 4
    omega = torch.arange(quarter, device=device, dtype=torch.float32) / quarter
    omega = 1.0 / (10000.0**omega)
    rows = torch.arange(height, device=device, dtype=torch.float32).repeat_interleave(width)
    cols = torch.arange(width, device=device, dtype=torch.float32).repeat(height)
    row_angles, col_angles = torch.outer(rows, omega), torch.outer(cols, omega)
    embedding = torch.cat([row_angles.sin(), row_angles.cos(), col_angles.sin(), col_angles.cos()], dim=1)
    return embedding.to(dtype)


def group_grid_by_region(grid: torch.Tensor, region_side: int) -> torch.Tensor:
    """Regroup a channels-first token grid `(batch, dim, H, W)` into regions: `(batch, num_regions, n * n, dim)`.

    With `n = region_side`, region `(i, j)` (numbered row-major) holds the grid tokens of rows `i*n .. i*n+n-1` and
    columns `j*n .. j*n+n-1`, taken row-major. This is a pure view + permute: no index tensors.
    """
    batch, dim, height, width = grid.shape
    regions_h, regions_w = height // region_side, width // region_side
    grid = grid.view(batch, dim, regions_h, region_side, regions_w, region_side)
    # -> (batch, region row, region col, row in region, col in region, dim)
    grid = grid.permute(0, 2, 4, 3, 5, 1)
    return grid.reshape(batch, regions_h * regions_w, region_side * region_side, dim)


def regional_position_embedding(
    height: int, width: int, config: DemsConfig, device=None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """The four scales' sin-cos embeddings for a `height x width` image, in the model's regional token order:
    `(1, num_regions * 85, hidden_size)`. Adding it after the regrouping equals adding each scale's embedding in
    natural grid order before it (the regrouping only permutes tokens)."""
    per_scale = []
    for factor, side in zip(SCALE_FACTORS, REGION_SIDES, strict=True):
        grid_h, grid_w = height // (config.patch_size * factor), width // (config.patch_size * factor)
        table = sincos_position_embedding_2d(grid_h, grid_w, config.hidden_size, device=device, dtype=dtype)
        table = table.T.reshape(1, config.hidden_size, grid_h, grid_w)
        per_scale.append(group_grid_by_region(table, side))
    return torch.cat(per_scale, dim=2).flatten(1, 2)


class DemsPatchEmbedding(nn.Module):
    """One convolution with kernel = stride = the patch side: `(B, C, H, W) -> (B, D, H / patch, W / patch)`."""

    def __init__(self, config: DemsConfig, patch: int):
        super().__init__()
        self.projection = nn.Conv2d(config.num_channels, config.hidden_size, kernel_size=patch, stride=patch)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.projection(pixel_values)


class DemsFactorizedPatchEmbedding(nn.Module):
    """The reference's cheap embedding for the large patches (4p, 8p): two depthwise convolutions shrink each
    `patch x patch` block to one pixel per channel (kernel patch/4, then 4), then a 1x1 convolution widens it to D.
    `(B, C, H, W) -> (B, D, H / patch, W / patch)`."""

    def __init__(self, config: DemsConfig, patch: int):
        super().__init__()
        channels = config.num_channels
        self.depthwise1 = nn.Conv2d(channels, channels, patch // 4, stride=patch // 4, groups=channels, bias=False)
        self.depthwise2 = nn.Conv2d(channels, channels, 4, stride=4, groups=channels, bias=False)
        self.pointwise = nn.Conv2d(channels, config.hidden_size, kernel_size=1)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise2(self.depthwise1(pixel_values)))


class DemsMultiScalePatchEmbeddings(nn.ModuleList):
    """The four scales' patch embeddings (p and 2p: `DemsPatchEmbedding`; 4p and 8p: `DemsFactorizedPatchEmbedding`),
    called as one module: `(B, C, H, W) -> (B, 85 R, D)`, the tokens already regrouped by region.

    One module rather than four so that it can be the model's input embeddings (`get_input_embeddings`): hooks on it,
    such as `enable_input_require_grads`'s, then see every image token. A `ModuleList` so that the weights keep
    their names (`patch_embeddings.0.projection.weight`, ...), which converted reference checkpoints use.
    """

    def __init__(self, config: DemsConfig):
        super().__init__(
            [DemsPatchEmbedding(config, config.patch_size * f) for f in SCALE_FACTORS[:2]]
            + [DemsFactorizedPatchEmbedding(config, config.patch_size * f) for f in SCALE_FACTORS[2:]]
        )

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        scales = zip(self, REGION_SIDES, strict=True)
        tokens = torch.cat([group_grid_by_region(embed(pixel_values), side) for embed, side in scales], dim=2)
        return tokens.flatten(1, 2)


class DemsEmbeddings(nn.Module):
    """Embeds the image at the four scales, adds the fixed sin-cos position embeddings, regroups the tokens by region
    and prepends the class token: `(B, C, H, W) -> (B, 1 + 85 R, D)`, `R = (H / 8p) * (W / 8p)`."""

    def __init__(self, config: DemsConfig):
        super().__init__()
        self.config = config
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        self.patch_embeddings = DemsMultiScalePatchEmbeddings(config)
        # The embedding at the configured image size, already in regional order. It is a formula, not a weight: it is
        # not saved, and `_init_weights` fills it. Other sizes are computed on the fly.
        self.register_buffer(
            "position_embeddings",
            regional_position_embedding(config.image_size, config.image_size, config),
            persistent=False,
        )
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        height, width = pixel_values.shape[-2:]
        tokens = self.patch_embeddings(pixel_values)
        if height == width == self.config.image_size:
            # a no-op unless the weights were loaded in another dtype than the buffer was built in
            position = self.position_embeddings.to(tokens.dtype)
        else:
            position = regional_position_embedding(height, width, self.config, tokens.device, tokens.dtype)
        tokens = tokens + position
        cls_tokens = self.cls_token.expand(tokens.shape[0], -1, -1)
        return self.dropout(torch.cat([cls_tokens, tokens], dim=1))


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain softmax attention over `(B, heads, N, head_dim)` inputs; returns `(B, N, heads, head_dim)` and the
    attention probabilities `(B, heads, N, N)`, the layout of transformers' attention functions."""
    scores = torch.matmul(query, key.transpose(-2, -1)) * scaling
    if attention_mask is not None:
        scores = scores + attention_mask
    probs = scores.softmax(dim=-1)
    probs = nn.functional.dropout(probs, p=dropout, training=module.training)
    return torch.matmul(probs, value).transpose(1, 2), probs


class DemsSelfAttention(nn.Module):
    """Multi-head self-attention with one fused query/key/value projection (the reference's `qkv`)."""

    def __init__(self, config: DemsConfig):
        super().__init__()
        self.config = config
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.scaling = self.head_dim**-0.5
        self.is_causal = False
        self.attention_dropout = config.attention_probs_dropout_prob
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size, bias=config.qkv_bias)
        self.proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.proj_dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self, hidden_states: torch.Tensor, output_attentions: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, length, dim = hidden_states.shape
        # (B, N, 3D) -> three (B, heads, N, head_dim) views, q | k | v then heads as in the reference. Unbinding the
        # `3` axis in place (rather than moving it first) makes the backward's stack write the gradients straight
        # into the (B, N, 3D) layout the qkv matmul needs, instead of stacking and then copying once more.
        qkv = self.qkv(hidden_states).view(batch, length, 3, self.num_heads, self.head_dim)
        query, key, value = (t.transpose(1, 2) for t in qkv.unbind(2))
        implementation = "eager" if output_attentions else self.config._attn_implementation
        attention: Callable = eager_attention_forward
        if implementation != "eager":
            attention = ALL_ATTENTION_FUNCTIONS.get_interface(implementation, eager_attention_forward)
        context, probs = attention(
            self,
            query,
            key,
            value,
            None,
            scaling=self.scaling,
            dropout=self.attention_dropout if self.training else 0.0,
            is_causal=False,
        )
        context = self.proj_dropout(self.proj(context.reshape(batch, length, dim)))
        return context, probs


class DemsMLP(nn.Module):
    def __init__(self, config: DemsConfig, mlp_ratio: float):
        super().__init__()
        hidden = int(config.hidden_size * mlp_ratio)
        self.fc1 = nn.Linear(config.hidden_size, hidden)
        self.activation = ACT2FN[config.hidden_act]
        self.fc2 = nn.Linear(hidden, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = self.dropout(self.activation(self.fc1(hidden_states)))
        return self.dropout(self.fc2(hidden_states))


class DemsDropPath(nn.Module):
    """Stochastic depth: in training, drops the residual branch of whole samples with probability `drop_prob` and
    rescales the kept ones by `1 / (1 - drop_prob)`."""

    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return hidden_states
        keep_prob = 1.0 - self.drop_prob
        shape = (hidden_states.shape[0],) + (1,) * (hidden_states.ndim - 1)
        mask = hidden_states.new_empty(shape).bernoulli_(keep_prob)
        return hidden_states * mask / keep_prob

    def extra_repr(self) -> str:
        return f"p={self.drop_prob}"


class DemsLayer(GradientCheckpointingLayer):
    """Pre-norm transformer block: `x + DropPath(Attn(LN(x)))`, then `x + DropPath(MLP(LN(x)))`."""

    def __init__(self, config: DemsConfig, mlp_ratio: float, drop_path: float):
        super().__init__()
        self.layernorm_before = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attention = DemsSelfAttention(config)
        self.layernorm_after = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = DemsMLP(config, mlp_ratio)
        self.drop_path = DemsDropPath(drop_path)

    def forward(
        self, hidden_states: torch.Tensor, output_attentions: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attention_output, probs = self.attention(self.layernorm_before(hidden_states), output_attentions)
        hidden_states = hidden_states + self.drop_path(attention_output)
        hidden_states = hidden_states + self.drop_path(self.mlp(self.layernorm_after(hidden_states)))
        return hidden_states, probs


class DemsTokenMerger(nn.Module):
    """Regional cross-scale interaction: fuses the N tokens of each region into M with a learned soft assignment.

    `(B, R, N, D) -> (B, R, M, D)`. Scores come from an MLP over the normalised tokens (`D -> 2D -> D/2 -> M`);
    a softmax over the N tokens, sharpened by a learned `scale`, makes each new token a convex mix of the region's
    un-normalised tokens.
    """

    def __init__(self, config: DemsConfig, num_output_tokens: int):
        super().__init__()
        dim = config.hidden_size
        self.norm = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.fc1 = nn.Linear(dim, 2 * dim)
        self.fc2 = nn.Linear(2 * dim, dim // 2)
        self.fc3 = nn.Linear(dim // 2, num_output_tokens)
        self.activation = ACT2FN[config.hidden_act]
        self.scale = nn.Parameter(torch.ones(1, 1, 1, 1))

    def forward(self, region_tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the merged tokens `(B, R, M, D)` and the assignment `(B, R, N, M)` that mixed them. The assignment
        is computed either way; handing it back costs nothing, and the encoder keeps it only when asked."""
        scores = self.activation(self.fc1(self.norm(region_tokens)))
        scores = self.fc3(self.activation(self.fc2(scores)))
        assignment = (scores * self.scale).softmax(dim=2)  # (B, R, N, M), normalised over the region's N tokens
        return torch.matmul(assignment.transpose(2, 3), region_tokens), assignment


class DemsEncoder(nn.Module):
    """The transformer blocks, with a `DemsTokenMerger` before each block named in `config.merge_layers`."""

    def __init__(self, config: DemsConfig):
        super().__init__()
        # linear from 0 at the first block to drop_path_rate at the last, in float32 as the reference computes it;
        # on the CPU explicitly, so that the model can also be built under a meta-device context
        drop_path_rates = torch.linspace(0, config.drop_path_rate, config.num_hidden_layers, device="cpu").tolist()
        # merge_layers are 1-based block numbers: merge k runs before layers[merge_layers[k] - 1].
        stage_starts = [m - 1 for m in config.merge_layers]
        self.layers = nn.ModuleList(
            [
                DemsLayer(config, config.mlp_ratios[sum(i >= s for s in stage_starts)], drop_path_rates[i])
                for i in range(config.num_hidden_layers)
            ]
        )
        self.mergers = nn.ModuleList([DemsTokenMerger(config, m) for m in config.num_merged_tokens])
        self.merger_before_layer = {start: k for k, start in enumerate(stage_starts)}
        self.gradient_checkpointing = False

    def forward(
        self,
        hidden_states: torch.Tensor,
        num_regions: int,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        output_merge_weights: bool = False,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None, ...]:
        """Returns the final sequence and, each `None` unless asked, the hidden states, the attention probabilities
        and the merges' assignments `(B, R, tokens_in, tokens_out)`."""
        all_hidden_states = (hidden_states,) if output_hidden_states else None
        all_attentions = () if output_attentions else None
        all_merge_weights = () if output_merge_weights else None
        for index, layer in enumerate(self.layers):
            if index in self.merger_before_layer:
                merger = self.mergers[self.merger_before_layer[index]]
                hidden_states, assignment = self._merge(hidden_states, merger, num_regions)
                if output_merge_weights:
                    all_merge_weights += (assignment,)
                del assignment  # unless asked for, not held through the blocks that follow
            hidden_states, probs = layer(hidden_states, output_attentions)
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
            if output_attentions:
                all_attentions += (probs,)
        return hidden_states, all_hidden_states, all_attentions, all_merge_weights

    @staticmethod
    def _merge(
        hidden_states: torch.Tensor, merger: DemsTokenMerger, num_regions: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        batch, _, dim = hidden_states.shape
        # The class token passes through; the patch tokens are already laid out region after region. `split` rather
        # than two slices: its backward is one cat, where each slice's would zero a full-size gradient to add up.
        cls_token, patches = hidden_states.split([1, hidden_states.shape[1] - 1], dim=1)
        regions = patches.reshape(batch, num_regions, -1, dim)
        merged, assignment = merger(regions)
        return torch.cat([cls_token, merged.flatten(1, 2)], dim=1), assignment


class DemsPreTrainedModel(PreTrainedModel):
    config_class = DemsConfig
    config: DemsConfig
    base_model_prefix = "dems"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = True
    _no_split_modules = ["DemsEmbeddings", "DemsLayer"]
    # What `get_input_embeddings` returns (transformers' default looks it up under `self.embeddings`, and the head
    # model delegates to its base model): the patch embeddings, as in ViT. `enable_input_require_grads` (which PEFT
    # calls) hooks it so that, with frozen weights and reentrant gradient checkpointing, gradients reach the adapters.
    _input_embed_layer = "patch_embeddings"
    _supports_sdpa = True
    _can_compile_fullgraph = True
    # The loss is a mean over the batch, not a sum to be divided by Trainer's `num_items_in_batch`: Trainer must
    # scale it for gradient accumulation itself (it would not, seeing `**kwargs` in `forward`).
    accepts_loss_kwargs = False

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """The reference's init: truncated normal (std `initializer_range`) for every linear weight and the class
        token, zero biases, unit LayerNorms, PyTorch's default for the convolutions, merge scales at 1."""
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            init.trunc_normal_(module.weight, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, nn.Conv2d):
            # What nn.Conv2d.reset_parameters does, through the guarded init functions so that loaded weights stay.
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            if module.bias is not None:
                fan_in = module.weight.shape[1] * module.weight.shape[2] * module.weight.shape[3]
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, DemsEmbeddings):
            init.trunc_normal_(module.cls_token, std=std)
            size = self.config.image_size
            init.copy_(module.position_embeddings, regional_position_embedding(size, size, self.config))
        elif isinstance(module, DemsTokenMerger):
            init.ones_(module.scale)

    def _check_pixel_values(self, pixel_values: torch.Tensor | None) -> torch.Tensor:
        """Reject malformed input here, with the rule it breaks, rather than as a shape error deep inside."""
        config = self.config
        if pixel_values is None:
            raise ValueError("pixel_values is required: a float tensor of shape (batch, channels, height, width).")
        if not isinstance(pixel_values, torch.Tensor):
            raise TypeError(
                f"pixel_values must be a torch.Tensor, got {type(pixel_values).__name__}; "
                "use DemsImageProcessor(..., return_tensors='pt')."
            )
        if pixel_values.ndim != 4:
            raise ValueError(
                f"pixel_values must be 4-D (batch, channels, height, width), got shape {tuple(pixel_values.shape)}; "
                "for a single image add a batch dimension (pixel_values[None])."
            )
        batch, channels, height, width = pixel_values.shape
        if batch == 0:
            raise ValueError("pixel_values is an empty batch (batch size 0); pass at least one image.")
        if channels != config.num_channels:
            raise ValueError(
                f"pixel_values has {channels} channels but config.num_channels={config.num_channels}; "
                "DemsImageProcessor(num_channels=...) converts grey, RGB and RGBA images to the model's channels "
                "(unless do_convert_rgb=False, which keeps each image's own)."
            )
        if height % config.region_size or width % config.region_size:
            raise ValueError(
                f"pixel_values height x width = {height} x {width}: both must be multiples of "
                f"8 * patch_size = {config.region_size}, the coarsest patch."
            )
        if not pixel_values.is_floating_point():
            raise TypeError(
                f"pixel_values must be a floating-point tensor, got {pixel_values.dtype}; "
                "DemsImageProcessor rescales and normalises images."
            )
        return pixel_values


class DemsModel(DemsPreTrainedModel):
    """The DEMS-ViT encoder without a head. Returns `DemsModelOutput` (a `BaseModelOutputWithPooling`) whose
    `last_hidden_state` is the normalised final sequence `(B, 1 + M R, D)` (M the last merge's tokens per region),
    `pooler_output` the normalised class token `(B, D)`, and on request `hidden_states` (the embeddings, then each
    block's output, before the final norm), `attentions` (each block's `(B, heads, N, N)` probabilities) and
    `merge_weights` (each merge's `(B, R, tokens_in, tokens_out)` soft assignment)."""

    def __init__(self, config: DemsConfig):
        config.validate_architecture()
        super().__init__(config)
        self.embeddings = DemsEmbeddings(config)
        self.encoder = DemsEncoder(config)
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        output_merge_weights: bool | None = None,
        **kwargs,
    ) -> DemsModelOutput | tuple:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch_size, num_channels, height, width)`):
            Images from [`DemsImageProcessor`]. Height and width must be multiples of `8 * patch_size`; they may
            differ from `config.image_size`.
        output_merge_weights (`bool`, *optional*):
            Whether to return each merge's soft assignment (`merge_weights`); defaults to
            `config.output_merge_weights`.
        """
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        output_merge_weights = (
            output_merge_weights if output_merge_weights is not None else self.config.output_merge_weights
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        pixel_values = self._check_pixel_values(pixel_values)
        pixel_values = pixel_values.to(self.embeddings.cls_token.dtype)

        num_regions = (pixel_values.shape[2] // self.config.region_size) * (
            pixel_values.shape[3] // self.config.region_size
        )
        hidden_states = self.embeddings(pixel_values)
        hidden_states, all_hidden_states, all_attentions, all_merge_weights = self.encoder(
            hidden_states, num_regions, output_attentions, output_hidden_states, output_merge_weights
        )
        sequence_output = self.layernorm(hidden_states)
        pooled_output = sequence_output[:, 0]
        outputs = DemsModelOutput(
            last_hidden_state=sequence_output,
            pooler_output=pooled_output,
            hidden_states=all_hidden_states,
            attentions=all_attentions,
            merge_weights=all_merge_weights,
        )
        # ModelOutput.to_tuple leaves out the fields that are None, as the tuple outputs of transformers' models do
        return outputs if return_dict else outputs.to_tuple()


class DemsForImageClassification(DemsPreTrainedModel):
    """DEMS-ViT with a linear classifier on the normalised class token. Returns `DemsImageClassifierOutput` (an
    `ImageClassifierOutput`) with `logits` `(B, num_labels)`, when `labels` are given `loss`, and on request
    `hidden_states`, `attentions` and `merge_weights` as [`DemsModel`] returns them."""

    def __init__(self, config: DemsConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.dems = DemsModel(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels) if config.num_labels > 0 else nn.Identity()
        self.post_init()

    def reset_classifier(self, num_labels: int, id2label: dict[int, str] | None = None) -> None:
        """Replace the classifier by a new one for `num_labels` other classes, initialised as the model's own init
        does (truncated normal of std `config.initializer_range`, zero bias), on the model's device and dtype. The
        encoder is kept: this is how a trained model starts on a data set with other classes.

        Args:
            num_labels (`int`):
                Classes of the new head; `0` leaves no head (`nn.Identity`, the pooled features), as in `__init__`.
            id2label (`dict[int, str]`, *optional*):
                The new classes' names, one per id `0 .. num_labels - 1`; by default `LABEL_0`, `LABEL_1`, ... The
                config's `num_labels`, `id2label` and `label2id` follow; its `problem_type` is left as it is.
        """
        if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 0:
            raise ValueError(f"num_labels={num_labels!r} must be a whole number >= 0.")
        if id2label is None:
            id2label = {i: f"LABEL_{i}" for i in range(num_labels)}
        id2label = {int(i): name for i, name in id2label.items()}
        if sorted(id2label) != list(range(num_labels)):
            raise ValueError(
                f"id2label has the ids {sorted(id2label)}; with num_labels={num_labels} it must name each of the ids "
                f"0 to {num_labels - 1} once."
            )
        if num_labels > 0:
            self.classifier = nn.Linear(self.config.hidden_size, num_labels, device=self.device, dtype=self.dtype)
            self._init_weights(self.classifier)
        else:
            self.classifier = nn.Identity()
        self.num_labels = num_labels
        self.config.id2label = id2label
        self.config.label2id = {name: i for i, name in id2label.items()}

    def save_pretrained(self, save_directory, *args, **kwargs):
        # With remote code registered, transformers writes into auto_map only the Auto class of the class saved;
        # a classifier's folder also loads as its bare encoder, so AutoModel is mapped to DemsModel as well.
        if self.is_remote_code() and DemsModel.is_remote_code():
            module = DemsModel.__module__.rsplit(".", 1)[-1]
            auto_map = dict(getattr(self.config, "auto_map", None) or {})
            self.config.auto_map = {**auto_map, DemsModel._auto_class: f"{module}.DemsModel"}
        return super().save_pretrained(save_directory, *args, **kwargs)

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        output_merge_weights: bool | None = None,
        **kwargs,
    ) -> DemsImageClassifierOutput | tuple:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch_size, num_channels, height, width)`):
            Images from [`DemsImageProcessor`].
        labels (`torch.Tensor`, *optional*):
            Class ids `(batch_size,)` (cross-entropy); with `config.problem_type="single_label_classification"`
            also soft targets, float `(batch_size, num_labels)` rows summing to 1 as mixup/cutmix make them
            (soft cross-entropy). `num_labels == 1` means regression (MSE) and float multi-hot
            `(batch_size, num_labels)` labels without that problem type mean multi-label (BCE), as in transformers.
        output_merge_weights (`bool`, *optional*):
            Whether to return each merge's soft assignment (`merge_weights`); defaults to
            `config.output_merge_weights`.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs = self.dems(
            pixel_values,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
            output_merge_weights=output_merge_weights,
        )
        logits = self.classifier(outputs.pooler_output)
        loss = self.classification_loss(logits, labels) if labels is not None else None
        output = DemsImageClassifierOutput(
            loss=loss,
            logits=logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            merge_weights=outputs.merge_weights,
        )
        return output if return_dict else output.to_tuple()

    def classification_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """transformers' `problem_type` rules, plus soft targets for single-label classification. The problem type
        inferred from one batch is not written back into the config, so that a mixup batch cannot turn a
        single-label model into a multi-label one."""
        if not isinstance(labels, torch.Tensor):
            raise TypeError(f"labels must be a torch.Tensor, got {type(labels).__name__}.")
        problem_type = self.config.problem_type
        if problem_type is None:
            if self.num_labels == 1:
                problem_type = "regression"
            elif labels.is_floating_point() or labels.dtype == torch.bool:  # multi-hot, as transformers reads them
                problem_type = "multi_label_classification"
            else:
                problem_type = "single_label_classification"
        _check_labels(labels, logits.shape, problem_type)
        labels = labels.to(logits.device)

        if problem_type == "regression":
            if self.num_labels == 1:
                return nn.functional.mse_loss(logits.squeeze(-1), labels.reshape(-1).to(logits.dtype))
            return nn.functional.mse_loss(logits, labels.to(logits.dtype))
        if problem_type == "multi_label_classification":
            return nn.functional.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
        if labels.is_floating_point():
            return soft_target_cross_entropy(logits, labels)
        return nn.functional.cross_entropy(logits.float(), labels.long())


def _check_labels(labels: torch.Tensor, logits_shape: torch.Size, problem_type: str) -> None:
    """Refuse labels that do not fit the logits `(batch, num_labels)` and the problem type, before the loss would
    fail with a size error or, for a class id out of range on a GPU, a device-side assert."""
    batch, num_labels = logits_shape
    shape = tuple(labels.shape)
    if problem_type == "regression":
        kind, allowed = "regression labels", [(batch,), (batch, 1)] if num_labels == 1 else [(batch, num_labels)]
    elif problem_type == "multi_label_classification":
        kind, allowed = "multi-label (multi-hot) labels", [(batch, num_labels)]
    elif labels.is_floating_point():
        kind, allowed = "soft-target labels", [(batch, num_labels)]
    elif labels.dtype == torch.bool:
        raise TypeError(
            "bool labels are multi-hot targets, but config.problem_type='single_label_classification' takes class "
            "ids (integers) or soft targets (floats)."
        )
    else:
        kind, allowed = "class-id labels", [(batch,)]
    if shape not in allowed:
        rule = " or ".join(str(a) for a in allowed)
        raise ValueError(
            f"{kind} must have shape {rule} for logits of shape (batch, num_labels) = {(batch, num_labels)} "
            f"({problem_type}), got {shape}."
        )
    # Checked in eager mode only: under torch.compile this data-dependent branch would break the graph.
    if kind == "class-id labels" and not torch.compiler.is_compiling():
        out_of_range = (labels < 0) | (labels >= num_labels)
        if out_of_range.any():
            raise ValueError(
                f"labels hold class id {labels[out_of_range][0].item()}, out of range: class ids must be in "
                f"[0, num_labels) = [0, {num_labels})."
            )


def soft_target_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of -sum_c targets[c] * log_softmax(logits)[c]: cross-entropy against class distributions
    (mixup/cutmix targets), `(batch, num_labels)` each."""
    log_probs = nn.functional.log_softmax(logits.float(), dim=-1)
    return -(targets.float() * log_probs).sum(dim=-1).mean()


__all__ = [
    "DemsForImageClassification",
    "DemsImageClassifierOutput",
    "DemsModel",
    "DemsModelOutput",
    "DemsPreTrainedModel",
    "group_grid_by_region",
    "regional_position_embedding",
    "sincos_position_embedding_2d",
    "soft_target_cross_entropy",
]
