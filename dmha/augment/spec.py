"""One augmented copy of one utterance: what to do to it (:class:`AugSpec`) and doing it (:func:`apply`).

An augmented data dir stores no audio: each ``wav.scp`` line is a pipe
``python -m dmha.bin.augment_wav <options> <source entry> |`` whose options are :meth:`AugSpec.to_argv`.
The line names everything that was *chosen* for the copy (kind, SNR, RT60, noise files, babble
utterances); whatever is random *inside* the signal (noise samples, a noise file's start, the RIR's
tail) is drawn from a generator seeded by (seed, utterance id), both on the line. So the same line
always gives the same samples, on any machine and in any job split, and the line says what it does.

The source entry may itself be a pipe (a speed-perturbed copy); sources are read through a callable
passed in by the caller (``dmha.features.audio.load_audio``), which keeps this layer free of I/O policy.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import soundfile as sf

from dmha.augment import effects
from dmha.common.errors import UserError

#: The kinds of augmented copies (id suffix ``<utt>-<kind>``): Kaldi's v2 recipe's four, and a telephone
#: channel (8 kHz band limit and codec) for models that must work on telephone speech.
KINDS = ("reverb", "noise", "music", "babble", "telephone")
#: What the pipe tool does: an augmented copy, or a speed-perturbed one (steps/perturb_data_dir_speed.sh).
TOOL_KINDS = (*KINDS, "speed")
#: The pipe tool; dmha.features.audio runs lines of this tool in-process (same code, same bytes).
PIPE_TOOL = "dmha.bin.augment_wav"
SYNTH_PREFIX = "synth:"
SYNTH_SOURCES = ("synth:white", "synth:pink", "synth:brown", "synth:music")

ReadFn = Callable[[str, int], np.ndarray]  # (wav.scp entry or path, sample rate) -> mono float32


def utt_rng(seed: int, utt: str, stream: int = 0) -> np.random.Generator:
    """The generator of one copy: a pure function of (seed, utterance id, stream).

    Stream 0 draws the choices written on the wav.scp line (planning), stream 1 the signal itself.
    """
    words = np.frombuffer(hashlib.sha256(utt.encode("utf-8")).digest()[:16], dtype=np.uint32)
    return np.random.default_rng(np.random.SeedSequence([int(seed), *words.tolist(), int(stream)]))


@dataclass
class AugSpec:
    """What one augmented copy does. ``kind`` in KINDS; unused fields stay at their defaults."""

    kind: str
    utt: str                           # the copy's utterance id (seeds its generator)
    seed: int = 0
    snr: float | None = None           # noise, music, babble: dB
    rt60: float | None = None          # reverb with a simulated room
    drr: float | None = None           # reverb with a simulated room: direct-to-reverberant ratio, dB
    rir: str | None = None             # reverb with an impulse response file
    speed: float | None = None         # speed: the factor (0.9 = slower, longer)
    codec: str | None = None           # telephone: one of effects.CODECS
    sources: list[str] = field(default_factory=list)  # noise/music files or synth:*; babble: entries

    def to_argv(self) -> list[str]:
        argv = ["--kind", self.kind, "--utt", self.utt, "--seed", str(self.seed)]
        if self.snr is not None:
            argv += ["--snr", f"{self.snr:.2f}"]
        if self.rt60 is not None:
            argv += ["--rt60", f"{self.rt60:.3f}", "--drr", f"{self.drr or 0.0:.2f}"]
        if self.rir:
            argv += ["--rir", self.rir]
        if self.speed is not None:
            argv += ["--speed", f"{self.speed:g}"]
        if self.codec is not None:
            argv += ["--codec", self.codec]
        for s in self.sources:
            argv += ["--source", s]
        return argv

    def pipe(self, source_entry: str) -> str:
        """The wav.scp value: ``python -m dmha.bin.augment_wav ... '<source entry>' |``."""
        args = " ".join(shlex.quote(a) for a in [*self.to_argv(), source_entry])
        return f"python -m {PIPE_TOOL} {args} |"


def argument_parser(prog: str = f"python -m {PIPE_TOOL}") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Write one augmented copy of an utterance to stdout as a 16-bit WAV (a wav.scp pipe, "
                    "written by steps/augment_data_dir.sh). The same arguments always give the same "
                    "samples: random content is drawn from (--seed, --utt).")
    p.add_argument("--kind", required=True, choices=TOOL_KINDS)
    p.add_argument("--utt", required=True, help="the copy's utterance id (seeds the generator)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--snr", type=float, help="noise/music/babble: signal-to-noise ratio in dB")
    p.add_argument("--rt60", type=float, help="reverb: simulated room, reverberation time in seconds")
    p.add_argument("--drr", type=float, default=0.0, help="reverb: direct-to-reverberant ratio in dB")
    p.add_argument("--rir", help="reverb: impulse response file (instead of --rt60)")
    p.add_argument("--speed", type=float, help="speed: factor (> 0; 0.9 slower, 1.1 faster)")
    p.add_argument("--codec", choices=effects.CODECS,
                   help="telephone: the 8 kHz codec (pcm = band limit only, ulaw, alaw, gsm)")
    p.add_argument("--source", action="append", default=[],
                   help="noise/music: a sound file or synth:white|pink|brown|music; babble: a wav.scp entry "
                        "of another speaker's utterance (repeatable: babble sums them)")
    p.add_argument("--sample-rate", type=int, default=16000)
    p.add_argument("entry", help="the clean utterance: a path or a wav.scp pipe 'cmd |'")
    return p


def parse_argv(argv: Sequence[str]) -> tuple[AugSpec, str, int]:
    """The (spec, source entry, sample rate) of a pipe tool command line; UserError if malformed."""
    try:
        a = argument_parser().parse_args(list(argv))
    except SystemExit:
        raise UserError(f"bad {PIPE_TOOL} arguments: {' '.join(argv)[:200]}") from None
    spec = AugSpec(a.kind, a.utt, a.seed, a.snr, a.rt60, a.drr if a.rt60 is not None else None, a.rir,
                   a.speed, a.codec, list(a.source))
    return spec, a.entry, a.sample_rate


def _read_segment(path: str, n: int, sr: int, rng: np.random.Generator, read: ReadFn) -> np.ndarray:
    """``n`` samples of a noise file from a random start (looped when shorter)."""
    x = read(path, sr)
    return effects.loop_to_length(x, n, int(rng.integers(0, len(x))))


def _noise(spec: AugSpec, n: int, sr: int, rng: np.random.Generator, read: ReadFn) -> np.ndarray:
    if not spec.sources:
        raise UserError(f"{spec.utt}: --kind {spec.kind} needs at least one --source")
    if spec.kind == "babble":
        return effects.babble(n, [read(s, sr) for s in spec.sources], rng)
    total = np.zeros(n, dtype=np.float64)
    for src in spec.sources:
        if src.startswith(SYNTH_PREFIX):
            what = src[len(SYNTH_PREFIX):]
            if what == "music":
                seg = effects.synthetic_music(n, sr, rng)
            elif what in ("white", "pink", "brown"):
                seg = effects.coloured_noise(n, what, rng)
            else:
                raise UserError(f"{spec.utt}: unknown synthetic source '{src}' ({', '.join(SYNTH_SOURCES)})")
        else:
            seg = _read_segment(src, n, sr, rng, read)
        total += seg / effects.rms(seg)
    return total.astype(np.float32)


def apply(wave: np.ndarray, spec: AugSpec, sr: int, read: ReadFn) -> np.ndarray:
    """The augmented copy of ``wave`` (float32 mono), peak kept below full scale."""
    rng = utt_rng(spec.seed, spec.utt, 1)
    x = np.asarray(wave, dtype=np.float32)
    if spec.kind == "speed":
        if spec.speed is None or not spec.speed > 0:
            raise UserError(f"{spec.utt}: speed factor must be > 0, got {spec.speed}")
        return effects.speed_perturb(x, spec.speed)
    if spec.kind == "telephone":
        if spec.codec not in effects.CODECS:
            raise UserError(f"{spec.utt}: --kind telephone needs --codec ({', '.join(effects.CODECS)})")
        return effects.telephone_channel(x, sr, spec.codec)
    if spec.kind == "reverb":
        if spec.rir:
            rir = effects.align_rir(read(spec.rir, sr))
        elif spec.rt60 is not None:
            rir = effects.make_rir(sr, spec.rt60, rng, drr_db=spec.drr or 0.0)
        else:
            raise UserError(f"{spec.utt}: --kind reverb needs --rt60 or --rir")
        y = effects.reverberate(x, rir)
    elif spec.kind in ("noise", "music", "babble"):
        if spec.snr is None:
            raise UserError(f"{spec.utt}: --kind {spec.kind} needs --snr")
        y = effects.mix_at_snr(x, _noise(spec, len(x), sr, rng, read), spec.snr)
    else:
        raise UserError(f"{spec.utt}: unknown kind '{spec.kind}' (one of {', '.join(TOOL_KINDS)})")
    peak = float(np.max(np.abs(y))) if len(y) else 0.0
    if peak > 0.99:  # scaling speech and noise together keeps the SNR
        y = y * (0.99 / peak)
    return y.astype(np.float32)


def wav_bytes(wave: np.ndarray, sr: int) -> bytes:
    """16-bit PCM WAV bytes (what the pipe writes and the files mode stores)."""
    buf = io.BytesIO()
    # libsndfile wraps (does not clip) out-of-range floats when writing integers: clip first.
    sf.write(buf, np.clip(wave, -1.0, 32767 / 32768), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()
