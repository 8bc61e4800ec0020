"""Where the noise, music, babble and impulse responses of the augmented copies come from.

A user's MUSAN (``musan/{noise,music,speech}``) and RIRS_NOISES (``RIRS_NOISES/simulated_rirs/...``)
are used when given, as in Kaldi's VoxCeleb v2 recipe; any folder of sound files can add noise (e.g.
Debian's ``lincity-ng-data`` sound effects) or music (``sonic-pi-samples`` loops). Every file is
checked once, when the data dir is planned (its header is read), so a missing folder, a folder without
audio, or a file that cannot be read stops the step with one line naming it, before anything is
written, instead of failing utterance by utterance later in stage 1.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf

from dmha.common.errors import UserError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")
MUSAN_PARTS = ("noise", "music", "speech")
#: RIRS_NOISES' simulated rooms used by Kaldi's v2 recipe (large rooms left out there too).
RIR_ROOMS = ("smallroom", "mediumroom")


def find_audio(root: str | os.PathLike, what: str) -> list[str]:
    """Sorted absolute paths of the sound files under ``root`` (recursive); UserError if none or no folder.

    Absolute, because they are written into wav.scp lines that may be read from another directory.
    """
    root = Path(os.path.abspath(root))
    if not root.is_dir():
        raise UserError(f"{what} {root}: folder not found")
    out = sorted(str(p) for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
    if not out:
        raise UserError(f"{what} {root}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) found")
    return out


def check_readable(paths: list[str], what: str, min_seconds: float = 0.0) -> None:
    """Read each file's header; the first unreadable or empty one is a UserError naming it."""
    for p in paths:
        try:
            info = sf.info(p)
        except Exception as e:  # libsndfile raises several types; all mean "cannot read"
            reason = str(e).strip().splitlines()[-1][:160] if str(e).strip() else type(e).__name__
            raise UserError(f"{what}: cannot read {p} ({reason}); remove or replace the file") from None
        if info.frames <= 0 or info.frames < min_seconds * info.samplerate:
            raise UserError(f"{what}: {p} has no audio ({info.frames} samples); remove the file")


def musan_parts(musan: str | os.PathLike) -> dict[str, list[str]]:
    """The files of ``<musan>/noise``, ``music`` and ``speech`` (each must exist and hold audio)."""
    musan = Path(musan)
    if not musan.is_dir():
        raise UserError(f"MUSAN {musan}: folder not found (expected {', '.join(MUSAN_PARTS)} inside)")
    return {part: find_audio(musan / part, f"MUSAN {part}") for part in MUSAN_PARTS}


def rir_files(rirs: str | os.PathLike) -> list[str]:
    """Impulse responses of a RIRS_NOISES copy (its small and medium simulated rooms) or of any folder."""
    rirs = Path(rirs)
    if not rirs.is_dir():
        raise UserError(f"RIR folder {rirs}: folder not found")
    sim = rirs / "simulated_rirs"
    if sim.is_dir():
        rooms = [sim / room for room in RIR_ROOMS if (sim / room).is_dir()]
        out = [p for room in rooms for p in find_audio(room, "RIRS_NOISES")]
        if out:
            return out
    return find_audio(rirs, "RIR folder")


@dataclass
class Sources:
    """The material of each kind of copy; empty lists mean the offline defaults.

    noise: files (MUSAN noise, --noise-dir) mixed with synthetic coloured noise unless MUSAN is given;
    music: files (MUSAN music, --music-dir), else synthetic music; babble: MUSAN speech files, else other
    training speakers' utterances; rirs: impulse response files, else simulated rooms.
    """

    noise: list[str] = field(default_factory=list)
    music: list[str] = field(default_factory=list)
    babble: list[str] = field(default_factory=list)
    rirs: list[str] = field(default_factory=list)
    synthetic_noise: bool = True

    def describe(self) -> str:
        def n(files: list[str], default: str) -> str:
            return f"{len(files)} files" if files else default
        both = " + synthetic" if self.noise and self.synthetic_noise else ""
        return (f"noise: {n(self.noise, 'synthetic')}{both}"
                f"; music: {n(self.music, 'synthetic')}; babble: {n(self.babble, 'other training speakers')}"
                f"; reverb: {n(self.rirs, 'simulated rooms')}")


def collect_sources(musan: str | None = None, rirs: str | None = None, noise_dirs: list[str] | None = None,
                    music_dirs: list[str] | None = None, check: bool = True) -> Sources:
    """Gather and check the files of every source the user named (see :class:`Sources`)."""
    src = Sources()
    if musan:
        parts = musan_parts(musan)
        src.noise, src.music, src.babble = parts["noise"], parts["music"], parts["speech"]
        src.synthetic_noise = False
    for d in noise_dirs or []:
        src.noise += find_audio(d, "noise folder")
    for d in music_dirs or []:
        src.music += find_audio(d, "music folder")
    if rirs:
        src.rirs = rir_files(rirs)
    if check:
        for files, what in ((src.noise, "noise"), (src.music, "music"), (src.babble, "babble speech"),
                            (src.rirs, "impulse responses")):
            check_readable(files, what)
    return src
