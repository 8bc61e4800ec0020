"""Benchmark: dmha.scoring.cosine.score_trials at VoxCeleb1-E scale vs a straightforward per-trial baseline.

Defaults mimic Vox1-E with the paper's embedding size: 145k utterances, 580k trials, 400-d, and a
cohort of 5,994 per-speaker means (VoxCeleb2 dev) for S-norm / AS-norm (top 300), in-memory random
embeddings.

Baseline (what a first implementation does, e.g. a Kaldi-style scoring loop): for each trial,
L2-normalise both embeddings and take their dot product; with S-norm/AS-norm, score both sides
against the whole cohort for that trial (and sort for the top N). It is timed on the first
--baseline-trials trials (default 20,000 for none, 1,000 with normalisation) and compared per
trial; its scores must equal ours on those trials (max |diff| printed). Peak memory: the peak of
allocations during the call (tracemalloc, which numpy reports to), in a separate traced run.

    python bench/bench_scoring.py
    python bench/bench_scoring.py --utts 20000 --trials 100000 --norms none,asnorm
"""

from __future__ import annotations

import argparse
import gc
import os
import time
import tracemalloc

import numpy as np

from dmha.scoring.cosine import score_trials


def baseline(enroll: list[str], test: list[str], emb: dict, norm: str, cohort: np.ndarray | None,
             top_n: int) -> np.ndarray:
    """Per-trial loop: normalise, dot; per-trial cohort statistics for s-norm / as-norm."""
    out = np.empty(len(enroll))
    for i, (e, t) in enumerate(zip(enroll, test)):
        ev = emb[e] / np.linalg.norm(emb[e])
        tv = emb[t] / np.linalg.norm(emb[t])
        s = float(ev @ tv)
        if norm != "none":
            ce, ct = cohort @ ev, cohort @ tv
            if norm == "asnorm":
                ce, ct = np.sort(ce)[-top_n:], np.sort(ct)[-top_n:]
            s = 0.5 * ((s - ce.mean()) / ce.std() + (s - ct.mean()) / ct.std())
        out[i] = s
    return out


def _peak_mib(fn) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--utts", type=int, default=145_000)
    p.add_argument("--trials", type=int, default=580_000)
    p.add_argument("--dim", type=int, default=400)
    p.add_argument("--cohort", type=int, default=5994)
    p.add_argument("--top-n", type=int, default=300)
    p.add_argument("--norms", default="none,snorm,asnorm")
    p.add_argument("--baseline-trials", type=int, default=0,
                   help="trials the baseline scores (default 20000 for none, 1000 with normalisation)")
    args = p.parse_args()

    rng = np.random.default_rng(0)
    mat = rng.normal(size=(args.utts, args.dim)).astype(np.float32)
    emb = {f"utt{i:07d}": mat[i] for i in range(args.utts)}
    keys = list(emb)
    enroll = [keys[i] for i in rng.integers(0, args.utts, args.trials)]
    test = [keys[i] for i in rng.integers(0, args.utts, args.trials)]
    cohort_mat = rng.normal(size=(args.cohort, args.dim)).astype(np.float32)
    cohort = {f"spk{i:05d}": v for i, v in enumerate(cohort_mat)}
    cohort_norm = (cohort_mat / np.linalg.norm(cohort_mat, axis=1, keepdims=True)).astype(np.float64)
    print(f"# Scoring benchmark (bench/bench_scoring.py)\n\n{args.trials:,} trials, "
          f"{args.utts:,} utterances, dim {args.dim}, cohort {args.cohort:,} (top {args.top_n} for asnorm); "
          f"{os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}\n")
    print("| norm | ours s | ours peak MiB | baseline trials | baseline s (scaled to all) | "
          "baseline peak MiB | speed-up | max abs diff |", flush=True)
    print("|---|---:|---:|---:|---:|---:|---:|---:|", flush=True)
    for norm in args.norms.split(","):
        def ours(norm=norm):
            return score_trials(enroll, test, emb, norm=norm, cohort=cohort, top_n=args.top_n)

        t0 = time.perf_counter()
        res = ours()
        t_ours = time.perf_counter() - t0
        peak_ours = _peak_mib(ours)
        n = args.baseline_trials or (20_000 if norm == "none" else 1_000)
        n = min(n, args.trials)

        def base(n=n, norm=norm):
            return baseline(enroll[:n], test[:n], emb, norm, cohort_norm, args.top_n)

        t0 = time.perf_counter()
        ref = base()
        t_base = (time.perf_counter() - t0) * args.trials / n
        peak_base = _peak_mib(base)
        diff = float(np.max(np.abs(res.scores[:n] - ref)))
        print(f"| {norm} | {t_ours:.2f} | {peak_ours:.0f} | {n:,} | {t_base:.1f} | {peak_base:.1f} | "
              f"{t_base / t_ours:.0f}x | {diff:.1e} |", flush=True)
    print(f"\nload average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
