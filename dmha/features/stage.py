"""Stage 1 bookkeeping around the feature jobs: file names, skip check, clean-up, combine and drop.

``steps/make_fbank.sh`` is a thin shell around this module and :mod:`dmha.bin.compute_fbank`:

1. :func:`prepare` — skip when ``feats.scp`` is complete and up to date; otherwise remove the stage's
   final outputs first (so a kill from now on leaves *no* ``feats.scp`` rather than a stale one) and
   remove job outputs that a different config, ``--force`` or an earlier larger ``--nj`` left.
2. the jobs (one per split) each write ``raw_fbank_<set>.JOB.{ark,scp}`` plus small side files; a job
   whose outputs are complete for its split is skipped, so a killed stage resumes where it stopped.
3. :func:`combine` — merge the job outputs, enforce ``--max-bad-frac``, record and drop the bad
   utterances (``bad_utts`` + :func:`dmha.data.datadir.fix_data_dir`, originals in ``.backup/``), and
   write ``utt2num_frames``, ``fbank.yaml`` (the feature config used) and ``feats.scp`` last.

Every file is written atomically, so the data dir only ever holds a complete ``feats.scp`` or none.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from dmha.common.errors import UserError
from dmha.common.fileio import PathLike, atomic_open, read_kv, write_kv
from dmha.data.datadir import FEATURE_SETTINGS, fix_data_dir
from dmha.features.config import FbankConfig, settings_differences

log = logging.getLogger(__name__)

CONFIG_NAME = FEATURE_SETTINGS  # in the data dir: the settings feats.scp was computed with (norm excluded)

#: How the arks store the features: float32 (Kaldi FM, the default) or Kaldi's row-major compressed
#: matrices CM2 (2 bytes per value: half the disk, error ~2e-4 on log-mels) and CM3 (1 byte). All three
#: can be cropped by partial reads (dmha.features.arkrows); the value is kaldiio's compression_method.
STORAGES: dict[str, int | None] = {"float32": None, "cm2": 3, "cm3": 5}


#: Top-level sections of a model/training config (dmha.config) besides ``features:``: a file with any of
#: them and no ``features:`` is a config that keeps the paper's features.
_OTHER_CONFIG_SECTIONS = ("model", "loss", "train", "paper")


def load_fbank_config(path: PathLike | None) -> FbankConfig:
    """Feature config from a YAML file: its ``features:`` section; the defaults for a model config
    without one (``run.sh --config`` passes every config here); else the whole file. None: defaults."""
    if not path:
        return FbankConfig()
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: feature config not found")
    with open(path, encoding="utf-8") as f:
        d = yaml.safe_load(f) or {}
    if not isinstance(d, dict):
        raise UserError(f"{path}: expected a YAML mapping")
    if "features" in d:
        section = d["features"] or {}
    elif any(k in d for k in _OTHER_CONFIG_SECTIONS):
        section = {}
    else:
        section = d
    if not isinstance(section, dict):
        raise UserError(f"{path}: 'features:' must be a mapping")
    return FbankConfig.from_dict(section)


@dataclass(frozen=True)
class JobFiles:
    """Paths of one job's outputs. The scp is written last: it exists only for a finished job."""

    ark: Path
    scp: Path
    bad: Path     # `utt reason` lines for utterances the job could not use
    notes: Path   # `utt note` lines for fixed problems (mixed down, resampled)
    frames: Path  # utt2num_frames of the job

    @classmethod
    def of(cls, arkdir: PathLike, name: str, job: int | str) -> JobFiles:
        base = Path(os.path.abspath(arkdir)) / f"raw_fbank_{name}.{job}"
        return cls(Path(f"{base}.ark"), Path(f"{base}.scp"), Path(f"{base}.bad"), Path(f"{base}.notes"),
                   Path(f"{base}.frames"))

    def all(self) -> list[Path]:
        return [self.ark, self.scp, self.bad, self.notes, self.frames]


def _config_stamp(arkdir: Path, name: str) -> Path:
    return arkdir / f"raw_fbank_{name}.yaml"


def check_storage(storage: str) -> str:
    if storage not in STORAGES:
        raise UserError(f"--storage {storage}: expected one of {', '.join(STORAGES)}")
    return storage


def _raw_settings(cfg: FbankConfig, storage: str = "float32") -> dict:
    """The settings that determine the stored (raw) features: ``norm`` is applied at load time only.
    ``storage`` is recorded only when it is not float32, so stamps written before it existed still match."""
    d = cfg.to_dict()
    d.pop("norm")
    if check_storage(storage) != "float32":
        d["storage"] = storage
    return d


def _read_config_file(path: Path) -> dict | None:
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def _write_config_file(path: Path, cfg: FbankConfig, storage: str = "float32") -> None:
    with atomic_open(path) as f:
        yaml.safe_dump(_raw_settings(cfg, storage), f, sort_keys=True)


def _keys(path: Path) -> set[str]:
    return set(read_kv(path)) if path.is_file() else set()


def check_stored_features(data: PathLike, cfg: FbankConfig, wanted_by: str, hint: str | None = None) -> None:
    """UserError when ``<data>/fbank.yaml`` records features computed otherwise than ``cfg``.

    ``wanted_by`` names whose settings ``cfg`` are (a config file, an exp dir) and ``hint`` what to do
    (default: recompute the data dir's features), for the message. A dir without the stamp (features
    made by Kaldi or by hand) is not checked: nothing says how they were made.
    """
    conf = Path(data) / CONFIG_NAME
    try:
        stored = _read_config_file(conf)
        if stored is None:
            return
        diff = settings_differences(stored, cfg)
    except (yaml.YAMLError, UserError, TypeError, AttributeError) as e:
        raise UserError(f"{conf}: not a feature settings record ({e}); recompute the features: "
                        f"steps/make_fbank.sh --force true {data}") from None
    if diff:
        hint = hint or (f"recompute them with its settings: steps/make_fbank.sh --feat-config <that config> "
                        f"{data} (run.sh stage 1 passes --config)")
        raise UserError(f"{conf}: the features of {data} were computed with {', '.join(diff)} of "
                        f"{wanted_by}; {hint}")


def job_is_complete(files: JobFiles, wav_scp: PathLike) -> bool:
    """A job is done when its scp exists and its scp + bad keys are exactly its wav.scp keys."""
    if not (files.scp.is_file() and files.ark.is_file() and files.frames.is_file() and files.bad.is_file()):
        return False
    done = _keys(files.scp)
    bad = _keys(files.bad)
    return not (done & bad) and done | bad == set(read_kv(wav_scp)) and _keys(files.frames) == done


def check_complete(data: PathLike, cfg: FbankConfig, storage: str = "float32") -> str | None:
    """None when ``feats.scp`` is complete and up to date for ``cfg`` (and ``storage``); else the reason."""
    data = Path(data)
    feats, frames, conf = data / "feats.scp", data / "utt2num_frames", data / CONFIG_NAME
    for p in (feats, frames, conf):
        if not p.is_file():
            return f"{p} does not exist"
    if _read_config_file(conf) != _raw_settings(cfg, storage):
        return f"{conf} differs from the requested feature config"
    t = feats.stat().st_mtime
    for src in ("wav.scp", "utt2spk"):
        if (data / src).stat().st_mtime > t:
            return f"{data / src} is newer than {feats}"
    fs = read_kv(feats)
    if set(fs) != set(read_kv(data / "utt2spk")) or set(fs) != set(read_kv(data / "wav.scp")):
        return f"{feats} does not hold the utterances of utt2spk/wav.scp"
    if set(read_kv(frames)) != set(fs):
        return f"{frames} does not match {feats}"
    for ark in {v.rsplit(":", 1)[0] for v in fs.values()}:
        if not os.path.isfile(ark):
            return f"{ark} (referenced by {feats}) is missing"
    return None


def prepare(data: PathLike, arkdir: PathLike, cfg: FbankConfig, nj: int, force: bool,
            storage: str = "float32") -> bool:
    """Return False (skip) when the stage is complete; else clean up for a (re)run and return True."""
    data, arkdir = Path(data), Path(arkdir)
    check_storage(storage)
    for f in ("wav.scp", "utt2spk"):
        if not (data / f).is_file():
            raise UserError(f"{data}/{f} not found; run stage 0 (data preparation) first")
    if (data / "segments").is_file():
        raise UserError(f"{data}/segments: segmented recordings are not supported; write one wav.scp entry "
                        "per utterance (e.g. a 'sox <wav> -t wav - trim <start> <dur> |' pipe)")
    if not force:
        why = check_complete(data, cfg, storage)
        if why is None:
            return False
        log.info("computing features: %s", why)
    # From here on a kill must leave no feats.scp that looks complete: remove the final outputs first.
    for f in ("feats.scp", "utt2num_frames", CONFIG_NAME):
        (data / f).unlink(missing_ok=True)
    arkdir.mkdir(parents=True, exist_ok=True)
    name = data.name
    stamp = _config_stamp(arkdir, name)
    stale_cfg = _read_config_file(stamp) != _raw_settings(cfg, storage)
    for p in sorted(arkdir.glob(f"raw_fbank_{name}.*")):
        job = p.name[len(f"raw_fbank_{name}."):].split(".", 1)[0]
        if not job.isdigit() or p.name.endswith(".lock"):
            continue
        if force or stale_cfg or int(job) > nj:
            p.unlink()
    _write_config_file(stamp, cfg, storage)
    return True


def _merge(paths: Iterable[Path]) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in paths:
        for k, v in read_kv(p).items():
            if k in out:
                raise UserError(f"{p}: utterance '{k}' was also written by another job; "
                                "rerun with --force true")
            out[k] = v
    return out


def combine(data: PathLike, arkdir: PathLike, cfg: FbankConfig, nj: int, max_bad_frac: float,
            storage: str = "float32") -> list[str]:
    """Merge the job outputs into the data dir; return summary lines. See the module docstring."""
    data, arkdir = Path(data), Path(arkdir)
    name = data.name
    jobs = [JobFiles.of(arkdir, name, j) for j in range(1, nj + 1)]
    for j, files in enumerate(jobs, 1):
        if not files.scp.is_file():
            raise UserError(f"feature job {j} of {data} did not finish ({files.scp} missing); see its log")
    feats = _merge(f.scp for f in jobs)
    frames = _merge(f.frames for f in jobs)
    bad = _merge(f.bad for f in jobs)
    notes = _merge(f.notes for f in jobs if f.notes.is_file())
    wav = read_kv(data / "wav.scp")
    if set(feats) | set(bad) != set(wav) or set(feats) & set(bad):
        raise UserError(f"{data}: job outputs do not cover wav.scp exactly (wav.scp changed during the "
                        "run?); rerun steps/make_fbank.sh with --force true")

    # bad_utts records every utterance ever dropped from this dir: keep earlier entries whose utterances
    # are gone already, add this run's.
    bad_file = data / "bad_utts"
    recorded = {k: v for k, v in (read_kv(bad_file).items() if bad_file.is_file() else []) if k not in wav}
    summary = []
    n_total, n_bad = len(wav), len(bad)
    if recorded or bad:
        write_kv(bad_file, {**recorded, **bad})
    else:
        bad_file.unlink(missing_ok=True)
    if n_bad > max_bad_frac * n_total:
        raise UserError(f"{data}: {n_bad} of {n_total} utterances ({100 * n_bad / n_total:.1f}%) have bad "
                        f"audio, more than --max-bad-frac {max_bad_frac}; see {bad_file}. Nothing was "
                        "dropped and feats.scp was not written: fix the audio and rerun with --force true, "
                        "or rerun with a larger --max-bad-frac to drop them")
    if n_bad:
        report = fix_data_dir(data)  # drops what bad_utts lists; originals to <data>/.backup/
        summary.append(f"dropped {n_bad} utterances with bad audio (reasons in {bad_file}; "
                       f"original lists in {data}/.backup/)")
        summary += [f"fix_data_dir: {line}" for line in report.lines() if "trials" not in line]
        if (data / "trials").is_file():
            n_trials = sum(1 for line in open(data / "trials", encoding="utf-8") if line.split())
            summary.append(f"trials: {report.trials_unknown} of {n_trials} trials reference dropped "
                           "utterances (trials file kept unchanged)")
    kept = set(read_kv(data / "utt2spk"))
    feats = {k: v for k, v in feats.items() if k in kept}
    frames = {k: v for k, v in frames.items() if k in kept}
    if set(feats) != kept:
        raise UserError(f"{data}: utterances of utt2spk without features; rerun with --force true")

    write_kv(data / "utt2num_frames", frames)
    _write_config_file(data / CONFIG_NAME, cfg, storage)
    write_kv(data / "feats.scp", feats)  # last: its presence means the stage completed

    n_frames = sum(int(v) for v in frames.values())
    hours = n_frames * cfg.hop_length / cfg.sample_rate / 3600
    summary.insert(0, f"{len(feats)} utterances, {n_frames} frames ({hours:.2f} h) -> {data}/feats.scp")
    kinds: dict[str, int] = {}
    for v in notes.values():
        for note in v.split("; "):
            kind = "mixed down to mono" if "mono" in note else "resampled" if "resampled" in note else note
            kinds[kind] = kinds.get(kind, 0) + 1
    for kind, n in sorted(kinds.items()):
        summary.append(f"{n} utterances {kind} (listed in {arkdir}/raw_fbank_{name}.*.notes)")
    return summary

