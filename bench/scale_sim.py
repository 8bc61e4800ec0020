"""VoxCeleb2-dev-shaped scale simulator: full-size data dirs + feature archives, then stage 2 at full scale.

Writes under ``--out``:

* ``vox2_train/`` and ``vox2_val/``: utt2spk, spk2utt, utt2num_frames, feats.scp for 1,092,009 utterances
  of 5,994 speakers (VoxCeleb2 dev's counts), split as ``dmha.corpus.voxceleb_prep`` splits the real
  corpus: ``--val-speakers`` speakers held out (speaker-disjoint), ``--val-utts`` utterances each, and
  its trials (``make_trials``, 1:1, capped at 20,000).
* the features as ``--jobs`` Kaldi float32 arks, as stage 1 would lay them out (contiguous chunks of the
  sorted utterance list). About ``--dense-gb`` GB of them hold real (synthetic log-mel-like) data with
  their CMN side tables; the others are SPARSE files of the full size: every matrix header sits at its
  real offset, the data are holes. So feats.scp, ark names, offsets and sizes are those of the full
  corpus (~270 GB of float32) while the disk holds only the dense part. The validation set is dense.

Durations: VoxCeleb2 dev averages ~7.8 s (2,360 h / 1,092,009), no utterance under 4 s, a long tail.
Modelled as ``4 s + lognormal`` with the mean at 7.8 s (median ~6.5 s), capped at 60 s; utterances per
speaker are lognormal around the real mean of 182. A model of the shape, not the real list.

Then (``--stage2``) it times the real stage-2 CLI (``python -m dmha.bin.prepare_lists`` with the paper
config) under ``/usr/bin/time -v`` and prints wall time and peak memory against the issue's target
(< 2 min, < 2 GB).

    nice python bench/scale_sim.py --out /tmp/vox2sim                 # ~8 GB dense + lists + stage 2
    nice python bench/scale_sim.py --out /tmp/vox2sim --dense-gb 0.2 --utts 20000 --speakers 200   # tiny
"""

from __future__ import annotations

import argparse
import os
import re
import string
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

VOX2_UTTS, VOX2_SPEAKERS, VOX2_HOURS = 1_092_009, 5_994, 2_360
N_MELS, HOP_S = 80, 0.01


def vox2_durations(n: int, rng: np.random.Generator) -> np.ndarray:
    """Seconds per utterance: 4 s + lognormal(mu, 0.9) with the mean at VoxCeleb2 dev's ~7.8 s, <= 60 s."""
    sigma = 0.9
    mean_tail = VOX2_HOURS * 3600 / VOX2_UTTS - 4.0
    mu = np.log(mean_tail) - sigma**2 / 2
    return np.minimum(4.0 + rng.lognormal(mu, sigma, size=n), 60.0)


def frames_of(seconds: np.ndarray) -> np.ndarray:
    """Frames of the paper's features (25 ms window, 10 ms hop, no padding) for these durations."""
    samples = np.floor(seconds * 16000).astype(np.int64)
    return 1 + (samples - 400) // 160


def speaker_counts(n_utts: int, n_spk: int, rng: np.random.Generator) -> np.ndarray:
    """Utterances per speaker: 8 each plus a multinomial share of the rest (lognormal weights)."""
    w = rng.lognormal(0.0, 0.6, size=n_spk)
    return 8 + rng.multinomial(n_utts - 8 * n_spk, w / w.sum())


def utterance_ids(counts: np.ndarray, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """VoxCeleb2-style ids ``idNNNNN-<11-char video>-NNNNN`` (~6 utterances per video) and speakers."""
    alphabet = np.array(list(string.ascii_letters + string.digits + "_-"))
    utts, spks = [], []
    for s, c in enumerate(counts):
        spk = f"id{s + 10:05d}"
        n_vid = max(1, int(c) // 6)
        vids = ["".join(rng.choice(alphabet, 11)).replace("-", "x") for _ in range(n_vid)]
        for k in range(int(c)):
            utts.append(f"{spk}-{vids[k % n_vid]}-{k + 1:05d}")
            spks.append(spk)
    return utts, spks


def _write_lines(path: Path, lines) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(lines)


def _header(key: str, rows: int) -> bytes:
    return key.encode() + b" \0BFM \x04" + rows.to_bytes(4, "little", signed=True) + b"\x04" + \
        N_MELS.to_bytes(4, "little", signed=True)


def write_arks(utts: list[str], frames: np.ndarray, arkdir: Path, name: str, jobs: int, dense: set[int],
               pool: np.ndarray, rng: np.random.Generator) -> tuple[dict[str, str], int]:
    """Arks for ``utts`` (C-sorted) in ``jobs`` chunks; dense ones get data + CMN side tables.

    Returns (feats.scp entries, bytes of dense data written).
    """
    from dmha.features.cmn_table import write_table
    from dmha.features.fbank import utterance_mean

    arkdir.mkdir(parents=True, exist_ok=True)
    scp: dict[str, str] = {}
    written = 0
    bounds = np.linspace(0, len(utts), jobs + 1).astype(np.int64)
    for j in range(jobs):
        ark = arkdir / f"raw_fbank_{name}.{j + 1}.ark"
        is_dense = j in dense
        entries, means = [], {}
        with open(ark, "wb") as f:
            for k in range(bounds[j], bounds[j + 1]):
                utt, rows = utts[k], int(frames[k])
                head = _header(utt, rows)
                f.write(head)
                off = f.tell() - (len(head) - len(utt) - 1)
                scp[utt] = f"{ark}:{off}"
                if is_dense:
                    start = int(rng.integers(0, len(pool) - rows))
                    mat = pool[start:start + rows]
                    f.write(mat.tobytes())
                    means[utt] = utterance_mean(mat)
                    entries.append((utt, off))
                    written += mat.nbytes
                else:
                    f.seek(rows * N_MELS * 4, os.SEEK_CUR)
            f.truncate()
        if is_dense:
            write_table(ark, entries, means)
    return scp, written


def write_data_dir(d: Path, utt2spk: dict[str, str], frames: dict[str, int], scp: dict[str, str]) -> None:
    keys = sorted(utt2spk, key=lambda u: u.encode())
    _write_lines(d / "utt2spk", (f"{u} {utt2spk[u]}\n" for u in keys))
    _write_lines(d / "utt2num_frames", (f"{u} {frames[u]}\n" for u in keys))
    _write_lines(d / "wav.scp", (f"{u} /nonexistent/{u}.wav\n" for u in keys))
    spk2utt: dict[str, list[str]] = {}
    for u in keys:
        spk2utt.setdefault(utt2spk[u], []).append(u)
    _write_lines(d / "spk2utt", (f"{s} {' '.join(us)}\n" for s, us in sorted(spk2utt.items())))
    _write_lines(d / "feats.scp", (f"{u} {scp[u]}\n" for u in keys))


def simulate(a: argparse.Namespace) -> dict:
    from dmha.corpus.voxceleb import split_val_speakers
    from dmha.data.trials import make_trials, write_trials

    rng = np.random.default_rng(a.seed)
    out = Path(a.out)
    t0 = time.time()
    counts = speaker_counts(a.utts, a.speakers, rng)
    utts, spks = utterance_ids(counts, rng)
    secs = vox2_durations(len(utts), rng)
    frames = frames_of(secs)
    utt2spk = dict(zip(utts, spks))
    utt2frames = dict(zip(utts, (int(x) for x in frames)))
    train_spk, val_spk = split_val_speakers(set(spks), a.val_speakers, a.seed)
    val_set = set(val_spk)
    train_utts = sorted((u for u in utts if utt2spk[u] not in val_set), key=lambda u: u.encode())
    by_spk: dict[str, list[str]] = {}
    for u in utts:
        if utt2spk[u] in val_set:
            by_spk.setdefault(utt2spk[u], []).append(u)
    val_utts = sorted((u for s in sorted(by_spk) for u in
                       list(rng.choice(by_spk[s], min(a.val_utts, len(by_spk[s])), replace=False))),
                      key=lambda u: u.encode())
    t_lists = time.time() - t0

    pool = (rng.normal(0, 2.0, size=(200_000, N_MELS)) + rng.normal(9.0, 2.0, size=N_MELS)).astype(np.float32)
    train_frames = np.array([utt2frames[u] for u in train_utts])
    bytes_per_job = train_frames.sum() * N_MELS * 4 / a.jobs
    n_dense = min(a.jobs, int(np.ceil(a.dense_gb * 1e9 / bytes_per_job))) if a.dense_gb > 0 else 0
    dense = set(np.linspace(0, a.jobs - 1, n_dense).round().astype(int).tolist()) if n_dense else set()
    t1 = time.time()
    train_scp, dense_bytes = write_arks(train_utts, train_frames, out / "fbank", "vox2_train", a.jobs, dense,
                                        pool, rng)
    val_scp, val_bytes = write_arks(val_utts, np.array([utt2frames[u] for u in val_utts]), out / "fbank",
                                    "vox2_val", 1, {0}, pool, rng)
    t_arks = time.time() - t1
    write_data_dir(out / "vox2_train", {u: utt2spk[u] for u in train_utts}, utt2frames, train_scp)
    write_data_dir(out / "vox2_val", {u: utt2spk[u] for u in val_utts}, utt2frames, val_scp)
    trials = make_trials({u: utt2spk[u] for u in val_utts}, nontarget_ratio=1.0, max_trials=20000,
                         seed=a.seed)
    write_trials(out / "vox2_val" / "trials", trials)
    full_bytes = int(train_frames.sum()) * (N_MELS * 4 + 15) + sum(len(u) + 1 for u in train_utts)
    return {
        "utts": len(utts), "speakers": len(counts), "train_utts": len(train_utts),
        "train_speakers": len(train_spk), "val_utts": len(val_utts), "val_speakers": len(val_spk),
        "hours": float(secs.sum() / 3600), "mean_s": float(secs.mean()), "median_s": float(np.median(secs)),
        "min_s": float(secs.min()), "max_s": float(secs.max()),
        "jobs": a.jobs, "dense_jobs": len(dense), "dense_gb": (dense_bytes + val_bytes) / 1e9,
        "full_gb": full_bytes / 1e9, "list_s": t_lists, "ark_s": t_arks,
    }


def time_stage2(out: Path, config: str) -> dict:
    """Wall time and peak RSS of the real stage-2 CLI on the simulated data dirs (/usr/bin/time -v)."""
    lists = out / "vox2_train" / "lists"
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "dmha.bin.prepare_lists", "--config", config,
           str(out / "vox2_train"), str(out / "vox2_val"), str(lists)]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"prepare_lists failed:\n{proc.stderr[-3000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", proc.stderr)
    h, m, s = (float(x) if x else 0.0 for x in wall.groups())
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    cpu = sum(float(re.search(rf"{k} time \(seconds\): ([\d.]+)", proc.stderr).group(1))
              for k in ("User", "System"))
    summary = dict(line.split() for line in (lists / "summary").read_text().splitlines())
    return {"wall_s": h * 3600 + m * 60 + s, "cpu_s": cpu, "peak_gb": rss_kb * 1024 / 1e9, "summary": summary}


def print_simulation(r: dict) -> None:
    print(f"## Scale simulator ({time.strftime('%Y-%m-%d %H:%M')}, load {os.getloadavg()[0]:.2f})\n")
    print("| quantity | simulated | VoxCeleb2 dev |\n|---|---|---|")
    print(f"| utterances | {r['utts']:,} | {VOX2_UTTS:,} |")
    print(f"| speakers | {r['speakers']:,} | {VOX2_SPEAKERS:,} |")
    print(f"| hours | {r['hours']:,.0f} | ~{VOX2_HOURS:,} |")
    print(f"| duration mean / median / min / max s | {r['mean_s']:.2f} / {r['median_s']:.2f} / "
          f"{r['min_s']:.2f} / {r['max_s']:.1f} | ~7.8 / - / ~4 / - |")
    print(f"| training: utterances / speakers | {r['train_utts']:,} / {r['train_speakers']:,} | |")
    print(f"| validation (held-out speakers): utterances / speakers | {r['val_utts']:,} / "
          f"{r['val_speakers']} | |")
    print(f"| float32 arks, full size (GB) | {r['full_gb']:.1f} (apparent; {r['jobs']} arks) | |")
    print(f"| of which dense on disk (GB) | {r['dense_gb']:.2f} ({r['dense_jobs']} arks + validation) | |")
    print(f"\nlists {r['list_s']:.1f} s, arks {r['ark_s']:.1f} s\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output directory (sparse arks: ~270 GB apparent size)")
    p.add_argument("--utts", type=int, default=VOX2_UTTS)
    p.add_argument("--speakers", type=int, default=VOX2_SPEAKERS)
    p.add_argument("--val-speakers", type=int, default=40, help="held-out speakers (as local/prepare)")
    p.add_argument("--val-utts", type=int, default=25, help="validation utterances per held-out speaker")
    p.add_argument("--jobs", type=int, default=1000, help="feature arks (stage-1 jobs)")
    p.add_argument("--dense-gb", type=float, default=8.0, help="GB of arks to fill with data (rest sparse)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stage2", choices=["true", "false"], default="true", help="time stage 2 afterwards")
    p.add_argument("--reuse", choices=["true", "false"], default="false",
                   help="keep an existing simulation in --out and only time stage 2")
    p.add_argument("--config", default=str(REPO / "egs/voxceleb/conf/dmha_k8.yaml"))
    a = p.parse_args()
    import torch

    torch.set_num_threads(1)  # as feature jobs and DataLoader workers (the CMN means are computed here)
    if a.reuse == "true" and (Path(a.out) / "vox2_val" / "trials").is_file():
        print(f"## Stage 2 on the existing simulation in {a.out} (load {os.getloadavg()[0]:.2f})\n")
    else:
        print_simulation(simulate(a))
    if a.stage2 == "true":
        s = time_stage2(Path(a.out), a.config)
        ok = s["wall_s"] < 120 and s["peak_gb"] < 2.0
        print("| stage 2 (prepare_lists) | wall s | CPU s (user+sys) | peak RSS GB | target | met |\n"
              "|---|---|---|---|---|---|")
        print(f"| {s['summary']['train_utts_kept']} training utterances, {s['summary']['val_trials']} trials "
              f"| {s['wall_s']:.1f} | {s['cpu_s']:.1f} | {s['peak_gb']:.2f} | < 120 s, < 2 GB | "
              f"{'yes' if ok else 'NO'} |")
        print(f"\nload average after: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs, shared)")


if __name__ == "__main__":
    main()
