"""Class-token rollout through the merges, its layout on the image, and the merges' scale mix: on hand-built attention
and assignment tensors whose results are worked out by hand in the comments, against the dense matrix product the
rollout stands for, and on a real tiny model's outputs."""

import pytest
import torch
from tiny_configs import make_tiny_config

from modeling_dems import DemsForImageClassification
from modeling_dems.modeling_dems import group_grid_by_region
from modeling_dems.saliency import class_token_rollout, merge_scale_mix, rollout_to_patches, ungroup_regions


REGION = 85  # embedding tokens per region: slots 0-63 patch p, 64-79 2p, 80-83 4p, 84 8p


def attention(length: int, rows: dict[int, dict[int, float]], heads: int = 1) -> torch.Tensor:
    """(1, heads, length, length) probabilities: every token attends to itself, except `rows` {query: {key: p}}."""
    probs = torch.eye(length).repeat(1, heads, 1, 1)
    for query, keys in rows.items():
        probs[0, :, query] = 0.0
        for key, p in keys.items():
            probs[0, :, query, key] = p
    return probs


def test_one_block_class_token_on_the_coarse_token():
    # The class token attends only to the 8p token (sequence index 1 + 84). With the residual's half:
    # 0.5 stays on the class token, 0.5 goes to the 8p token, which covers all 8 x 8 fine patches: 0.5 / 64 each.
    weights = class_token_rollout([attention(1 + REGION, {0: {85: 1.0}})], [], [])
    expected = torch.zeros(1, 1 + REGION)
    expected[0, 0] = expected[0, 85] = 0.5
    torch.testing.assert_close(weights, expected, rtol=0, atol=0)
    saliency = rollout_to_patches(weights, 1, 1)
    torch.testing.assert_close(saliency.per_patch, torch.full((1, 8, 8), 0.5 / 64), rtol=0, atol=1e-7)
    assert [tuple(m.shape) for m in saliency.per_scale] == [(1, 8, 8), (1, 4, 4), (1, 2, 2), (1, 1, 1)]
    assert saliency.per_scale[3].item() == 0.5 and all(m.abs().sum() == 0 for m in saliency.per_scale[:3])
    assert saliency.class_token.item() == 0.5


def test_two_blocks_chain_and_heads_are_averaged():
    # Block 0: token 1 attends to token 2 in head 0 and to token 3 in head 1 (mean: half each); block 1: the class
    # token attends to token 1. Rollout with residual w:
    #   after block 1 (read first): (1 - w) e1 + w e0
    #   block 0's mixed row of token 1: (1 - w)(e2 + e3) / 2 + w e1; the class token's row is e0.
    first = attention(1 + REGION, {1: {2: 1.0}}, heads=2)
    first[0, 1, 1] = 0.0
    first[0, 1, 1, 3] = 1.0
    second = attention(1 + REGION, {0: {1: 1.0}}, heads=2)
    half = class_token_rollout([first, second], [], [], residual_weight=0.5)[0]
    assert half[:4].tolist() == [0.5, 0.25, 0.125, 0.125] and half[4:].abs().sum() == 0
    none = class_token_rollout([first, second], [], [], residual_weight=0.0)[0]
    assert none[:4].tolist() == [0.0, 0.0, 0.5, 0.5] and none[4:].abs().sum() == 0


def test_a_merge_sends_the_weight_back_to_the_tokens_it_mixed():
    # One region merged into 2 tokens before the only block: merged token 0 is fine token 0, merged token 1 the mean
    # of the four 4p tokens (slots 80-83). The class token attends to merged token 1 (sequence index 2), so
    # 0.5 stays on the class token and 0.5 / 4 = 0.125 goes to each 4p token, 0.125 / 16 to each fine patch.
    assignment = torch.zeros(1, 1, REGION, 2)
    assignment[0, 0, 0, 0] = 1.0
    assignment[0, 0, 80:84, 1] = 0.25
    weights = class_token_rollout([attention(3, {0: {2: 1.0}})], [assignment], merge_layers=[1])
    expected = torch.zeros(1, 1 + REGION)
    expected[0, 0] = 0.5
    expected[0, 1 + 80 : 1 + 84] = 0.125
    torch.testing.assert_close(weights, expected, rtol=0, atol=0)
    saliency = rollout_to_patches(weights, 1, 1)
    torch.testing.assert_close(saliency.per_scale[2], torch.full((1, 2, 2), 0.125), rtol=0, atol=0)
    torch.testing.assert_close(saliency.per_patch, torch.full((1, 8, 8), 0.125 / 16), rtol=0, atol=1e-8)


def test_tokens_land_on_their_region_and_offset():
    # 2 x 2 regions (numbered row-major). The class token attends to region 1 (top right), fine slot 9 = offset
    # (1, 1): fine grid cell (1, 8 + 1); and to region 2 (bottom left), slot 84, its 8p token: coarse cell (1, 0).
    length = 1 + 4 * REGION
    probs = attention(length, {0: {1 + REGION + 9: 0.75, 1 + 2 * REGION + 84: 0.25}})
    saliency = rollout_to_patches(class_token_rollout([probs], [], [], residual_weight=0.0), 2, 2)
    fine, coarse = saliency.per_scale[0][0], saliency.per_scale[3][0]
    assert fine.shape == (16, 16) and fine[1, 9] == 0.75 and fine.sum() == 0.75
    assert coarse.tolist() == [[0.0, 0.0], [0.25, 0.0]]
    expected = torch.zeros(16, 16)
    expected[8:, :8] = 0.25 / 64
    expected[1, 9] += 0.75
    torch.testing.assert_close(saliency.per_patch[0], expected, rtol=0, atol=1e-8)
    assert saliency.class_token.item() == 0.0


def test_ungroup_regions_inverts_the_models_regrouping():
    grid = torch.arange(2 * 12 * 8, dtype=torch.float32).reshape(2, 1, 12, 8)  # 3 x 2 regions of 4 x 4 tokens
    regions = group_grid_by_region(grid, 4)[..., 0]  # (2, 6, 16)
    assert torch.equal(ungroup_regions(regions, 3, 2), grid[:, 0])


def _dense_merge(assignment: torch.Tensor) -> torch.Tensor:
    """The merge as a (1 + R M, 1 + R N) matrix on one image's sequence: the class token passes through."""
    regions, n_in, n_out = assignment.shape
    matrix = torch.zeros(1 + regions * n_out, 1 + regions * n_in, dtype=torch.float64)
    matrix[0, 0] = 1.0
    for r in range(regions):
        matrix[1 + r * n_out : 1 + (r + 1) * n_out, 1 + r * n_in : 1 + (r + 1) * n_in] = assignment[r].T
    return matrix


def test_rollout_equals_the_dense_product_of_blocks_and_merges():
    # Three blocks on 2 regions, merges 85 -> 5 before block 2 and 5 -> 3 before block 3, random softmaxes: the
    # class token's row of A3 M2 A2 M1 A1 (A = (1 - w) mean_heads + w I), computed with full matrices in float64.
    generator = torch.Generator().manual_seed(0)
    batch, regions, w = 2, 2, 0.3
    lengths = [1 + regions * REGION, 1 + regions * 5, 1 + regions * 3]
    attentions = [torch.randn(batch, 2, n, n, generator=generator).softmax(-1) for n in lengths]
    merges = [
        torch.randn(batch, regions, REGION, 5, generator=generator).softmax(2),
        torch.randn(batch, regions, 5, 3, generator=generator).softmax(2),
    ]
    weights = class_token_rollout(attentions, merges, merge_layers=[2, 3], residual_weight=w)
    for b in range(batch):
        mixes = [(1 - w) * a[b].double().mean(0) + w * torch.eye(a.shape[-1], dtype=torch.float64) for a in attentions]
        product = mixes[2] @ _dense_merge(merges[1][b]) @ mixes[1] @ _dense_merge(merges[0][b]) @ mixes[0]
        torch.testing.assert_close(weights[b].double(), product[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(weights.sum(1), torch.ones(batch), rtol=0, atol=1e-6)


def test_scale_mix_by_hand_and_through_two_merges():
    # Merge 1 (85 -> 2): token 0 is fine slot 0, all patch p; token 1 is half slot 64 (2p), half slot 84 (8p).
    # Merge 2 (2 -> 1): a quarter of token 0 and three quarters of token 1: p 0.25, 2p 0.375, 4p 0, 8p 0.375.
    first = torch.zeros(1, 1, REGION, 2)
    first[0, 0, 0, 0] = 1.0
    first[0, 0, 64, 1] = first[0, 0, 84, 1] = 0.5
    second = torch.tensor([0.25, 0.75]).reshape(1, 1, 2, 1)
    mix_1, mix_2 = merge_scale_mix([first, second])
    assert mix_1[0, 0].tolist() == [[1.0, 0.0, 0.0, 0.0], [0.0, 0.5, 0.0, 0.5]]
    assert mix_2[0, 0].tolist() == [[0.25, 0.375, 0.0, 0.375]]
    # a uniform first merge takes each scale in proportion to its tokens: 64, 16, 4, 1 of 85
    uniform = merge_scale_mix([torch.full((1, 1, REGION, 3), 1 / REGION)])[0]
    expected = torch.tensor([64, 16, 4, 1]) / REGION
    torch.testing.assert_close(uniform, expected.expand(1, 1, 3, 4), rtol=0, atol=1e-6)


def test_on_a_tiny_models_outputs():
    torch.manual_seed(0)
    config = make_tiny_config("four_regions")
    model = DemsForImageClassification(config).eval()
    with torch.no_grad():
        outputs = model(torch.randn(2, 3, 32, 32), output_attentions=True, output_merge_weights=True)
    weights = class_token_rollout(outputs.attentions, outputs.merge_weights, config.merge_layers)
    assert weights.shape == (2, 1 + 4 * REGION)
    torch.testing.assert_close(weights.sum(1), torch.ones(2), rtol=0, atol=1e-5)
    saliency = rollout_to_patches(weights, 2, 2)
    assert saliency.per_patch.shape == (2, 16, 16) and (saliency.per_patch >= 0).all()
    torch.testing.assert_close(saliency.per_patch.sum((1, 2)) + saliency.class_token, torch.ones(2), atol=1e-5,
                               rtol=0)  # fmt: skip
    mixes = merge_scale_mix(outputs.merge_weights)
    assert [tuple(m.shape) for m in mixes] == [(2, 4, 10, 4), (2, 4, 3, 4)]
    torch.testing.assert_close(mixes[1].sum(-1), torch.ones(2, 4, 3), rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    ("merge_layers", "message"),
    [
        ([2], r"merge_weights holds 2 tensors but merge_layers=\[2\] names 1 merges"),
        ([2, 3], r"attentions\[2\] covers 41 tokens, but the blocks and merges after it leave 13"),
    ],
)
def test_merge_layers_that_do_not_fit_are_refused(merge_layers, message):
    torch.manual_seed(0)
    model = DemsForImageClassification(make_tiny_config("four_regions")).eval()  # merges before blocks 2 and 4
    with torch.no_grad():
        outputs = model(torch.randn(1, 3, 32, 32), output_attentions=True, output_merge_weights=True)
    with pytest.raises(ValueError, match=message):
        class_token_rollout(outputs.attentions, outputs.merge_weights, merge_layers)
