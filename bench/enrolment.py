"""How much do several enrolment recordings help? EER of trained runs when each test speaker is enrolled
with 1, 3 or 5 of their utterances (one model: ``steps/score.sh --enroll``), against the same held-out test
utterances of every speaker, mean and sample sd over runs.

Per test set and run: each speaker's utterances are shuffled (``--seed``); the first ``max(--counts)`` are
the enrolment pool (a model of n uses the first n), the rest are test utterances; trials are every model
against every test utterance. Scorers: plain cosine (model = mean unit embedding), the run's back-end
(``<exp>/backend``, e.g. PLDA scored by the count), and for a PLDA back-end also its model scored as if it
were one utterance (what a by-count-unaware scorer would do), to show what the count is worth.

    python bench/enrolment.py --data-root data --sets mini_test,real_test \\
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


def _split(utt2spk: dict[str, str], n_enrol: int, seed: int) -> tuple[dict[str, list[str]], list[str]]:
    """Per speaker: an enrolment pool of ``n_enrol`` utterances and the rest as tests (speakers with too
    few utterances for both are left out)."""
    rng = np.random.default_rng(seed)
    by_spk: dict[str, list[str]] = {}
    for utt, spk in sorted(utt2spk.items()):
        by_spk.setdefault(spk, []).append(utt)
    pools, tests = {}, []
    for spk, utts in sorted(by_spk.items()):
        if len(utts) <= n_enrol:
            continue
        order = [utts[i] for i in rng.permutation(len(utts))]
        pools[spk] = order[:n_enrol]
        tests += order[n_enrol:]
    return pools, tests


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default="data")
    p.add_argument("--sets", default="mini_test,real_test")
    p.add_argument("--counts", default="1,3,5", help="enrolment utterances per model (default 1,3,5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the enrolment/test split (default 0)")
    p.add_argument("exps", nargs="+", help="trained exp dirs with embeddings/<set> (and backend/)")
    args = p.parse_args(argv)
    from dmha.common.fileio import read_kv
    from dmha.scoring.backend import enrolment_models, pair_scores, read_backend
    from dmha.scoring.cosine import normalized_matrix, open_embeddings, score_trials
    from dmha.scoring.metrics import compute_eer

    counts = [int(c) for c in args.counts.split(",")]
    eers: dict[tuple[str, int, str], list[float]] = {}
    n_trials: dict[tuple[str, int], int] = {}
    for exp in map(Path, args.exps):
        backend = read_backend(exp / "backend") if (exp / "backend" / "backend.yaml").is_file() else None
        for test_set in args.sets.split(","):
            utt2spk = read_kv(Path(args.data_root) / test_set / "utt2spk")
            pools, tests = _split(utt2spk, max(counts), args.seed)
            emb_dir = exp / "embeddings" / test_set
            models = sorted(pools)
            enroll = [m for m in models for _ in tests]
            test = [t for _ in models for t in tests]
            labels = np.array([m == utt2spk[t] for m, t in zip(enroll, test)])
            for n in counts:
                enroll_models = {m: pools[m][:n] for m in models}
                n_trials[(test_set, n)] = len(enroll)
                scorers = {"cosine": None}
                if backend is not None:
                    scorers[f"back-end {backend.kind}"] = backend
                for name, b in scorers.items():
                    s = score_trials(enroll, test, emb_dir, backend=b, enroll_models=enroll_models).scores
                    eers.setdefault((test_set, n, name), []).append(100 * compute_eer(s, labels)[0])
                if backend is not None and backend.plda is not None and n > 1:
                    table = open_embeddings(emb_dir)
                    utts = [u for m in models for u in pools[m][:n]]
                    mapped = backend.apply(normalized_matrix(table, utts))
                    model_rows, _ = enrolment_models(mapped, [range(i * n, (i + 1) * n)
                                                              for i in range(len(models))], backend)
                    tmat = backend.apply(normalized_matrix(table, tests))
                    s = pair_scores(np.repeat(model_rows, len(tests), 0), np.tile(tmat, (len(models), 1)),
                                    backend)  # no counts: the model scored as one utterance
                    key = (test_set, n, "back-end plda, model as one utterance")
                    eers.setdefault(key, []).append(100 * compute_eer(s, labels)[0])

    print(f"runs: {' '.join(map(str, args.exps))}; split seed {args.seed}; enrolment pool {max(counts)} "
          "utterances per speaker, the rest are test utterances (the same for every count)\n")
    sets = args.sets.split(",")
    print("| enrolment utterances | scoring | " + " | ".join(f"{s} EER %" for s in sets) + " |")
    print("|---|---|" + "---|" * len(sets))
    names = list(dict.fromkeys(k[2] for k in eers))
    for n in counts:
        for name in names:
            cells = []
            for test_set in sets:
                v = eers.get((test_set, n, name))
                if not v:
                    cells.append("–")
                    continue
                sd = f" ± {statistics.stdev(v):.2f}" if len(v) > 1 else ""
                cells.append(f"{statistics.mean(v):.2f}{sd}")
            if any(c != "–" for c in cells):
                print(f"| {n} | {name} | " + " | ".join(cells) + " |")
    print("\ntrials: " + ", ".join(f"{s} {n_trials[(s, counts[0])]:,}" for s in sets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
