"""VoxCeleb data preparation: scan the user's VoxCeleb1/VoxCeleb2 trees into Kaldi data dirs.

Nothing is downloaded: the user brings the corpus in its official layout::

    <vox2>/dev/aac/<spk>/<video>/<nnnnn>.m4a      VoxCeleb2 dev (training; or dev/wav/... .wav)
    <vox1>/dev/wav/<spk>/<video>/<nnnnn>.wav      VoxCeleb1 dev  } both are needed: the E and H lists
    <vox1>/test/wav/<spk>/<video>/<nnnnn>.wav     VoxCeleb1 test } use all of VoxCeleb1
    <vox1>/wav/<spk>/<video>/<nnnnn>.wav          (or dev and test merged into one wav/ folder)

**Utterance ids** are ``<spk>-<video>-<nnnnn>`` (e.g. ``id10270-x6uYqmx31kE-00001``): the official
relative path with ``/`` replaced by ``-`` and the extension dropped. They start with the speaker id, so
sorting by utterance groups speakers (Kaldi convention), and they are invertible although YouTube video
ids may contain ``-``: the speaker id is everything before the first ``-``, the segment number everything
after the last one (:func:`relpath_of`).

**m4a audio** (VoxCeleb2 is distributed as AAC) reaches the feature stage either through an ffmpeg pipe
in ``wav.scp`` (:func:`ffmpeg_pipe`; decoded once, when stage 1 computes features; no extra disk), or,
with ``m4a_mode="convert"``, converted once to 16 kHz wav files by ``nj`` parallel ffmpeg processes
(:func:`convert_to_wav`; ~265 GB for all of VoxCeleb2 dev: worth it only if features are recomputed often).

**Validation set**: ``val_speakers`` VoxCeleb2 dev speakers (chosen with ``seed``) are held out of
training; ``val_utts_per_spk`` of their utterances form ``vox2_val`` with a generated trial list. Keeping
validation speaker-disjoint from training makes its EER a fair model-selection criterion; taking it from
VoxCeleb1 would leak the E/H test speakers into model selection.
"""

from __future__ import annotations

import logging
import os
import random
import shlex
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from dmha.common.errors import UserError
from dmha.common.fileio import PathLike

log = logging.getLogger(__name__)

#: Official sizes (for a warning when a tree looks incomplete; the tests use tiny fake trees).
VOX2_DEV_SPEAKERS, VOX2_DEV_UTTS = 5994, 1_092_009
VOX1_SPEAKERS, VOX1_UTTS = 1251, 153_516

FFMPEG_HINT = ("install ffmpeg (Debian/Ubuntu: apt-get install ffmpeg; conda: conda install -c conda-forge "
               "ffmpeg) or give already converted wav files (<vox2>/dev/wav/...)")


@dataclass(frozen=True)
class Recording:
    """One utterance of the tree: its id, speaker and audio file."""

    utt: str
    spk: str
    path: Path


# --------------------------------------------------------------------------------------------------
# utterance ids


def utt_id(spk: str, video: str, seg: str) -> str:
    """The recipe's utterance id ``<spk>-<video>-<seg>``."""
    return f"{spk}-{video}-{seg}"


def utt_id_from_relpath(relpath: str) -> str:
    """``id10270/x6uYqmx31kE/00001.wav`` (official list path) -> ``id10270-x6uYqmx31kE-00001``.

    Extra leading components (``wav/id10270/...``) are ignored; fewer than three raise ValueError.
    """
    parts = relpath.strip().replace("\\", "/").split("/")
    if len(parts) < 3 or not all(parts[-3:]):
        raise ValueError(f"expected <spk>/<video>/<nnnnn>.wav, got {relpath!r}")
    spk, video, seg = parts[-3:]
    seg = os.path.splitext(seg)[0]
    return utt_id(spk, video, seg)


def relpath_of(utt: str, ext: str = ".wav") -> str:
    """``id10270-x6uYqmx31kE-00001`` -> ``id10270/x6uYqmx31kE/00001.wav`` (inverse of utt_id_from_relpath).

    The speaker id is everything before the first ``-``, the segment everything after the last one.
    """
    spk, _, rest = utt.partition("-")
    video, _, seg = rest.rpartition("-")
    if not spk or not video or not seg:
        raise ValueError(f"not a VoxCeleb utterance id: {utt!r}")
    return f"{spk}/{video}/{seg}{ext}"


# --------------------------------------------------------------------------------------------------
# scanning the trees


def _subdirs(path: Path) -> list[os.DirEntry]:
    with os.scandir(path) as it:
        return sorted((e for e in it if e.is_dir() and not e.name.startswith(".")), key=lambda e: e.name)


def scan_tree(root: PathLike, ext: str) -> list[Recording]:
    """All ``<root>/<spk>/<video>/<seg><ext>`` files, sorted by utterance id.

    Other files (e.g. ``.DS_Store``, partial downloads) are ignored and counted in the log.
    """
    root = Path(root)
    recs: list[Recording] = []
    ignored = 0
    for spk in _subdirs(root):
        for video in _subdirs(Path(spk.path)):
            with os.scandir(video.path) as it:
                for f in it:
                    if f.is_file() and f.name.endswith(ext) and not f.name.startswith("."):
                        seg = f.name[: -len(ext)]
                        recs.append(Recording(utt_id(spk.name, video.name, seg), spk.name, Path(f.path)))
                    else:
                        ignored += 1
    if ignored:
        log.info("%s: ignored %d entries that are not <spk>/<video>/<nnnnn>%s", root, ignored, ext)
    recs.sort(key=lambda r: r.utt.encode("utf-8"))
    return recs


def _check_unique(recs: Sequence[Recording], what: str) -> None:
    seen: dict[str, Path] = {}
    for r in recs:
        if r.utt in seen:
            raise UserError(f"{what}: utterance '{r.utt}' found twice ({seen[r.utt]} and {r.path}); "
                            "remove the duplicate copy")
        seen[r.utt] = r.path


def vox1_roots(vox1: PathLike) -> list[Path]:
    """The folders holding VoxCeleb1 speakers: ``dev/wav`` and ``test/wav``, or a merged ``wav``."""
    vox1 = Path(vox1)
    if not vox1.is_dir():
        raise UserError(f"--vox1 {vox1}: directory not found")
    split = [vox1 / "dev" / "wav", vox1 / "test" / "wav"]
    roots = [p for p in split if p.is_dir()]
    if (vox1 / "wav").is_dir():
        roots.append(vox1 / "wav")
    if not roots:
        raise UserError(f"--vox1 {vox1}: expected {split[0]} and {split[1]} (or a merged {vox1}/wav) holding "
                        "<spk>/<video>/<nnnnn>.wav; unpack vox1_dev_wav.zip and vox1_test_wav.zip there")
    if len(roots) == 1 and roots[0] != vox1 / "wav":
        other = split[1] if roots[0] == split[0] else split[0]
        log.warning("%s not found: only part of VoxCeleb1 is present; the Vox1-E/H lists need all of it",
                    other)
    return roots


def vox2_root(vox2: PathLike) -> tuple[Path, str]:
    """The VoxCeleb2 dev folder and its audio extension: ``dev/aac`` (.m4a) or converted ``dev/wav``."""
    vox2 = Path(vox2)
    if not vox2.is_dir():
        raise UserError(f"--vox2 {vox2}: directory not found")
    for sub, ext in (("dev/aac", ".m4a"), ("dev/wav", ".wav")):
        if (vox2 / sub).is_dir():
            return vox2 / sub, ext
    raise UserError(f"--vox2 {vox2}: expected {vox2}/dev/aac/<spk>/<video>/<nnnnn>.m4a (unpack "
                    f"vox2_dev_aac.zip there) or converted {vox2}/dev/wav/.../<nnnnn>.wav")


def scan_vox1(vox1: PathLike) -> list[Recording]:
    """Every VoxCeleb1 utterance (dev and test), sorted by id."""
    recs = [r for root in vox1_roots(vox1) for r in scan_tree(root, ".wav")]
    if not recs:
        raise UserError(f"--vox1 {vox1}: no <spk>/<video>/<nnnnn>.wav files found under {vox1_roots(vox1)}")
    _check_unique(recs, f"--vox1 {vox1}")
    recs.sort(key=lambda r: r.utt.encode("utf-8"))
    _note_size("VoxCeleb1", recs, VOX1_SPEAKERS, VOX1_UTTS)
    return recs


def scan_vox2(vox2: PathLike) -> tuple[list[Recording], str]:
    """Every VoxCeleb2 dev utterance, sorted by id, and the audio extension (.m4a or .wav)."""
    root, ext = vox2_root(vox2)
    recs = scan_tree(root, ext)
    if not recs:
        raise UserError(f"--vox2 {vox2}: no <spk>/<video>/<nnnnn>{ext} files found under {root}")
    _note_size("VoxCeleb2 dev", recs, VOX2_DEV_SPEAKERS, VOX2_DEV_UTTS)
    return recs, ext


def _note_size(name: str, recs: Sequence[Recording], n_spk: int, n_utt: int) -> None:
    spk = len({r.spk for r in recs})
    log.info("%s: %d utterances of %d speakers", name, len(recs), spk)
    if (spk, len(recs)) != (n_spk, n_utt):
        log.warning("%s: found %d utterances of %d speakers; the official release has %d of %d "
                    "(incomplete download or a subset?)", name, len(recs), spk, n_utt, n_spk)


# --------------------------------------------------------------------------------------------------
# m4a audio


def require_ffmpeg() -> str:
    """Path of the ffmpeg binary, or a UserError saying how to get it."""
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise UserError(f"ffmpeg not found on PATH: VoxCeleb2 m4a audio needs it; {FFMPEG_HINT}")
    return exe


def ffmpeg_pipe(path: PathLike, sample_rate: int = 16000) -> str:
    """The wav.scp pipe entry that decodes ``path`` to 16 kHz mono wav on stdout."""
    return (f"ffmpeg -nostdin -loglevel error -i {shlex.quote(str(path))} -f wav -ar {sample_rate} "
            "-ac 1 - |")


def _convert_one(src: Path, dest: Path, sample_rate: int) -> str | None:
    """Convert one file (atomically: temp name, then rename); None on success, else the reason."""
    if dest.is_file() and dest.stat().st_size > 44:
        return None  # done by an earlier (possibly interrupted) run: renames are atomic
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    proc = subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(src), "-ar",
                           str(sample_rate), "-ac", "1", "-c:a", "pcm_s16le", "-f", "wav", str(tmp)],
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if proc.returncode != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        return f"ffmpeg exit {proc.returncode}" + (f": {err[-1][:200]}" if err else "")
    os.replace(tmp, dest)
    return None


def convert_to_wav(recs: Sequence[Recording], out_root: PathLike, *, nj: int = 4,
                   sample_rate: int = 16000) -> tuple[list[Recording], list[tuple[str, str]]]:
    """Convert every recording to ``<out_root>/<spk>/<video>/<seg>.wav`` with ``nj`` parallel ffmpegs.

    Resumable: files already converted (complete, thanks to the atomic rename) are kept. Returns the
    recordings pointing at the wav files, and ``(utt, reason)`` for each file ffmpeg could not convert.
    """
    require_ffmpeg()
    out_root = Path(out_root)
    dests = [out_root / relpath_of(r.utt) for r in recs]
    ok: list[Recording] = []
    failed: list[tuple[str, str]] = []
    step = max(1, len(recs) // 20)  # a log line every 5%: readable in a log file, unlike a progress bar
    with ThreadPoolExecutor(max_workers=max(1, nj)) as pool:
        results = pool.map(lambda rd: _convert_one(rd[0].path, rd[1], sample_rate), zip(recs, dests))
        for i, (rec, dest, err) in enumerate(zip(recs, dests, results), 1):
            if err is None:
                ok.append(Recording(rec.utt, rec.spk, dest))
            else:
                failed.append((rec.utt, f"{rec.path}: {err}"))
            if i % step == 0 or i == len(recs):
                log.info("m4a -> wav: %d of %d files (%d failed)", i, len(recs), len(failed))
    return ok, failed


# --------------------------------------------------------------------------------------------------
# validation speakers


def split_val_speakers(speakers: Iterable[str], n_val: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """``(train, val)`` speaker lists (C-sorted): ``n_val`` speakers drawn with ``seed`` are held out."""
    spk = sorted(set(speakers), key=lambda s: s.encode("utf-8"))
    if n_val < 2:
        raise UserError(f"--val-speakers {n_val}: need at least 2 validation speakers (for impostor trials)")
    if n_val >= len(spk):
        raise UserError(f"--val-speakers {n_val}: VoxCeleb2 dev has only {len(spk)} speakers here; "
                        "hold out fewer")
    val = set(random.Random(seed).sample(spk, n_val))
    return [s for s in spk if s not in val], [s for s in spk if s in val]


def pick_val_utts(recs: Sequence[Recording], val_spk: Iterable[str], per_spk: int,
                  seed: int = 0) -> list[Recording]:
    """Up to ``per_spk`` utterances of each validation speaker (drawn with ``seed``; 0 = all)."""
    wanted = set(val_spk)
    by_spk: dict[str, list[Recording]] = {}
    for r in recs:
        if r.spk in wanted:
            by_spk.setdefault(r.spk, []).append(r)
    rng = random.Random(seed)
    out: list[Recording] = []
    for spk in sorted(by_spk):
        utts = by_spk[spk]
        out += utts if per_spk <= 0 or len(utts) <= per_spk else rng.sample(utts, per_spk)
    out.sort(key=lambda r: r.utt.encode("utf-8"))
    return out
