"""Recorded human speech in Debian packages: where the clips are, how to decode them, who speaks.

Each source lists :class:`Clip` s with a *raw label*: the finest grouping the package itself gives
(a Tux Paint language, a Drascula file prefix, a UQM race folder, a Kajongg voice folder). Raw labels
are leads, not facts: :data:`LABEL_MAP` turns them into speaker ids, merging raw labels that one
person speaks and dropping those nobody could vouch for. The table was checked with a peer speaker
encoder that we did not train (bench/real_voice_labels.py; figures in the README, corpus section).

Decoding: ogg/wav through soundfile, members of the UQM zip archive from memory, Drascula's ``.ALS``
clips as raw unsigned 8-bit mono at 11,025 Hz after a 32-byte header and before a 64-byte tail.
Every clip is resampled to 16 kHz. A clip that cannot be decoded raises :class:`UserError` naming it.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from dmha.common.errors import UserError
from dmha.corpus.synth import to_16k

# Debian packages the corpus fetches -> licence, as stated in the package's copyright file (README).
# Kajongg (GPL-2+) is listed by list_kajongg for the label check but not fetched: its clips are tile
# names of about 1 s, and no Kajongg speaker reaches 10 pieces of >= 1.5 s.
PACKAGES = {
    "festvox-ru": "BSD-like (Nickolay V. Shmyrev 2005; use, modify, sell permitted)",
    "tuxpaint-stamps-default": "GPL-2+",
    "drascula": "Drascula licence (free distribution and modification; no fee for the game itself)",
    "drascula-spanish": "Drascula licence (free distribution and modification; no fee for the game itself)",
    "uqm-voice": "CC BY-NC-SA 2.5 (non-commercial, share-alike)",
}

DRASCULA_HEADER = 32
DRASCULA_TAIL = 64
DRASCULA_SR = 11025
UQM_ARCHIVE = "games/uqm/content/addons/uqm-0.8.0-voice.uqm"


@dataclass(frozen=True)
class Clip:
    """One recording: its raw label, the package it comes from and where it lies under usr/share."""

    raw_label: str
    package: str
    path: str           # relative to <root>/usr/share; "<archive>::<member>" inside a zip

    @property
    def key(self) -> str:
        """A stable name for sorting and seeding (independent of the download folder)."""
        return self.path


# --- listing ------------------------------------------------------------------------------------

def _rel(share: Path, p: Path) -> str:
    return p.relative_to(share).as_posix()


def list_festvox_ru(share: Path) -> list[Clip]:
    d = share / "festival/voices/russian/msu_ru_nsh_clunits/wav"
    return [Clip("festru-nsh", "festvox-ru", _rel(share, p)) for p in sorted(d.glob("*.wav"))]


_TUX = re.compile(r"_desc_([a-z]{2,3})\.ogg$")


def list_tuxpaint(share: Path) -> list[Clip]:
    """``*_desc_<lang>.ogg`` stamp descriptions: one raw label per language."""
    out = []
    for p in sorted((share / "tuxpaint/stamps").rglob("*_desc_*.ogg")):
        m = _TUX.search(p.name)
        if m:
            out.append(Clip(f"tux-{m.group(1)}", "tuxpaint-stamps-default", _rel(share, p)))
    return out


_DRASCULA = re.compile(r"^([A-Z]*)(\d+)\.ALS$")


def drascula_label(lang: str, name: str) -> str | None:
    """Raw label of a Drascula clip from its file name, or None for a name that is not a speech clip.

    Prefixes follow the game engine's talk functions: '' John (the hero), I Igor, BJ, VB Von Braun,
    L the wolf, E the musician, P the pianist, B the drunk, T the bartender, S ... . ``D`` files are
    Drascula's lines up to 57 and the blind man's from 58 on (the engine numbers his from there).
    """
    m = _DRASCULA.match(name)
    if not m:
        return None
    prefix, num = m.group(1), int(m.group(2))
    if prefix == "":
        prefix = "john"
    elif prefix == "D":
        prefix = "D" if num < 58 else "Dblind"
    return f"drasc{lang}-{prefix}"


def list_drascula(share: Path) -> list[Clip]:
    out = []
    for lang, pkg in (("en", "drascula"), ("es", "drascula-spanish")):
        for p in sorted((share / "scummvm/drascula" / lang).glob("*.ALS")):
            label = drascula_label(lang, p.name)
            if label:
                out.append(Clip(label, pkg, _rel(share, p)))
    return out


def list_kajongg(share: Path) -> list[Clip]:
    """Voice folders voices/<set> and voices/de/<set>; raw label = the folder's ARTIST tag."""
    out = []
    root = share / "kajongg/voices"
    for d in sorted(p for p in root.rglob("*") if p.is_dir()):
        files = sorted(d.glob("*.ogg"))
        if not files:
            continue
        artists = {_ogg_artist(f) for f in files}
        artist = artists.pop() if len(artists) == 1 else None
        label = f"kaj-{artist.lower()}" if artist else f"kaj-untagged-{_rel(root, d).replace('/', '_')}"
        out += [Clip(label, "kajongg", _rel(share, f)) for f in files]
    return out


def _ogg_artist(path: Path) -> str | None:
    """The Vorbis comment ARTIST= of an ogg file (read from the header bytes), or None."""
    head = path.read_bytes()[:8192]
    m = re.search(rb"ARTIST=([A-Za-z ]+)", head)
    return m.group(1).decode().strip() if m else None


_UQM = re.compile(r"^3dovoice/([a-z]+)/[^/]+\.ogg$")


def list_uqm(share: Path) -> list[Clip]:
    """The UQM voice addon (a zip archive): one raw label per race folder ``3dovoice/<race>/``."""
    archive = share / UQM_ARCHIVE
    try:
        with zipfile.ZipFile(archive) as z:
            names = sorted(z.namelist())
    except (OSError, zipfile.BadZipFile) as e:
        raise UserError(f"{archive}: cannot read the UQM voice archive ({e}); delete the folder "
                        "downloads/real and rerun to fetch uqm-voice again") from None
    out = []
    for n in names:
        m = _UQM.match(n)
        if m:
            out.append(Clip(f"uqm-{m.group(1)}", "uqm-voice", f"{UQM_ARCHIVE}::{n}"))
    return out


LISTERS = {
    "festvox-ru": list_festvox_ru,
    "tuxpaint-stamps-default": list_tuxpaint,
    "drascula": list_drascula,          # lists drascula-spanish too
    "kajongg": list_kajongg,
    "uqm-voice": list_uqm,
}


def list_clips(share: Path, packages: list[str] | dict[str, str]) -> list[Clip]:
    """All clips of the given packages (drascula-spanish goes with drascula), sorted by path."""
    out: list[Clip] = []
    for pkg in packages:
        if pkg in LISTERS:
            out += LISTERS[pkg](share)
    return sorted(out, key=lambda c: c.key)


# --- decoding -----------------------------------------------------------------------------------

def read_clip(share: Path, clip: Clip) -> np.ndarray:
    """The clip as 16 kHz float32 mono; UserError naming the clip when it cannot be decoded."""
    try:
        x, sr = _decode(share, clip)
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - any decoder error becomes one clear line
        raise UserError(f"{share / clip.path}: cannot decode ({type(e).__name__}: {e}); the download may "
                        "be truncated: delete the package's stamp under downloads/real/.fetched, rerun"
                        ) from None
    if x.ndim > 1:
        x = x.mean(axis=1)
    if len(x) == 0:
        raise UserError(f"{share / clip.path}: no audio in the clip")
    return to_16k(x.astype(np.float32), sr)


def _decode(share: Path, clip: Clip) -> tuple[np.ndarray, int]:
    if "::" in clip.path:
        archive, member = clip.path.split("::", 1)
        with zipfile.ZipFile(share / archive) as z:
            data = z.read(member)
        return sf.read(io.BytesIO(data), dtype="float32", always_2d=False)
    path = share / clip.path
    if path.suffix == ".ALS":
        return decode_drascula(path.read_bytes(), str(path)), DRASCULA_SR
    return sf.read(path, dtype="float32", always_2d=False)


def decode_drascula(raw: bytes, name: str = "clip") -> np.ndarray:
    """Raw unsigned 8-bit mono between a 32-byte header and a 64-byte tail -> float in [-1, 1)."""
    if len(raw) <= DRASCULA_HEADER + DRASCULA_TAIL:
        raise UserError(f"{name}: {len(raw)} bytes, too short for a Drascula clip "
                        f"({DRASCULA_HEADER}-byte header + {DRASCULA_TAIL}-byte tail)")
    body = np.frombuffer(raw[DRASCULA_HEADER:len(raw) - DRASCULA_TAIL], dtype=np.uint8)
    return (body.astype(np.float32) - 128.0) / 128.0


def iter_labels(clips: list[Clip]) -> Iterator[tuple[str, list[Clip]]]:
    """(raw label, its clips) in label order."""
    groups: dict[str, list[Clip]] = {}
    for c in clips:
        groups.setdefault(c.raw_label, []).append(c)
    for label in sorted(groups):
        yield label, groups[label]


# raw label -> speaker id; a raw label that is absent (or None) is left out. Checked with
# bench/real_voice_labels.py (Resemblyzer, 16 clips per raw label; figures in the README corpus section):
# every kept label is one tight voice (split-half centroid cosine 0.94-0.99, no 2-means sub-cluster
# of several clips below 0.80) and no two kept labels reach each other's split-half level. Left out:
# Tux Paint fr (a second voice: 2-means splits 40/8 clips with centroid cosine 0.61), Drascula S and F
# (the same audio in both languages, not one voice: split-half 0.81), Drascula D and "Dblind" (the
# engine's d<n> files serve Drascula, the blind man, the bartender and the trunk; English D splits
# 14/2 at 0.67), Spanish Igor (0.90 to Spanish Von Braun: maybe one actor), Tux Paint lt/nl/ml and
# Kajongg Wolfgang/untagged (too few clips of >= 1.5 s).
# UQM: actors voice several races (public credits), and the processed alien voices are not separable
# by the peer (race centroids of one credited actor 0.79-0.83, of different actors 0.75-0.79, up to
# 0.915). So each credited actor contributes ONE race (or the race pair the peer confirms as one voice),
# and races without a credit are left out: one person never appears under two ids. (Zee: urquan, not
# the larger melnorme folder, whose clips split 14/2 at 0.60.)
_TUX_KEPT = ("be", "bg", "ca", "da", "el", "es", "ro", "ru")
_DRASCULA_KEPT = {"en": ("john", "VB", "I", "L", "T", "BJ", "E", "P", "B"),
                  "es": ("john", "VB", "L", "T", "BJ", "E", "P", "B")}
_UQM_ACTOR = {"druuge": "betz", "spathi": "bryce", "safeones": "bryce", "pkunk": "johnson",
              "talkingpet": "reiche", "vux": "wild", "urquan": "zee",
              "commander": "cmdr", "starbase": "cmdr"}
LABEL_MAP: dict[str, str | None] = {
    "festru-nsh": "festru-nsh",
    **{f"tux-{lang}": f"tux-{lang}" for lang in _TUX_KEPT},
    **{f"drasc{lang}-{c}": f"drasc{lang}-{c.lower()}" for lang, cs in _DRASCULA_KEPT.items() for c in cs},
    **{f"kaj-{n}": f"kaj-{n}" for n in ("klaus", "maria", "petra")},
    **{f"uqm-{race}": f"uqm-{actor}" for race, actor in _UQM_ACTOR.items()},
}
