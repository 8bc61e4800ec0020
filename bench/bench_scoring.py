"""Benchmark: dmha.scoring.score_trials at VoxCeleb1-E scale (in-memory random embeddings).

Defaults mimic Vox1-E with the paper's embedding size: 145k utterances, 580k trials, 400-d, and a
cohort of 5,994 per-speaker means (VoxCeleb2 dev) for S-norm / AS-norm (top 300).

    python bench/bench_scoring.py
    python bench/bench_scoring.py --utts 20000 --trials 100000 --norms none,asnorm
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from dmha.scoring import score_trials


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--utts", type=int, default=145_000)
    p.add_argument("--trials", type=int, default=580_000)
    p.add_argument("--dim", type=int, default=400)
    p.add_argument("--cohort", type=int, default=5994)
    p.add_argument("--top-n", type=int, default=300)
    p.add_argument("--norms", default="none,snorm,asnorm")
    args = p.parse_args()

    rng = np.random.default_rng(0)
    mat = rng.normal(size=(args.utts, args.dim)).astype(np.float32)
    emb = {f"utt{i:07d}": mat[i] for i in range(args.utts)}
    keys = list(emb)
    enroll = [keys[i] for i in rng.integers(0, args.utts, args.trials)]
    test = [keys[i] for i in rng.integers(0, args.utts, args.trials)]
    cohort_mat = rng.normal(size=(args.cohort, args.dim)).astype(np.float32)
    cohort = {f"spk{i:05d}": v for i, v in enumerate(cohort_mat)}
    print(f"{args.trials:,} trials, {args.utts:,} utterances, dim {args.dim}, cohort {args.cohort:,}")
    print("| norm | time (s) |\n|---|---:|")
    for norm in args.norms.split(","):
        t0 = time.perf_counter()
        score_trials(enroll, test, emb, norm=norm, cohort=cohort, top_n=args.top_n)
        print(f"| {norm} | {time.perf_counter() - t0:.1f} |", flush=True)


if __name__ == "__main__":
    main()
