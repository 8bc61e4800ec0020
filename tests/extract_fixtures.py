"""Tiny experiment dirs and synthetic audio/feature data dirs for the extraction and API tests.

The exp dir is written with the training code's own helpers (``dmha.config.load_config/save_config``,
``dmha.training.checkpoint.save_checkpoint``) and the same best-model entries ``dmha.training.loop``
saves, so loading it exercises the real format; test_extract also loads a best.pt produced by a real
(1-epoch) training.
"""

from __future__ import annotations

from pathlib import Path

import kaldiio
import numpy as np
import soundfile as sf
import torch
import yaml

from dmha.config import load_config, save_config
from dmha.models import build_model
from dmha.training.checkpoint import save_checkpoint

TINY_MODEL = {"frontend": "vgg", "channels": [4, 8, 8, 16], "in_dim": 80, "pooling": "dmha", "heads": 2,
              "embed_dim": 400}


def make_tiny_exp(exp: Path, n_mels: int = 80, seed: int = 0, step: int = 7, **overrides: object) -> Path:
    """An exp dir (config.yaml, best.pt, spk2int) holding a tiny random model with non-trivial BN stats;
    ``overrides`` replace keys of the model section (e.g. pooling="stats")."""
    exp.mkdir(parents=True, exist_ok=True)
    raw = exp / "raw_config.yaml"
    model_cfg = dict(TINY_MODEL, in_dim=n_mels, **overrides)
    raw.write_text(yaml.safe_dump({"features": {"n_mels": n_mels}, "model": model_cfg,
                                   "train": {"seed": seed, "val_max_frames": 3000, "val_batch_size": 8}}))
    cfg = load_config(raw)
    save_config(cfg, exp / "config.yaml")
    raw.unlink()
    (exp / "spk2int").write_text("".join(f"spk{i} {i}\n" for i in range(5)))
    torch.manual_seed(seed)
    model = build_model(cfg["model"], 5)
    # Calibrate the BatchNorm statistics on some CMN'd random features (as training would), so the
    # embedding is standardised and varies with the input instead of being dominated by BN biases.
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.momentum = None  # cumulative average
    with torch.no_grad():
        for _ in range(4):
            x = torch.randn(16, 60, n_mels, generator=gen) * torch.rand(16, 1, n_mels, generator=gen) * 3
            model.embed(x - x.mean(1, keepdim=True))
    model.eval()
    save_checkpoint({"model": model.state_dict(), "epoch": 1, "step": step, "val_eer": 12.5,
                     "embed_dim": int(model.embed_dim)}, exp / "best.pt")
    return exp


def synth_wave(rng: np.random.Generator, seconds: float, sr: int, f0: float) -> np.ndarray:
    """A harmonic tone with vibrato and noise, in [-1, 1] (speaker-ish: f0 sets the 'voice')."""
    t = np.arange(int(seconds * sr)) / sr
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.05 * np.sin(2 * np.pi * 3 * t))) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 6))
    x = x * (0.5 + 0.5 * np.abs(np.sin(2 * np.pi * 1.3 * t))) + 0.05 * rng.standard_normal(len(t))
    return (0.3 * x / np.max(np.abs(x))).astype(np.float32)


def make_wav_data_dir(path: Path, n_spk: int = 3, n_utt: int = 3, seed: int = 0,
                      lengths: tuple[float, float] = (0.4, 2.5), rates: tuple[int, ...] = (16000,)) -> Path:
    """A Kaldi data dir of synthetic int16 wavs (wav.scp, utt2spk, spk2utt); rates cycle over ``rates``."""
    rng = np.random.default_rng(seed)
    wav_dir = path / "wav"
    wav_dir.mkdir(parents=True, exist_ok=True)
    utt2spk, wav_scp = {}, {}
    k = 0
    for s in range(n_spk):
        spk = f"spk{s}"
        for u in range(n_utt):
            utt = f"{spk}-u{u}"
            sr = rates[k % len(rates)]
            k += 1
            wave = synth_wave(rng, float(rng.uniform(*lengths)), sr, 90.0 + 40.0 * s)
            f = wav_dir / f"{utt}.wav"
            sf.write(f, wave, sr, subtype="PCM_16")
            utt2spk[utt], wav_scp[utt] = spk, str(f)
    _write_lists(path, utt2spk, wav_scp=wav_scp)
    return path


def make_feats_data_dir(path: Path, lengths: list[int], n_mels: int = 80, seed: int = 0,
                        utts_per_spk: int = 3) -> Path:
    """A data dir with raw log-mel-like features only (feats.scp, utt2num_frames) of given lengths."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    utt2spk, n_frames = {}, {}
    with kaldiio.WriteHelper(f"ark,scp:{path}/feats.ark,{path}/feats.scp") as w:
        for i, t in enumerate(lengths):
            spk = f"spk{i // utts_per_spk:02d}"
            utt = f"{spk}-u{i:03d}"
            base = rng.normal(8.0, 1.0, size=n_mels)
            w(utt, (base + rng.normal(0, 1.0, size=(t, n_mels))).astype(np.float32))
            utt2spk[utt], n_frames[utt] = spk, t
    _write_lists(path, utt2spk, utt2num_frames=n_frames)
    return path


def _write_lists(path: Path, utt2spk: dict, **extra: dict) -> None:
    keys = sorted(utt2spk, key=lambda k: k.encode())
    (path / "utt2spk").write_text("".join(f"{u} {utt2spk[u]}\n" for u in keys))
    spk2utt: dict[str, list[str]] = {}
    for u in keys:
        spk2utt.setdefault(utt2spk[u], []).append(u)
    (path / "spk2utt").write_text("".join(f"{s} {' '.join(us)}\n" for s, us in sorted(spk2utt.items())))
    for name, table in extra.items():
        (path / name.replace("_scp", ".scp")).write_text("".join(f"{u} {table[u]}\n" for u in keys))


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return np.sum(a * b, axis=-1)
