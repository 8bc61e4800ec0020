"""Reading one wav.scp entry (a path or a Kaldi pipe ``cmd |``) as mono float32 in [-1, 1].

Every problem with the audio itself (missing file, empty file, undecodable header, failing pipe
command, NaN/Inf samples) raises :class:`AudioError` with a short reason, so stage 1 can report
``utt reason`` for each bad utterance, finish the rest and drop the bad ones. Conditions that are
fixable (several channels, another sample rate) are fixed and logged, not errors.

Why not ``kaldiio.load_mat`` for pipes: kaldiio runs the command but ignores its exit status when the
stream is closed (``kaldiio.utils._wrap_close``), so a command that fails after writing part of its
output would go unnoticed. We run the pipe with ``bash -o pipefail`` and check the status ourselves;
decoding is soundfile's (libsndfile: WAV of any PCM/float width, FLAC, OGG, ...), which gives int16 WAV
samples exactly as ``int16 / 32768``.

Our own augmentation pipes (``python -m dmha.bin.augment_wav ... |``, written by
steps/augment_data_dir.sh and steps/perturb_data_dir_speed.sh) are run in-process: the same function
the CLI runs, the same WAV bytes, without starting a Python interpreter per utterance (a babble copy of
a speed-perturbed set would start several). Any other pipe runs in bash.
"""

from __future__ import annotations

import io
import logging
import os
import shlex
import subprocess
from math import gcd

import numpy as np
import soundfile as sf

from dmha.common.errors import UserError

log = logging.getLogger(__name__)


class AudioError(UserError):
    """An utterance whose audio cannot be used; the message is the reason (one line)."""


def is_pipe(entry: str) -> bool:
    """True for a Kaldi pipe entry (``cmd |``)."""
    return entry.rstrip().endswith("|")


def _run_pipe(entry: str) -> bytes:
    cmd = entry.rstrip()[:-1].strip()
    if not cmd:
        raise AudioError("empty pipe command")
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        detail = f": {err[-1][:200]}" if err else ""
        raise AudioError(f"pipe command failed (exit {proc.returncode}){detail}")
    if not proc.stdout:
        raise AudioError("pipe command produced no output")
    return proc.stdout


def _own_pipe_args(entry: str) -> list[str] | None:
    """The arguments of a ``python -m dmha.bin.augment_wav ARGS |`` entry; None for any other pipe."""
    from dmha.augment.spec import PIPE_TOOL

    if PIPE_TOOL not in entry:
        return None
    try:
        argv = shlex.split(entry.rstrip()[:-1])
    except ValueError:
        return None
    python = os.path.basename(argv[0]) in ("python", "python3") if argv else False
    if len(argv) < 4 or not python or argv[1:3] != ["-m", PIPE_TOOL]:
        return None
    return argv[3:]


def augmented_wav_bytes(args: list[str]) -> bytes:
    """What ``python -m dmha.bin.augment_wav ARGS`` writes: the copy as 16-bit WAV bytes."""
    from dmha.augment.spec import apply, parse_argv, wav_bytes

    def read(src: str, rate: int) -> np.ndarray:
        return load_audio(src, rate)[0]

    try:
        spec, source, sr = parse_argv(args)
        return wav_bytes(apply(read(source, sr), spec, sr, read), sr)
    except (UserError, ValueError) as e:  # a bad noise file, a bad line: this utterance is bad
        raise AudioError(f"augmentation pipe: {e}") from None


def _open(entry: str) -> tuple[object, str]:
    """What soundfile should read (a path, or the pipe's output in memory) and a label for messages."""
    if is_pipe(entry):
        own = _own_pipe_args(entry)
        if own is not None:
            return io.BytesIO(augmented_wav_bytes(own)), "augmentation pipe output"
        return io.BytesIO(_run_pipe(entry)), "pipe output"
    path = entry.strip()
    if not os.path.isfile(path):
        raise AudioError(f"file not found: {path}")
    if os.path.getsize(path) == 0:
        raise AudioError(f"empty file: {path}")
    return path, path


def resample(wave: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Polyphase resampling (scipy ``resample_poly``, Kaiser window) from ``orig_sr`` to ``target_sr``."""
    if orig_sr == target_sr:
        return wave
    from scipy.signal import resample_poly

    g = gcd(int(orig_sr), int(target_sr))
    return resample_poly(wave, target_sr // g, orig_sr // g).astype(np.float32)


def _note(notes: list[str] | None, label: str, text: str) -> None:
    log.info("%s: %s", label, text)
    if notes is not None:
        notes.append(text)


def load_audio(entry: str, target_sr: int | None = None, *, name: str | None = None,
               notes: list[str] | None = None) -> tuple[np.ndarray, int]:
    """Read a wav.scp entry -> ``(samples float32 mono in [-1, 1], rate)``.

    Several channels are averaged (logged). With ``target_sr`` another rate is resampled to it (logged)
    and the returned rate is ``target_sr``. ``name`` (the utterance id) is used in log lines only; what was
    fixed is also appended to ``notes`` when given (stage 1 counts them in its summary).
    Raises :class:`AudioError` for audio that cannot be used.
    """
    label = name or entry
    source, what = _open(entry)
    try:
        wave, sr = sf.read(source, dtype="float32", always_2d=True)
    except Exception as e:  # libsndfile's errors are of several types; all mean "cannot decode"
        msg = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise AudioError(f"cannot decode audio ({what}): {msg[:200]}") from None
    if wave.shape[0] == 0:
        raise AudioError(f"no samples ({what})")
    if not np.isfinite(wave).all():
        bad = int((~np.isfinite(wave)).sum())
        raise AudioError(f"{bad} NaN/Inf samples ({what})")
    if wave.shape[1] > 1:
        _note(notes, label, f"{wave.shape[1]} channels mixed down to mono")
        wave = wave.mean(axis=1, dtype=np.float32)
    else:
        wave = wave[:, 0]
    if target_sr is not None and sr != target_sr:
        _note(notes, label, f"resampled {sr} Hz -> {target_sr} Hz")
        wave = resample(wave, sr, target_sr)
        sr = target_sr
    return np.ascontiguousarray(wave, dtype=np.float32), int(sr)
