"""Stage 0 of ``run.sh --corpus voxceleb``: every data dir of the recipe from the user's VoxCeleb trees.

Writes under ``<data>/`` (all validated before returning):

    vox2_train/    VoxCeleb2 dev minus the validation speakers (training set)
    vox2_val/      validation speakers' utterances + trials (generated: all-pairs sample, 1:1)
    vox1/          all of VoxCeleb1 (dev + test): the audio every test list draws from
    vox1_O/ ...    one dir per official list found (see voxceleb_trials.OFFICIAL_LISTS): the
                   utterances of that list + trials (+ trials.missing when some were left out)

Why separate test dirs that are subsets of vox1: run.sh's stages 1, 4 and 5 loop over test sets with
``data/<set>/trials``; a subset holding exactly its list's utterances keeps that loop simple and correct.
``vox1`` is there for a run.sh that extracts once for all lists (see egs/voxceleb/corpus.sh).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from dmha.common.errors import UserError
from dmha.common.fileio import PathLike, write_kv
from dmha.corpus import voxceleb as vc
from dmha.corpus.voxceleb_trials import OFFICIAL_LISTS, convert_official_list, write_converted
from dmha.data.datadir import DataDir, validate_data_dir, write_data_dir
from dmha.data.trials import make_trials, write_trials

log = logging.getLogger(__name__)

TRAIN_SET, VAL_SET, VOX1_SET = "vox2_train", "vox2_val", "vox1"


def _data_dir(recs: Sequence[vc.Recording], wav: dict[str, str] | None = None) -> DataDir:
    """An in-memory data dir of ``recs`` (``wav`` overrides the wav.scp entry of an utterance)."""
    wav = wav or {}
    dd = DataDir(Path("."))
    dd.files["utt2spk"] = {r.utt: r.spk for r in recs}
    dd.files["wav.scp"] = {r.utt: wav.get(r.utt, str(r.path)) for r in recs}
    return dd


def _write(dd: DataDir, dest: Path, utts: Sequence[str] | None = None) -> None:
    write_data_dir(dd, dest, utts)
    for name in ("trials", "trials.missing", "bad_utts"):  # nothing stale from an earlier run
        (dest / name).unlink(missing_ok=True)


def _validate(dest: Path) -> None:
    problems = validate_data_dir(dest)
    if problems:
        raise UserError(f"{dest}: prepared data dir is invalid: {problems[0]} ({len(problems)} problem(s))")


def prepare_vox2(vox2: PathLike, data: Path, *, m4a_mode: str = "pipe", convert_dir: PathLike | None = None,
                 nj: int = 4, val_speakers: int = 40, val_utts_per_spk: int = 25, val_trials: int = 20000,
                 seed: int = 0) -> None:
    """``vox2_train`` and ``vox2_val`` (+ its trials) from VoxCeleb2 dev."""
    if m4a_mode not in ("pipe", "convert"):
        raise UserError(f"--m4a-mode {m4a_mode}: expected pipe or convert")
    recs, ext = vc.scan_vox2(vox2)
    wav: dict[str, str] = {}
    if ext == ".m4a":
        vc.require_ffmpeg()
        if m4a_mode == "pipe":
            wav = {r.utt: vc.ffmpeg_pipe(r.path) for r in recs}
        else:
            out = Path(convert_dir) if convert_dir else data / "vox2_dev_wav"
            log.info("converting %d m4a files to 16 kHz wav under %s (%d parallel ffmpeg)",
                     len(recs), out, nj)
            recs, failed = vc.convert_to_wav(recs, out, nj=nj)
            if failed:
                write_kv(data / "vox2_convert_failed", failed)
                log.warning("%d file(s) could not be converted and are left out (e.g. %s); all in %s",
                            len(failed), failed[0][1], data / "vox2_convert_failed")
                if not recs:
                    raise UserError("no VoxCeleb2 file could be converted; see "
                                    f"{data / 'vox2_convert_failed'}")
    train_spk, val_spk = vc.split_val_speakers((r.spk for r in recs), val_speakers, seed)
    dd = _data_dir(recs, wav)
    train_set = set(train_spk)
    train_utts = [r.utt for r in recs if r.spk in train_set]
    _write(dd, data / TRAIN_SET, train_utts)
    val_recs = vc.pick_val_utts(recs, val_spk, val_utts_per_spk, seed)
    _write(dd, data / VAL_SET, [r.utt for r in val_recs])
    trials = make_trials({r.utt: r.spk for r in val_recs}, nontarget_ratio=1.0, max_trials=val_trials,
                         seed=seed)
    write_trials(data / VAL_SET / "trials", trials)
    write_kv(data / VAL_SET / "speakers_held_out", [(s, "held out of vox2_train") for s in val_spk])
    log.info("%s: %d utterances of %d speakers; %s: %d utterances of %d held-out speakers, %d trials",
             TRAIN_SET, len(train_utts), len(train_spk), VAL_SET,
             len(val_recs), len(val_spk), len(trials))
    for name in (TRAIN_SET, VAL_SET):
        _validate(data / name)


def prepare_vox1(vox1: PathLike, data: Path, trials_dir: PathLike | None = None, *,
                 max_missing_pct: float = 1.0) -> list[str]:
    """``vox1`` and one test dir per official list found in ``trials_dir``; returns the test set names."""
    recs = vc.scan_vox1(vox1)
    dd = _data_dir(recs)
    _write(dd, data / VOX1_SET)
    _validate(data / VOX1_SET)
    known = set(dd.utt2spk)
    tdir = Path(trials_dir) if trials_dir else Path(vox1)
    if not tdir.is_dir():
        raise UserError(f"--trials-dir {tdir}: directory not found")
    made: list[str] = []
    for spec in OFFICIAL_LISTS:
        src = tdir / spec.filename
        if not src.is_file():
            log.info("%s: not found, so no %s test set (%s)", src, spec.name, spec.about)
            continue
        conv = convert_official_list(src, known)
        if conv.n_lines != spec.n_trials:
            log.warning("%s: %d trials, the official file has %d (truncated or another version?)",
                        src, conv.n_lines, spec.n_trials)
        dest = data / spec.name
        if conv.utts:
            _write(dd, dest, sorted(conv.utts))
        write_converted(conv, src, dest, max_missing_pct=max_missing_pct)
        _validate(dest)
        log.info("%s: %d trials (%d target) over %d utterances from %s (%s)", spec.name, len(conv.trials),
                 int(conv.trials.labels.sum()), len(conv.utts), src.name, spec.about)
        made.append(spec.name)
    if not made:
        names = ", ".join(s.filename for s in OFFICIAL_LISTS)
        raise UserError(f"--trials-dir {tdir}: none of the official VoxCeleb1 trial lists ({names}) is "
                        "there; download them from the VoxCeleb website next to the audio")
    return made
