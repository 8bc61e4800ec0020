"""Synthetic training corpora for the training tests: features written with kaldiio, no audio needed.

Each "speaker" owns a few random spectral templates ("sounds"); an utterance is a random sequence of
short segments of that speaker's sounds plus white noise. Per-utterance CMN removes any constant
spectral offset, so the speaker information sits in the contrast between the sounds, which a tiny model
learns within a few steps (the loss falls).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import kaldiio
import numpy as np
import yaml

N_MELS = 20
N_SOUNDS = 3


def write_data_dir(path: Path, n_spk: int, n_utt: int, frames: tuple[int, int], seed: int,
                   spk_offset: int = 0, templates: np.ndarray | None = None) -> np.ndarray:
    """Write utt2spk, spk2utt, feats.scp (+ark), utt2num_frames; return the speaker templates."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    if templates is None:
        templates = rng.normal(0, 2.0, size=(n_spk, N_SOUNDS, N_MELS)).astype(np.float32)
    utt2spk, lengths = {}, {}
    with kaldiio.WriteHelper(f"ark,scp:{path}/feats.ark,{path}/feats.scp") as writer:
        for s in range(n_spk):
            spk = f"spk{s + spk_offset:03d}"
            for u in range(n_utt):
                utt = f"{spk}-utt{u:03d}"
                t = int(rng.integers(frames[0], frames[1] + 1))
                seg = rng.integers(0, N_SOUNDS, size=t // 4 + 1).repeat(4)[:t]  # 4-frame segments
                mat = 5.0 + templates[s][seg] + rng.normal(0, 1.0, size=(t, N_MELS))
                writer(utt, mat.astype(np.float32))
                utt2spk[utt] = spk
                lengths[utt] = t
    (path / "utt2spk").write_text("".join(f"{u} {s}\n" for u, s in sorted(utt2spk.items())))
    spk2utt: dict[str, list[str]] = {}
    for u, s in sorted(utt2spk.items()):
        spk2utt.setdefault(s, []).append(u)
    (path / "spk2utt").write_text("".join(f"{s} {' '.join(us)}\n" for s, us in sorted(spk2utt.items())))
    (path / "utt2num_frames").write_text("".join(f"{u} {n}\n" for u, n in sorted(lengths.items())))
    return templates


def write_trials_all_pairs(data_dir: Path) -> None:
    """Every unordered pair of the data dir's utterances as a Kaldi trial list."""
    utts = [line.split() for line in (data_dir / "utt2spk").read_text().splitlines()]
    lines = []
    for i in range(len(utts)):
        for j in range(i + 1, len(utts)):
            lab = "target" if utts[i][1] == utts[j][1] else "nontarget"
            lines.append(f"{utts[i][0]} {utts[j][0]} {lab}\n")
    (data_dir / "trials").write_text("".join(lines))


def tiny_config(path: Path, **train) -> Path:
    """A config for a tiny, fast model on N_MELS-dim features; ``train`` entries override defaults."""
    t = {"seed": 3, "crop_frames": 40, "min_frames": 20, "batch_size": 16, "grad_accum": 2, "lr": 3e-3,
         "weight_decay": 1e-4, "max_epochs": 3, "ckpt_every_steps": 2, "log_every_steps": 1,
         "num_threads": 1, "val_every_epochs": 1}
    t.update(train)
    cfg = {"features": {"n_mels": N_MELS, "norm": "cmn"},
           "model": {"frontend": "vgg", "channels": [4, 8, 8, 8], "in_dim": N_MELS, "pooling": "dmha",
                     "heads": 2, "embed_dim": 32, "head_dropout": 0.3},
           "loss": {"type": "amsoftmax", "scale": 30.0, "margin": 0.2},
           "train": t}
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def make_corpus(root: Path, n_spk: int = 4, n_utt: int = 12, val_spk: int = 3) -> tuple[Path, Path]:
    """Train and validation data dirs (validation: unseen speakers, all-pairs trials)."""
    train, val = root / "train", root / "val"
    write_data_dir(train, n_spk, n_utt, (30, 80), seed=1)
    write_data_dir(val, val_spk, 4, (40, 90), seed=2, spk_offset=100)
    write_trials_all_pairs(val)
    return train, val


REPO = Path(__file__).resolve().parents[1]


def subprocess_env() -> dict:
    """Environment for training subprocesses: the repo importable, one OpenMP thread (2 shared cores)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["OMP_NUM_THREADS"] = "1"
    return env


def prepare_lists(tmp_path: Path, cmn_tables: bool = False, **train) -> tuple[Path, Path]:
    """A tiny corpus + config under ``tmp_path`` and its stage-2 lists; returns (config, lists dir).

    ``cmn_tables``: also write the CMN side tables of the training arks (partial reads possible)."""
    train_dir, val_dir = make_corpus(tmp_path)
    if cmn_tables:
        subprocess.run([sys.executable, "-m", "dmha.bin.cmn_stats", str(train_dir / "feats.scp")], check=True,
                       env=subprocess_env(), capture_output=True)
    conf = tiny_config(tmp_path / "conf.yaml", **train)
    lists = tmp_path / "lists"
    subprocess.run([sys.executable, "-m", "dmha.bin.prepare_lists", "--config", str(conf), str(train_dir),
                    str(val_dir), str(lists)], check=True, env=subprocess_env(), capture_output=True)
    return conf, lists
