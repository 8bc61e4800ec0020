"""SVOX Pico synthetic voices for the mini corpus (``--pico true``): six more recorded persons, all female.

Why: real_test's telephone speakers are 6 women of 7, and the MBROLA voices hold 24 women of 70. SVOX
Pico ships one voice per language, each built from one (unnamed) female speaker's recordings: en-US,
en-GB, de-DE, es-ES, fr-FR, it-IT. The voice data and a small synthesizer come in the PyPI wheel
``py-nanotts`` (Apache-2.0, like the Pico sources); stage 0 installs it into the project venv only when
``--pico true`` is asked for, so the default recipe does not depend on it. Synthesis takes ~0.03 s per
5 s of speech on one core, plus ~0.06 s to start its process (:class:`Pico`): the six voices cost
about a minute, not RHVoice's ~400 s.
They join mini_train and mini_val only; mini_test and the real test sets stay byte-identical.

Output is 16 kHz 16-bit PCM. Rate and pitch come as the builder's percent units (100 = the voice's own)
and are passed to Pico as multipliers.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dmha.common.errors import UserError
from dmha.corpus.synth import run_to_wav
from dmha.corpus.voices import split_speakers

PACKAGE = "py-nanotts==0.1.1"
SAMPLE_RATE = 16000

# id, Pico voice, text language of dmha.corpus.text (lingware speakers lh0, kh0, gl0, zl0, nk0, cm0)
_TABLE = """
pico-en-us en-US en
pico-en-gb en-GB en
pico-de    de-DE de
pico-es    es-ES es
pico-fr    fr-FR fr
pico-it    it-IT it
"""

# A first guess of seconds per word at rate 100 % (the fit in synth_utterance corrects it).
SEC_PER_WORD_AT_100 = 0.42


@dataclass(frozen=True)
class PicoVoice:
    """One Pico voice = one speaker id; duck-types :class:`dmha.corpus.voices.Voice` for the builder."""

    db: str
    voice: str          # Pico's voice name, e.g. en-US
    lang: str
    sex: str = "f"

    @property
    def has_english(self) -> bool:
        return False

    def engine_voice(self, english: bool) -> str:
        return self.voice

    def sec_per_word(self, rate: int) -> float:
        return SEC_PER_WORD_AT_100 * 100.0 / rate

    def failure_hint(self) -> str:
        return f"with Pico voice {self.voice}; check the {PACKAGE} installation in the venv"


def all_pico_voices() -> list[PicoVoice]:
    """The six voices, sorted by speaker id."""
    rows = [line.split() for line in _TABLE.strip().splitlines()]
    return sorted((PicoVoice(db, voice, lang) for db, voice, lang in rows), key=lambda v: v.db)


def split_pico(voices: list[PicoVoice], seed: int, n_val: int) -> dict[str, list[str]]:
    """Seeded, speaker-disjoint train/val split (no test speakers), seeded apart from the other splits."""
    if n_val == 1 or n_val < 0 or n_val >= len(voices):
        raise UserError(f"--n-pico-val must be 0 or 2..{len(voices) - 1} (trials need two speakers, "
                        f"training at least one), got {n_val}")
    split = split_speakers(voices, seed + 104729, n_test=0, n_val=n_val)
    return {"train": split["train"], "val": split["val"]}


def require_package() -> None:
    """UserError naming the package when py-nanotts is not installed."""
    if importlib.util.find_spec("py_nanotts") is None:
        raise UserError(f"--pico true needs the Python package {PACKAGE}: pip install '{PACKAGE}' "
                        "into the project venv (local/make_mini_corpus.sh does it)")


@dataclass(frozen=True)
class Pico:
    """Runs Pico once per utterance in a fresh process (``python -m py_nanotts``).

    Why a process per utterance: Pico's output depends on what the same process synthesized before
    (measured: the same text, voice, rate and pitch gave different samples after other utterances, and
    in a second NanoTTS object), so in-process synthesis would make the corpus depend on which worker
    spoke what before. A fresh process gives the same samples every time; it costs ~0.06 s per call.
    """

    def synthesize(self, text: str, voice: str, rate: int, pitch: int, amplitude: int = 100,
                   tmpdir: str | None = None) -> tuple[np.ndarray, int]:
        """``text`` spoken by Pico voice ``voice``; returns (float32 mono, 16000).

        ``amplitude`` is unused: the level is set later by the augmentation, as for the other voices.
        RuntimeError (the builder skips that utterance) when no audio comes out.
        """
        with tempfile.TemporaryDirectory(prefix="dmha-pico-", dir=tmpdir) as work:
            out = Path(work) / "out.wav"
            cmd = [sys.executable, "-m", "py_nanotts", "-o", str(out), "-v", voice,
                   "--speed", f"{rate / 100.0:.4f}", "--pitch", f"{pitch / 100.0:.4f}", "--", text]
            return run_to_wav(cmd, out, dict(os.environ), f"Pico voice {voice} gave no audio")


def setup_pico(voices: list[PicoVoice]) -> Pico:
    """The engine, after one short probe per voice: a voice that cannot speak stops the build naming it."""
    require_package()
    engine = Pico()
    for v in voices:
        try:
            engine.synthesize("Bapo dekim 42.", v.voice, 100, 100)
        except (RuntimeError, OSError, ValueError) as e:
            raise UserError(f"Pico voice {v.voice} ({v.db}) cannot synthesize: {e}") from None
    return engine
