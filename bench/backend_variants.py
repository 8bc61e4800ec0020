"""Which scoring back-end? EER of trained runs' embeddings under several back-ends, fitted on each run's
training embeddings (never on a test set), mean and sample sd over runs.

Rows: plain cosine; mean subtraction; LDA (dmha.scoring.backend: Ledoit-Wolf shrinkage or none, several
output dims); and the two-covariance PLDA on the full LDA output (back-end kind ``plda``, Kaldi's next
step). Every run needs ``embeddings/<train>`` and ``embeddings/<set>`` (stage 4 with
``--score-backend``, or bench/quality.sh).

    python bench/backend_variants.py --data-root data --sets mini_test,real_test \\
        exp/quality/dmha_s0 exp/quality/dmha_s1 exp/quality/dmha_s2
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dmha.scoring.backend import Backend, fit_backend, pair_scores  # noqa: E402


def _load(emb_dir: Path, keys: list[str] | None = None) -> tuple[list[str], np.ndarray]:
    import kaldiio

    table = kaldiio.load_scp(str(emb_dir / "xvector.scp"))
    keys = keys if keys is not None else list(table)
    return keys, np.stack([np.asarray(table[k], dtype=np.float64) for k in keys])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default="data")
    p.add_argument("--train-set", default="mini_train")
    p.add_argument("--sets", default="mini_test,real_test")
    p.add_argument("--dims", default="16,32,0", help="LDA dims to try (0: speakers - 1)")
    p.add_argument("exps", nargs="+", help="trained exp dirs with embeddings/<train-set> and <set>")
    args = p.parse_args(argv)
    from dmha.common.fileio import read_kv
    from dmha.data.trials import read_trials
    from dmha.scoring.metrics import compute_eer

    data = Path(args.data_root)
    utt2spk = read_kv(data / args.train_set / "utt2spk")
    sets = args.sets.split(",")
    eers: dict[tuple[str, str], list[float]] = {}
    order: list[str] = []
    for exp in map(Path, args.exps):
        keys, train = _load(exp / "embeddings" / args.train_set, sorted(utt2spk))
        spk = np.array([utt2spk[k] for k in keys])
        n_spk = len(set(spk))
        variants: dict[str, Backend | None] = {"cosine": None, "mean": fit_backend(train, spk, kind="mean")}
        for dim in (int(d) for d in args.dims.split(",")):
            dim = dim or n_spk - 1
            for shrink in ("auto", "none"):
                variants[f"lda{dim} shrinkage {shrink}"] = fit_backend(train, spk, "lda", dim, shrink)
        variants[f"plda (lda{n_spk - 1} shrinkage auto)"] = fit_backend(train, spk, "plda", n_spk - 1)
        for test in sets:
            trials = read_trials(data / test / "trials")
            tkeys, emb = _load(exp / "embeddings" / test)
            index = {k: i for i, k in enumerate(tkeys)}
            a = np.array([index[u] for u in trials.enroll])
            b = np.array([index[u] for u in trials.test])
            for name, backend in variants.items():
                x = backend.apply(emb) if backend else emb / np.linalg.norm(emb, axis=1, keepdims=True)
                eers.setdefault((name, test), []).append(
                    100 * compute_eer(pair_scores(x[a], x[b], backend), trials.labels)[0])
                if name not in order:
                    order.append(name)
    print("| back-end | " + " | ".join(f"{s} EER %" for s in sets) + " |")
    print("|---|" + "---|" * len(sets))
    for name in order:
        cells = []
        for s in sets:
            v = eers[(name, s)]
            sd = f" ± {statistics.stdev(v):.2f}" if len(v) > 1 else ""
            cells.append(f"{statistics.fmean(v):.2f}{sd} ({' '.join(f'{x:.2f}' for x in v)})")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"\nruns: {len(args.exps)}; mean ± sample sd (per-run values)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
