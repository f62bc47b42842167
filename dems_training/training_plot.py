"""The picture of a run that a person reads at a glance: training loss, learning rate and held-out top-1 per epoch,
from the history of the run summary (outputs.epoch_history), as a PNG beside the model card."""

from collections.abc import Mapping

# matplotlib's object API (Figure, not pyplot): no global backend or figure state, so it is safe in any process.
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


PANELS = (
    ("train_loss", "training loss (mean per epoch)"),
    ("learning_rate", "learning rate"),
    ("eval_top1_accuracy", "held-out top-1 accuracy"),
)


def plot_history(history: list[Mapping], path: str, title: str | None = None) -> None:
    """Write a PNG of one panel per entry of PANELS against the epoch; epochs without the value are left out."""
    figure = Figure(figsize=(4 * len(PANELS), 3.4), layout="constrained")
    for axes, (key, label) in zip(figure.subplots(1, len(PANELS)), PANELS, strict=True):
        points = [(row["epoch"], row[key]) for row in history if row.get(key) is not None]
        if points:
            epochs, values = zip(*points, strict=True)
            axes.plot(epochs, values, marker="o", markersize=3)
        else:
            axes.text(0.5, 0.5, "not logged", ha="center", va="center", transform=axes.transAxes)
        axes.set_title(label)
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
        if key == "learning_rate":
            axes.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
        if key.endswith("accuracy"):
            axes.set_ylim(0, 1)  # on the full scale, so that runs compare at a glance
    if title:
        figure.suptitle(title)
    figure.savefig(path, dpi=100)
