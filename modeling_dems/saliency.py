"""What a DEMS-ViT looks at, from the outputs it returns on request: class-token saliency through the merges (an
attention rollout that also follows each merge's soft assignment back to the tokens it mixed) and the scale mix of
the merged tokens (the share of each merged token's weight that comes from each patch size).

Only torch: the functions take the `attentions` (`output_attentions=True`) and `merge_weights`
(`output_merge_weights=True`) of a [`DemsModel`] or [`DemsForImageClassification`] output.

Rollout (Abnar and Zuidema, "Quantifying Attention Flow in Transformers", 2020): each block mixes its tokens by
`A_hat = (1 - w) * mean_heads(A) + w * I`, the attention averaged over heads plus the residual connection's identity
(`w = 0.5` in the paper); the blocks compose by matrix products. A DEMS merge is one more linear mix, with no
residual: merged token `j` of a region is `sum_i merge_weights[r, i, j] * token_i`, the class token passes through.
Composing both from the last block down to the embeddings gives the share of the final class token that each token
of the embedding sequence (the class token's own embedding, then each region's 85 tokens) contributes. Attention
rollout is a heuristic reading of attention, not an exact attribution: it ignores the values, the MLPs and the
normalisations.
"""

from collections.abc import Sequence
from typing import NamedTuple

import torch

from .configuration_dems import TOKENS_PER_REGION
from .modeling_dems import REGION_SIDES, SCALE_FACTORS


# Slots of each scale in a region's 85 embedding tokens: 64 of patch p, 16 of 2p, 4 of 4p, 1 of 8p.
SCALE_TOKEN_COUNTS = tuple(side * side for side in REGION_SIDES)
SCALE_NAMES = tuple("p" if f == 1 else f"{f}p" for f in SCALE_FACTORS)


class PatchSaliency(NamedTuple):
    """A class-token rollout laid out on the image. For an image of `H x W` pixels, base patch `p`:

    - `per_patch` `(batch, H / p, W / p)`: the weight of each fine patch. A coarser token's weight is spread evenly
      over the fine patches it covers, so that the map sums to `1 - class_token`.
    - `per_scale`: four maps `(batch, H / (f p), W / (f p))`, `f = 1, 2, 4, 8`: the weight of each scale's tokens on
      their own grid.
    - `class_token` `(batch,)`: the weight of the class token's own embedding (a learned constant, no image content).
    """

    per_patch: torch.Tensor
    per_scale: tuple[torch.Tensor, ...]
    class_token: torch.Tensor


def class_token_rollout(
    attentions: Sequence[torch.Tensor],
    merge_weights: Sequence[torch.Tensor],
    merge_layers: Sequence[int],
    residual_weight: float = 0.5,
) -> torch.Tensor:
    """Attention rollout of the final class token through the blocks and the merges.

    Args:
        attentions: one tensor per block, `(batch, heads, N_l, N_l)`, `N_l` the sequence length the block sees
            (`1 + tokens_per_region * regions`).
        merge_weights: one tensor per merge, `(batch, regions, tokens_in, tokens_out)`.
        merge_layers: the 1-based block before which each merge runs (`config.merge_layers`).
        residual_weight: the identity's share in each block's mix, `A_hat = (1 - w) mean_heads(A) + w I`.

    Returns:
        `(batch, 1 + 85 * regions)`, each row summing to 1: the share of the final class token that comes from each
        token of the embedding sequence, in its order (index 0 the class token, then region after region its 64 + 16
        + 4 + 1 tokens of patch p, 2p, 4p, 8p).
    """
    if len(merge_weights) != len(merge_layers):
        raise ValueError(
            f"merge_weights holds {len(merge_weights)} tensors but merge_layers={list(merge_layers)} names "
            f"{len(merge_layers)} merges; pass one assignment per merge."
        )
    if not 0.0 <= residual_weight <= 1.0:
        raise ValueError(f"residual_weight={residual_weight} must be in [0, 1].")
    merge_before = {layer - 1: k for k, layer in enumerate(merge_layers)}
    if any(block >= len(attentions) or block < 0 for block in merge_before):
        raise ValueError(
            f"merge_layers={list(merge_layers)} names blocks beyond the {len(attentions)} attention tensors given."
        )
    batch, length = attentions[-1].shape[0], attentions[-1].shape[-1]
    # Only the class token's row of the product is wanted: carry that row from the last block down, one
    # vector-matrix product per step, instead of multiplying full (N, N) matrices.
    row = torch.zeros(batch, length, dtype=torch.float32, device=attentions[-1].device)
    row[:, 0] = 1.0
    for block in range(len(attentions) - 1, -1, -1):
        if attentions[block].shape[-1] != row.shape[1]:
            raise ValueError(
                f"attentions[{block}] covers {attentions[block].shape[-1]} tokens, but the blocks and merges after "
                f"it leave {row.shape[1]}; are merge_layers={list(merge_layers)} those of the model?"
            )
        mixed = attentions[block].float().mean(dim=1)  # (batch, N, N), rows sum to 1
        row = (1.0 - residual_weight) * torch.bmm(row[:, None], mixed)[:, 0] + residual_weight * row
        if block in merge_before:
            assignment = merge_weights[merge_before[block]].float()  # (batch, R, N_in, N_out)
            regions = assignment.shape[1]
            merged = row[:, 1:].reshape(batch, regions, -1)  # (batch, R, N_out)
            # merged token j took assignment[..., i, j] of token i: its share flows back in that proportion
            incoming = torch.einsum("brj,brij->bri", merged, assignment)
            row = torch.cat([row[:, :1], incoming.flatten(1)], dim=1)
    return row


def ungroup_regions(region_tokens: torch.Tensor, regions_high: int, regions_wide: int) -> torch.Tensor:
    """Inverse of `group_grid_by_region` for one value per token: `(batch, R, n * n)` with `R = regions_high *
    regions_wide` regions numbered row-major, each holding its `n x n` tokens row-major, back to the token grid
    `(batch, regions_high * n, regions_wide * n)`."""
    batch, regions, tokens = region_tokens.shape
    side = round(tokens**0.5)
    if regions != regions_high * regions_wide or side * side != tokens:
        raise ValueError(
            f"region_tokens of shape {tuple(region_tokens.shape)} do not hold {regions_high} x {regions_wide} "
            "regions of a square block of tokens each."
        )
    grid = region_tokens.reshape(batch, regions_high, regions_wide, side, side).permute(0, 1, 3, 2, 4)
    return grid.reshape(batch, regions_high * side, regions_wide * side)


def rollout_to_patches(token_weights: torch.Tensor, regions_high: int, regions_wide: int) -> PatchSaliency:
    """Lay a `class_token_rollout` `(batch, 1 + 85 R)` out on the image, `R = regions_high * regions_wide` (an image
    of `H x W` pixels has `H / (8 p)` by `W / (8 p)` regions). See `PatchSaliency` for the shapes."""
    batch = token_weights.shape[0]
    regions = regions_high * regions_wide
    if token_weights.shape[1] != 1 + TOKENS_PER_REGION * regions:
        raise ValueError(
            f"token_weights has {token_weights.shape[1]} tokens per image; {regions_high} x {regions_wide} regions "
            f"make 1 + {TOKENS_PER_REGION} * {regions} = {1 + TOKENS_PER_REGION * regions} embedding tokens."
        )
    per_region = token_weights[:, 1:].reshape(batch, regions, TOKENS_PER_REGION)
    per_scale = tuple(
        ungroup_regions(slots, regions_high, regions_wide)
        for slots in per_region.split(list(SCALE_TOKEN_COUNTS), dim=2)
    )
    # a token of scale f covers f x f fine patches: each gets 1 / f^2 of its weight
    per_patch = sum(
        (grid / (f * f)).repeat_interleave(f, dim=1).repeat_interleave(f, dim=2)
        for grid, f in zip(per_scale, SCALE_FACTORS, strict=True)
    )
    return PatchSaliency(per_patch=per_patch, per_scale=per_scale, class_token=token_weights[:, 0])


def merge_scale_mix(merge_weights: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """The share of each merged token's weight that comes from each patch size, per merge.

    Args:
        merge_weights: one tensor per merge, `(batch, regions, tokens_in, tokens_out)`; the first merge's
            `tokens_in` are a region's 85 embedding tokens (64 + 16 + 4 + 1 of patch p, 2p, 4p, 8p).

    Returns:
        One tensor per merge, `(batch, regions, tokens_out, 4)`: for each merged token, the shares of patch p, 2p, 4p
        and 8p, summing to 1. A later merge mixes earlier merged tokens, so its shares are traced back through every
        merge before it.
    """
    mixes = []
    # (batch, R, tokens, 4): each embedding token is all of its own scale
    origin = None
    for assignment in merge_weights:
        assignment = assignment.float()
        if origin is None:
            if assignment.shape[2] != TOKENS_PER_REGION:
                raise ValueError(
                    f"the first merge's assignment has {assignment.shape[2]} incoming tokens per region, not the "
                    f"{TOKENS_PER_REGION} embedding tokens of a region."
                )
            scale_of_slot = torch.repeat_interleave(
                torch.arange(len(SCALE_TOKEN_COUNTS), device=assignment.device),
                torch.tensor(SCALE_TOKEN_COUNTS, device=assignment.device),
            )
            origin = torch.nn.functional.one_hot(scale_of_slot, len(SCALE_TOKEN_COUNTS)).float()
            origin = origin.expand(*assignment.shape[:2], -1, -1)
        origin = torch.einsum("brij,bris->brjs", assignment, origin)
        mixes.append(origin)
    return tuple(mixes)


__all__ = [
    "SCALE_NAMES",
    "SCALE_TOKEN_COUNTS",
    "PatchSaliency",
    "class_token_rollout",
    "merge_scale_mix",
    "rollout_to_patches",
    "ungroup_regions",
]
