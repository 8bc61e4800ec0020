"""Benchmark: EER + minDCF(0.01, 0.001) with dmha.scoring.metrics vs an sklearn roc_curve-based computation.

Both sides compute the same three numbers from the same scores (the sklearn side: roc_curve, EER by
interpolating the FNR/FPR crossing, minDCF over its points). Time is the best of --repeats runs
without tracing; peak memory is measured in a separate traced run (tracemalloc sees numpy buffers),
and is the peak of allocations made during the call (the input arrays are excluded).

    python bench/bench_metrics.py                 # 1M and 10M trials
    python bench/bench_metrics.py --sizes 1e6 --repeats 5
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc

import numpy as np
from sklearn.metrics import roc_curve

from dmha.scoring.metrics import compute_metrics


def sklearn_metrics(scores: np.ndarray, labels: np.ndarray) -> dict:
    """The reference computation: ROC from sklearn, the same EER/minDCF definitions on its points."""
    fpr, tpr, _ = roc_curve(labels, scores)
    fnr = 1.0 - tpr
    diff = fpr - fnr
    i = int(np.argmax(diff >= 0))
    a, b = diff[i - 1], diff[i]
    t = 0.0 if b == a else -a / (b - a)
    eer = fpr[i - 1] + t * (fpr[i] - fpr[i - 1])
    out = {"eer": 100.0 * eer}
    for p in (0.01, 0.001):
        dcf = np.minimum((p * fnr + (1 - p) * fpr).min(), min(p, 1 - p))   # + accept/reject-all points
        out[f"mindcf_{p:g}"] = float(dcf / min(p, 1 - p))
    return out


def _time(fn, scores, labels, repeats: int) -> tuple[float, dict]:
    best, result = float("inf"), {}
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        result = fn(scores, labels)
        best = min(best, time.perf_counter() - t0)
    return best, result


def _peak_mib(fn, scores, labels) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        fn(scores, labels)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 2**20


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1e6,1e7", help="comma-separated trial counts (default 1e6,1e7)")
    p.add_argument("--repeats", type=int, default=3, help="timing runs per size; the best is reported")
    p.add_argument("--p-target", type=float, default=0.01, help="fraction of target trials (default 0.01)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    rows = []
    for n in (int(float(s)) for s in args.sizes.split(",")):
        rng = np.random.default_rng(args.seed)
        labels = rng.random(n) < args.p_target
        # cosine-like scores rounded to 6 decimals, as in a score file: realistic ties
        scores = np.round(np.tanh(0.3 * rng.normal(size=n) + 0.6 * labels), 6)
        t_ours, ours = _time(compute_metrics, scores, labels, args.repeats)
        t_ref, ref = _time(sklearn_metrics, scores, labels, args.repeats)
        m_ours = _peak_mib(compute_metrics, scores, labels)
        m_ref = _peak_mib(sklearn_metrics, scores, labels)
        diff = max(abs(ours[k] - ref[k]) for k in ("eer", "mindcf_0.01", "mindcf_0.001"))
        print(f"n={n}: dmha {t_ours:.2f}s {m_ours:.0f} MiB | sklearn {t_ref:.2f}s {m_ref:.0f} MiB | "
              f"time ratio sklearn/dmha {t_ref / t_ours:.2f} | memory ratio {m_ref / m_ours:.2f} | "
              f"EER {ours['eer']:.4f}% max |diff| {diff:.1e}", flush=True)
        rows.append((n, t_ours, m_ours, t_ref, m_ref, diff))

    print("\n| trials | dmha time (s) | dmha peak (MiB) | sklearn time (s) | sklearn peak (MiB) "
          "| time ratio | memory ratio | max abs diff |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, t_o, m_o, t_r, m_r, d in rows:
        print(f"| {n:,} | {t_o:.2f} | {m_o:.0f} | {t_r:.2f} | {m_r:.0f} | {t_r / t_o:.2f} | {m_r / m_o:.2f} "
              f"| {d:.1e} |")


if __name__ == "__main__":
    main()
