"""Benchmark: stage-1 feature extraction end to end vs the librosa reference pipeline's compute alone.

Single-threaded ("per core": torch and the BLAS limited to 1 thread). Rows, all on the same audio:

* dmha end to end — what one compute_fbank job does per utterance: read the wav (dmha.features.audio),
  compute (dmha.features.fbank), write the matrix to an ark/scp (kaldiio.WriteHelper);
* dmha compute only — dmha.features.fbank.compute_fbank on in-memory samples;
* librosa compute only — the reference of SPEC §1 (pre-emphasis, librosa.stft, melspectrogram,
  log) on in-memory samples: no reading, no writing;
* optionally (--cli) the real job: ``python -m dmha.bin.compute_fbank`` as a subprocess, including the
  interpreter start and imports.

x real time = seconds of audio per second of one core; ratio = row's x real time / librosa's. Each time
is the best of --repeats runs, the pipelines taking turns (on a shared machine best-of is the least
noisy estimate, and taking turns exposes every pipeline to the same load).

    python bench/bench_features.py                       # 60 utterances of 8 s (8 min of audio)
    python bench/bench_features.py --utts 100 --seconds 4 --repeats 5 --cli
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import kaldiio  # noqa: E402
import librosa  # noqa: E402
import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402

from dmha.features.audio import load_audio  # noqa: E402
from dmha.features.fbank import compute_fbank  # noqa: E402

SR = 16000


def librosa_compute(x: np.ndarray) -> np.ndarray:
    """SPEC §1 with librosa (float32, as a numpy implementation would run it)."""
    z = x * np.float32(32768.0)
    y = np.concatenate([z[:1] * np.float32(0.03), z[1:] - np.float32(0.97) * z[:-1]])
    mag = np.abs(librosa.stft(y, n_fft=512, hop_length=160, win_length=400, window="hamming", center=False))
    mel = librosa.feature.melspectrogram(S=mag, sr=SR, n_mels=80, fmin=0, fmax=SR / 2, norm=None, htk=False)
    return np.log(np.maximum(1.0, mel)).T


def make_audio(d: Path, n: int, seconds: float) -> tuple[list[Path], list[np.ndarray]]:
    rng = np.random.default_rng(0)
    paths, waves = [], []
    for i in range(n):
        m = int(seconds * SR) + int(rng.integers(0, SR // 2))
        t = np.arange(m) / SR
        f0 = rng.uniform(90, 250)
        x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 20)) * 0.1
        x = x + 0.01 * rng.standard_normal(m)
        p = d / f"u{i:04d}.wav"
        sf.write(p, x.astype(np.float32), SR, subtype="PCM_16")
        paths.append(p)
        waves.append(sf.read(p, dtype="float32")[0])
    return paths, waves


def best_of_interleaved(repeats: int, fns: list) -> list[float]:
    """Best time of each function; the functions take turns so load changes hit all of them alike."""
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--utts", type=int, default=60)
    ap.add_argument("--seconds", type=float, default=8.0, help="approximate length of each utterance")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cli", action="store_true", help="also time the compute_fbank job as a subprocess")
    a = ap.parse_args()
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths, waves = make_audio(tmp, a.utts, a.seconds)
        audio_s = sum(len(w) for w in waves) / SR
        tensors = [torch.from_numpy(w) for w in waves]

        def end_to_end() -> None:
            with kaldiio.WriteHelper(f"ark,scp:{tmp}/e2e.ark,{tmp}/e2e.scp") as writer:
                for i, p in enumerate(paths):
                    wave, _ = load_audio(str(p), SR)
                    writer(f"u{i:04d}", compute_fbank(torch.from_numpy(wave)).numpy())

        def ours_compute() -> None:
            for w in tensors:
                compute_fbank(w)

        def ref_compute() -> None:
            for w in waves:
                librosa_compute(w)

        names = ["dmha end to end (read wav, compute, write ark)", "dmha compute only",
                 "librosa compute only (reference)"]
        fns = [end_to_end, ours_compute, ref_compute]
        if a.cli:
            (tmp / "wav.scp").write_text("".join(f"u{i:04d} {p}\n" for i, p in enumerate(paths)))
            cmd = [sys.executable, "-m", "dmha.bin.compute_fbank", "--bad-utts", f"{tmp}/bad", "--notes",
                   f"{tmp}/notes", "--utt2num-frames", f"{tmp}/frames", f"{tmp}/wav.scp", f"{tmp}/cli.ark",
                   f"{tmp}/cli.scp"]

            def cli() -> None:
                (tmp / "cli.scp").unlink(missing_ok=True)  # else the job is complete and skips
                subprocess.run(cmd, check=True, capture_output=True)

        for fn in fns:  # warm-up: caches, page cache, lazy imports
            fn()
        rows = list(zip(names, best_of_interleaved(a.repeats, fns)))
        if a.cli:  # timed on its own: its process start and ark write-back would disturb the others
            cli()
            rows.insert(1, ("compute_fbank job as a process (incl. python + torch start)",
                            best_of_interleaved(a.repeats, [cli])[0]))

    ref_xrt = audio_s / rows[-1][1]
    print(f"{a.utts} utterances, {audio_s:.1f} s of 16 kHz audio, 1 thread, best of {a.repeats} "
          f"(torch {torch.__version__}, librosa {librosa.__version__})\n")
    print("| pipeline | seconds | x real time per core | vs librosa compute |")
    print("|---|---:|---:|---:|")
    for name, sec in rows:
        xrt = audio_s / sec
        print(f"| {name} | {sec:.3f} | {xrt:,.0f} | {xrt / ref_xrt:.2f}x |")


if __name__ == "__main__":
    main()
