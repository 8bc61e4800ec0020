"""DET curve figures (miss vs false-alarm probability on normal-deviate axes).

Kept apart from :mod:`dmha.scoring.metrics` so that validation during training never imports matplotlib.
An exact DET curve has one point per distinct score (millions for a large list); points closer than
a small step on the deviate scale are dropped before plotting — invisible at figure resolution.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from dmha.common.fileio import PathLike, atomic_open
from dmha.scoring.metrics import DetPoints

_TICKS = np.array([0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8])
_LIMITS = (0.0005, 0.5)   # the upper limit grows (up to 0.8) for systems whose EER is near it


def _thin(x: np.ndarray, y: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Keep the points that move at least ``step`` (on a grid) away from the previous kept cell."""
    cells = np.floor(np.column_stack((x, y)) / step)
    keep = np.ones(x.size, dtype=bool)
    keep[1:] = np.any(cells[1:] != cells[:-1], axis=1)
    keep[-1] = True
    return x[keep], y[keep]


def plot_det(curves: Sequence[tuple[str, DetPoints]], path: PathLike, title: str = "",
             eers: Sequence[float] | None = None) -> None:
    """Write a PNG with one DET curve per (label, points); ``eers`` (fractions) are marked on them."""
    import matplotlib

    logging.getLogger("matplotlib").setLevel(logging.WARNING)   # no font-cache chatter in stage logs

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import norm

    worst = max(eers or [0.0])
    lo, hi = norm.ppf(_LIMITS[0]), norm.ppf(min(0.8, max(_LIMITS[1], 1.5 * worst)))
    fig, ax = plt.subplots(figsize=(5, 5))
    try:
        for i, (label, det) in enumerate(curves):
            x = np.clip(norm.ppf(np.clip(det.fpr, 1e-12, 1 - 1e-12)), lo - 1, hi + 1)
            y = np.clip(norm.ppf(np.clip(det.fnr, 1e-12, 1 - 1e-12)), lo - 1, hi + 1)
            x, y = _thin(x, y, 0.005)
            has_eer = eers is not None and eers[i] > 0
            line, = ax.plot(x, y, label=f"{label} (EER {100 * eers[i]:.2f}%)" if has_eer else label)
            if has_eer:
                d = norm.ppf(eers[i])
                ax.plot([d], [d], "o", color=line.get_color())
        ax.plot([lo, hi], [lo, hi], ":", color="0.6", linewidth=0.8)
        shown = _TICKS[norm.ppf(_TICKS) <= hi + 1e-9]
        ticks = norm.ppf(shown)
        labels = [f"{100 * t:g}" for t in shown]
        ax.set_xticks(ticks, labels)
        ax.set_yticks(ticks, labels)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_xlabel("False alarm probability (%)")
        ax.set_ylabel("Miss probability (%)")
        ax.grid(True, linewidth=0.5, alpha=0.5)
        if title:
            ax.set_title(title)
        ax.legend(loc="lower left", fontsize="small")  # empty corner: curves run top-left to bottom-right
        fig.tight_layout()
        with atomic_open(path, "wb") as f:
            fig.savefig(f, format="png", dpi=100)
    finally:
        plt.close(fig)
