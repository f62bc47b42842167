"""The pictures of explanations.py's results, as PNGs a person reads without the code:

- `plot_explanations`: one row per image: the input, the class-token saliency over it, the top predictions, and
  per merge the scale mix of its merged tokens;
- `plot_scale_mix_summary`: for a data set, the mean scale mix per merge (and of the class-token saliency) as bars
  beside the mix a uniform merge would give.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

# matplotlib's object API (Figure, not pyplot): no global backend or figure state; savefig renders with Agg.
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from modeling_dems.saliency import SCALE_NAMES, SCALE_TOKEN_COUNTS


# Paul Tol's "bright" colours: told apart with any colour vision.
SCALE_COLOURS = ("#4477AA", "#66CCEE", "#CCBB44", "#EE6677")
# What a merge that weighs a region's 85 tokens alike would take from each patch size: the token counts' shares.
UNIFORM_MIX = np.array(SCALE_TOKEN_COUNTS, dtype=float) / sum(SCALE_TOKEN_COUNTS)
_DPI = 80


def scale_labels(patch_size: int | None) -> list[str]:
    """'patch p (4 px)', '2p (8 px)', ...: the patch sizes as the legends name them."""
    labels = []
    for index, name in enumerate(SCALE_NAMES):
        pixels = f" ({patch_size * 2**index} px)" if patch_size else ""
        labels.append(f"patch {name}{pixels}" if index == 0 else f"{name}{pixels}")
    return labels


def _percent(value: float) -> str:
    return f"{100 * value:.0f}%"


def plot_explanations(
    explanations: Sequence, path: str | os.PathLike, patch_size: int | None = None, title: str | None = None
) -> None:
    """Write a PNG with one row per `ImageExplanation`: input, saliency overlay, top predictions, scale mix per
    merge."""
    merges = len(explanations[0].scale_mix)
    columns = 3 + merges
    widths = [1.0, 1.25, 1.2] + [1.5] * merges
    figure = Figure(figsize=(2.7 * sum(widths), 3.0 * len(explanations) + 0.9), layout="constrained")
    grid = figure.subplots(len(explanations), columns, squeeze=False, gridspec_kw={"width_ratios": widths})
    for row, explanation in zip(grid, explanations, strict=True):
        _draw_input(row[0], explanation)
        _draw_saliency(figure, row[1], explanation)
        _draw_predictions(row[2], explanation)
        tokens_in = sum(SCALE_TOKEN_COUNTS)
        for k, mix in enumerate(explanation.scale_mix):
            _draw_scale_mix(row[3 + k], mix, k, tokens_in, explanation.regions, first=k == 0)
            tokens_in = mix.shape[0]
    handles = [Patch(color=c, label=label) for c, label in zip(SCALE_COLOURS, scale_labels(patch_size), strict=True)]
    figure.legend(handles=handles, loc="outside lower center", ncols=4, title="token patch size")
    figure.suptitle(
        (f"{title}\n" if title else "")
        + "class-token saliency = attention rollout through the blocks and merges; scale mix = where each merged "
        "token's weight comes from"
    )
    figure.savefig(path, dpi=_DPI)


def _draw_input(axes, explanation) -> None:
    axes.imshow(explanation.image, interpolation="nearest")
    name = f"{explanation.name}\n" if explanation.name else ""
    truth = f"true class: {explanation.label}" if explanation.label is not None else "input"
    height, width = explanation.image.shape[:2]
    axes.set_title(f"{name}{truth}\n({width}x{height} px, as the model sees it)", fontsize=9)
    axes.set_axis_off()


def _draw_saliency(figure, axes, explanation) -> None:
    image = explanation.image
    height, width = image.shape[:2]
    grey = image.astype(float).mean(axis=2)
    # both layers on the same pixel-edge extent, so that each fine patch's colour sits on its pixels
    axes.imshow(grey, cmap="gray", interpolation="nearest", extent=(0, width, height, 0))
    heat = axes.imshow(
        explanation.saliency,
        cmap="inferno",
        alpha=0.6,
        extent=(0, width, height, 0),
        interpolation="nearest",
        vmin=0.0,  # from zero: a colour scale starting at the smallest share would overstate the differences
    )
    axes.set_xlim(0, width)
    axes.set_ylim(height, 0)
    colorbar = figure.colorbar(heat, ax=axes, fraction=0.046, pad=0.03)
    colorbar.set_label("share per fine patch", fontsize=8)
    colorbar.ax.tick_params(labelsize=7)
    shares = explanation.saliency_by_scale
    by_scale = ", ".join(f"{name} {_percent(v)}" for name, v in zip(SCALE_NAMES, shares[1:], strict=True))
    axes.set_title("class-token saliency", fontsize=9)
    axes.set_xlabel(f"from tokens of {by_scale};\nclass token itself {_percent(shares[0])}", fontsize=7.5)
    axes.set_xticks([])
    axes.set_yticks([])


def _draw_predictions(axes, explanation) -> None:
    labels = [label for label, _ in explanation.predictions]
    scores = [score for _, score in explanation.predictions]
    positions = np.arange(len(labels))
    if explanation.label is None:
        colours = ["#777777"] * len(labels)
    else:
        colours = ["#228833" if label == explanation.label else "#BB5566" for label in labels]
    axes.barh(positions, scores, color=colours)
    axes.set_yticks(positions, labels, fontsize=8)
    axes.invert_yaxis()
    axes.set_xlim(0, 1)
    for position, score in zip(positions, scores, strict=True):
        axes.text(min(score + 0.02, 0.8), position, f"{score:.2f}", va="center", fontsize=8)
    verdict = ""
    if explanation.label is not None:
        verdict = " (right)" if labels and labels[0] == explanation.label else " (wrong)"
    axes.set_title(f"top {len(labels)} predictions{verdict}", fontsize=9)
    axes.set_xlabel("score" if explanation.label is None else "score (green: the true class)", fontsize=8)
    axes.tick_params(axis="x", labelsize=7)


def _draw_scale_mix(axes, mix: np.ndarray, index: int, tokens_in: int, regions: int, first: bool) -> None:
    """Stacked bars: one per merged token (mean over the regions), sorted by their share of the finest patches, and
    at the left what a uniform merge of a region's 85 tokens would take."""
    tokens = mix.shape[0]
    order = np.lexsort(tuple(-mix[:, s] for s in reversed(range(mix.shape[1]))))
    # the uniform reference as one wide bar left of the tokens, a gap between them
    reference = max(2.0, tokens / 8)
    positions = np.concatenate([[-reference / 2 - 1.0], np.arange(tokens) + 0.5])
    widths = np.concatenate([[reference], np.ones(tokens)])
    ordered = np.vstack([UNIFORM_MIX[None], mix[order]])
    bottom = np.zeros(len(ordered))
    for scale, colour in enumerate(SCALE_COLOURS):
        axes.bar(positions, ordered[:, scale], bottom=bottom, width=widths, color=colour, linewidth=0)
        bottom += ordered[:, scale]
    axes.set_xlim(-reference - 1.0, tokens)
    axes.set_ylim(0, 1)
    axes.set_xticks([positions[0], tokens / 2], ["uniform", "merged tokens"], fontsize=7)
    regions = f", mean over {regions} regions" if regions > 1 else ""
    axes.set_xlabel(f"each of its {tokens} tokens{regions},\nsorted by share of the finest patches", fontsize=8)
    axes.set_title(f"merge {index + 1}: {tokens_in} -> {mix.shape[0]} tokens per region", fontsize=9)
    axes.tick_params(axis="y", labelsize=7)
    if first:
        axes.set_ylabel("share of the token's weight", fontsize=8)


def plot_scale_mix_summary(
    mean_mixes: Sequence[np.ndarray],
    mean_saliency_by_scale: np.ndarray,
    path: str | os.PathLike,
    merge_sizes: Sequence[tuple[int, int]],
    patch_size: int | None = None,
    title: str | None = None,
) -> None:
    """Grouped bars per patch size: what a uniform merge takes, the mean share of each merge's tokens (`mean_mixes`,
    one `(4,)` per merge, `merge_sizes` its (tokens in, tokens out) per region), and the class-token saliency's
    share of the image's tokens (`mean_saliency_by_scale`, `(4,)`, the class token's own part left out)."""
    series = [("uniform merge (token counts 64:16:4:1)", UNIFORM_MIX, "#BBBBBB")]
    greys = ("#332288", "#882255", "#117733", "#999933")
    for k, (mix, (n_in, n_out)) in enumerate(zip(mean_mixes, merge_sizes, strict=True)):
        series.append((f"merge {k + 1} ({n_in} -> {n_out} tokens per region)", mix, greys[k % len(greys)]))
    series.append(("class-token saliency (rollout), image part", mean_saliency_by_scale, "#EE7733"))
    figure = Figure(figsize=(8.5, 4.6), layout="constrained")
    axes = figure.subplots()
    positions = np.arange(len(SCALE_NAMES))
    width = 0.8 / len(series)
    for index, (label, values, colour) in enumerate(series):
        offsets = positions - 0.4 + width * (index + 0.5)
        bars = axes.bar(offsets, values, width=width, color=colour, label=label)
        axes.bar_label(bars, [_percent(v) for v in values], fontsize=7, padding=1)
    axes.set_xticks(positions, scale_labels(patch_size))
    axes.set_ylim(0, 1)
    axes.set_ylabel("share of the weight from each patch size")
    axes.legend(fontsize=8, loc="upper right")
    axes.grid(axis="y", alpha=0.3)
    axes.set_title(title or "mean scale mix per merge", fontsize=10)
    figure.savefig(path, dpi=100)


__all__ = ["SCALE_COLOURS", "UNIFORM_MIX", "plot_explanations", "plot_scale_mix_summary", "scale_labels"]
