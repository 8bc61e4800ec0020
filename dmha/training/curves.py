"""Training curves: loss, accuracy and validation EER per epoch in one PNG (matplotlib, Agg backend).

Why: a glance at ``exp/<name>/training.png`` tells whether a run is learning, over-fitting, or has
stalled (the LR halvings show as marks on the EER panel). Written atomically like every output.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from dmha.common.fileio import PathLike, atomic_open  # noqa: E402


def plot_training_curves(history: Sequence[dict], path: PathLike, title: str = "") -> None:
    """Plot per-epoch ``loss``, ``acc`` and ``val_eer`` (rows of the metrics CSV) to ``path``."""
    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot(epochs, [h["loss"] for h in history], marker=".")
    ramp = [h["epoch"] for prev, h in zip(history, history[1:]) if h.get("margin") != prev.get("margin")]
    axes[0].set_title("training loss" + ("  (shaded: margin warm-up)" if ramp else ""))
    if ramp:
        axes[0].axvspan(epochs[0], max(ramp), color="grey", alpha=0.15, linewidth=0)
    axes[1].plot(epochs, [100.0 * h["acc"] for h in history], marker=".")
    axes[1].set_title("training accuracy (%)")
    val = [(h["epoch"], h["val_eer"]) for h in history if h.get("val_eer") is not None]
    if val:
        axes[2].plot([v[0] for v in val], [v[1] for v in val], marker="o")
    lr_changes = [h["epoch"] for prev, h in zip(history, history[1:]) if h["lr"] != prev["lr"]]
    for e in lr_changes:
        axes[2].axvline(e, color="grey", linestyle=":", linewidth=1)
    axes[2].set_title("validation EER (%)  (dotted: LR change)")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)
