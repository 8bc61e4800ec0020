"""Stage 2: the training lists (speaker map, length-filtered training list, validation trials).

Short-utterance policy (SPEC §3 leaves it to us): an utterance with fewer than ``train.min_frames``
frames is DROPPED (counted and logged; it carries too little speech to be a useful 3.5 s training
example), one between ``min_frames`` and ``train.crop_frames`` is KEPT and padded by repetition at crop
time (:class:`dmha.training.dataset.CropDataset`). Utterances without features (failed in stage 1) are
dropped with a count too. The speaker map is built after filtering, so labels are exactly 0..N-1 over
the speakers that have training data (sorted speaker ids, C locale).

Outputs (all written atomically) in the lists dir::

    spk2int          speaker -> class index
    train.list       utt label num_frames       (sorted by utt)
    train_feats.scp  utt ark:offset             (the same utterances)
    val_trials       enroll test target|nontarget
    val_feats.scp    features of every utterance in val_trials
    val_utt2domain   utt domain, only when the validation dir has a ``spk2domain`` (e.g. real / synthetic
                     speakers in the mini corpus version 5): validation then scores each domain's trials
                     apart and selects on the mean of the domains' EERs (dmha/training/loop.py)
    summary          counts (key value), also logged
"""

from __future__ import annotations

import logging
from pathlib import Path

import kaldiio

from dmha.data.trials import Trials, read_trials, write_trials
from dmha.common.errors import UserError
from dmha.common.fileio import PathLike, read_kv, write_kv

log = logging.getLogger("dmha.lists")


def _num_frames(data_dir: Path, scp: dict[str, str]) -> dict[str, int]:
    """utt2num_frames of the data dir, or (if absent) the row count of every feature matrix."""
    path = data_dir / "utt2num_frames"
    if path.is_file():
        out = {}
        for utt, value in read_kv(path).items():
            try:
                out[utt] = int(value)
            except ValueError:
                raise UserError(f"{path}: bad frame count {value!r} for '{utt}'; "
                                "re-run the feature stage") from None
        return out
    log.info("%s missing: reading the feature matrices for their lengths", path)
    return {utt: int(kaldiio.load_mat(entry).shape[0]) for utt, entry in scp.items()}


def _feats_scp(data_dir: Path) -> dict[str, str]:
    path = data_dir / "feats.scp"
    if not path.is_file():
        raise UserError(f"{path}: not found; run the feature stage (steps/make_fbank.sh {data_dir}) first")
    return read_kv(path)


def prepare_lists(train_dir: PathLike, val_dir: PathLike, out_dir: PathLike, *, min_frames: int,
                  crop_frames: int, max_val_trials: int | None = 20000, seed: int = 0) -> dict[str, int]:
    """Write the lists dir from a training and a validation data dir; return the counts (summary)."""
    train_dir, val_dir, out_dir = Path(train_dir), Path(val_dir), Path(out_dir)
    utt2spk = read_kv(train_dir / "utt2spk")
    scp = _feats_scp(train_dir)
    frames = _num_frames(train_dir, scp)

    no_feats = [u for u in utt2spk if u not in scp or u not in frames]
    kept = [u for u in utt2spk if u in scp and u in frames]
    too_short = [u for u in kept if frames[u] < min_frames]
    kept = sorted((u for u in kept if frames[u] >= min_frames), key=lambda u: u.encode("utf-8"))
    if not kept:
        raise UserError(f"{train_dir}: no utterance with features and >= train.min_frames={min_frames} "
                        "frames; lower train.min_frames or check the feature stage")
    speakers = sorted({utt2spk[u] for u in kept}, key=lambda s: s.encode("utf-8"))
    spk2int = {s: i for i, s in enumerate(speakers)}
    n_padded = sum(1 for u in kept if frames[u] < crop_frames)

    write_kv(out_dir / "spk2int", spk2int)
    write_kv(out_dir / "train.list", [(u, f"{spk2int[utt2spk[u]]} {frames[u]}") for u in kept])
    write_kv(out_dir / "train_feats.scp", [(u, scp[u]) for u in kept])

    val_scp = _feats_scp(val_dir)
    trials, source = _val_trials(val_dir, val_scp, max_val_trials, seed)
    val_utts = sorted(set(trials.enroll) | set(trials.test), key=lambda u: u.encode("utf-8"))
    missing = [u for u in val_utts if u not in val_scp]
    if missing:
        raise UserError(f"{val_dir}/feats.scp: no features for trial utterance '{missing[0]}' "
                        f"({len(missing)} missing); re-run the feature stage or fix {source}")
    utt2domain = _val_domains(val_dir, val_utts)  # checked before anything is written
    write_trials(out_dir / "val_trials", trials)
    write_kv(out_dir / "val_feats.scp", [(u, val_scp[u]) for u in val_utts])
    if utt2domain:
        write_kv(out_dir / "val_utt2domain", utt2domain)
    else:
        (out_dir / "val_utt2domain").unlink(missing_ok=True)
    domains = sorted(set(utt2domain.values()))

    summary = {
        "train_utts_in": len(utt2spk),
        "train_utts_no_feats": len(no_feats),
        "train_utts_too_short": len(too_short),
        "train_utts_kept": len(kept),
        "train_utts_padded": n_padded,
        "train_speakers": len(speakers),
        "train_speakers_lost": len(set(utt2spk.values())) - len(speakers),
        "min_frames": min_frames,
        "crop_frames": crop_frames,
        "val_utts": len(val_utts),
        "val_trials": len(trials),
        "val_target_trials": int(trials.labels.sum()),
    }
    if domains:
        summary["val_domains"] = len(domains)
    write_kv(out_dir / "summary", list(summary.items()), sort=False)
    log.info("training list: %d of %d utterances kept, %d speakers; dropped %d shorter than %d frames and "
             "%d without features; %d shorter than the %d-frame crop will be padded by repetition",
             len(kept), len(utt2spk), len(speakers), len(too_short), min_frames, len(no_feats), n_padded,
             crop_frames)
    if no_feats:
        log.warning("%d training utterances have no features (first: %s)", len(no_feats), no_feats[0])
    log.info("validation: %d trials (%d target) over %d utterances, from %s", len(trials),
             int(trials.labels.sum()), len(val_utts), source)
    return summary


def _val_domains(val_dir: Path, val_utts: list[str]) -> dict[str, str]:
    """utt -> domain of the validation utterances from the dir's ``spk2domain`` ({} without one).
    Every validation speaker needs a domain."""
    src = val_dir / "spk2domain"
    if not src.is_file():
        return {}
    spk2domain = read_kv(src)
    utt2spk = read_kv(val_dir / "utt2spk")
    lacking = sorted({utt2spk.get(u, u) for u in val_utts if utt2spk.get(u) not in spk2domain})
    if lacking:
        raise UserError(f"{src}: no domain for speaker '{lacking[0]}' ({len(lacking)} speakers of the "
                        "validation trials lack one); add them, or delete the file to score all trials together")
    log.info("validation domains (from %s): %s", src,
             ", ".join(sorted({spk2domain[utt2spk[u]] for u in val_utts})))
    return {u: spk2domain[utt2spk[u]] for u in val_utts}


def _val_trials(val_dir: Path, val_scp: dict[str, str], max_trials: int | None,
                seed: int) -> tuple[Trials, str]:
    """The validation set's own ``trials`` if it has one, else trials made from its utt2spk.

    Generated trials use only utterances that have features (a failed utterance is not an error here).
    """
    path = val_dir / "trials"
    if path.is_file():
        return read_trials(path), str(path)
    from dmha.data.trials import make_trials

    utt2spk = {u: s for u, s in read_kv(val_dir / "utt2spk").items() if u in val_scp}
    trials = make_trials(utt2spk, max_trials=max_trials, seed=seed)
    return trials, f"{val_dir}/utt2spk (generated, seed {seed})"
