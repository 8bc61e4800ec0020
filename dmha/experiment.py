"""A trained experiment dir, loaded for inference: resolved config, best model, decision threshold.

Why one loader: stage 4 (``dmha.bin.extract_embeddings``), the Python API (:mod:`dmha.api`) and the
CLIs (``dmha-embed``, ``dmha-verify``) must all embed with exactly the feature and model settings the
model was trained with. They read them from ``<exp>/config.yaml`` (written by training) and the weights
from ``<exp>/best.pt`` (the model of the best validation EER, written by :mod:`dmha.training.loop`); nothing
is re-typed on a command line.

Files of an exp dir used here::

    config.yaml     resolved config (features:, model:, loss:, train:)        -- dmha.training.loop
    best.pt         {"model": state_dict, "epoch", "step", "val_eer", ...}    -- dmha.training.loop
    spk2int         training speaker map (only its size is used)               -- dmha.training.loop
    threshold.yaml  decision threshold for dmha-verify (see below)             -- dmha.bin.compute_threshold
    calibration.yaml  cosine score -> log-likelihood ratio (dmha.scoring.calibration) -- compute_threshold
    avg_last5.pt    optional: an average of epoch models, best.pt's format     -- dmha.bin.average_models

The threshold is the EER operating point of the validation trials (data/<train>/lists/val_trials, the
trials training validated on) scored with the best model; ``steps/compute_threshold.sh`` (run.sh
stage 4) writes it. It records the best model's training step, so a threshold left over from an older
model is detected and ignored. Both files also name the weights file they were computed with
(``model_file``): inference may use another one than best.pt (``load_exp(exp, model="avg_last5.pt")``),
and a threshold or calibration of best.pt does not hold for an averaged model.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from dmha.common.errors import UserError
from dmha.common.fileio import PathLike, atomic_open
from dmha.scoring.backend import Backend
from dmha.scoring.calibration import Calibration

log = logging.getLogger(__name__)

CONFIG = "config.yaml"
BEST_MODEL = "best.pt"  # the name dmha.training.loop.BEST writes (a test checks they agree)
SPK2INT = "spk2int"
THRESHOLD = "threshold.yaml"
CALIBRATION = "calibration.yaml"
BACKEND = "backend"  # dir: mean.vec, transform.mat, backend.yaml (dmha.scoring.backend)


@dataclass
class TrainedExp:
    """Everything inference needs from an exp dir; ``model`` is in eval mode on ``device``."""

    exp_dir: Path
    config: dict
    model: torch.nn.Module
    device: torch.device
    best: dict[str, Any] = field(default_factory=dict)  # epoch, step, val_eer of the best model
    threshold: float | None = None
    model_file: str = BEST_MODEL  # the weights file under exp_dir (best.pt, or e.g. avg_last5.pt)
    calibration: Calibration | None = None
    backend: Backend | None = None  # <exp>/backend (steps/train_backend.sh) fitted for this model

    @property
    def features(self):
        """The exp's :class:`dmha.features.fbank.FbankConfig` (incl. ``norm``, applied when loading)."""
        from dmha.features.fbank import FbankConfig

        return FbankConfig.from_dict(self.config["features"])

    @property
    def norm(self) -> str:
        return str(self.config["features"]["norm"])


def load_exp(exp_dir: PathLike, device: str | torch.device = "auto", model: str = BEST_MODEL) -> TrainedExp:
    """Load ``<exp>/config.yaml`` and ``<exp>/<model>`` (default best.pt): a model in eval mode on ``device``.

    ``model`` is a weights file in best.pt's format, relative to the exp dir: ``best.pt``, an average
    written by ``steps/average_models.sh`` (``avg_last5.pt``) or an epoch model (``models/epoch_7.pt``).
    """
    from dmha.common.device import resolve_device
    from dmha.models import build_model
    from dmha.training.checkpoint import load_checkpoint

    exp_dir = Path(exp_dir)
    if not exp_dir.is_dir():
        raise UserError(f"{exp_dir}: experiment dir not found (train one with steps/train.sh)")
    if not (exp_dir / CONFIG).is_file():
        raise UserError(f"{exp_dir}/{CONFIG} not found; is {exp_dir} a dmha experiment dir (stage 3)?")
    model = Path(model).as_posix()  # "./best.pt" and "best.pt" are one model (the stamp compares names)
    best_path = model_path(exp_dir, model)
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    cfg = read_exp_config(exp_dir / CONFIG)
    num_classes = 1  # the classifier lives in the loss; the model only checks the count is positive
    if (exp_dir / SPK2INT).is_file():
        from dmha.common.fileio import read_kv
        num_classes = max(1, len(read_kv(exp_dir / SPK2INT)))
    net = build_model(cfg["model"], num_classes)
    ckpt = load_checkpoint(best_path, map_location="cpu")
    if "model" not in ckpt:
        raise UserError(f"{best_path}: no 'model' entry; not a best-model file written by dmha training")
    try:
        net.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise UserError(f"{best_path}: weights do not fit the model of {exp_dir / CONFIG} ({first}); "
                        "was config.yaml edited after training?") from None
    net.to(dev).eval()
    best = {k: ckpt[k] for k in ("epoch", "step", "val_eer") if ckpt.get(k) is not None}
    backend = read_exp_backend(exp_dir, best, model)
    fingerprint = backend.fingerprint() if backend is not None else None
    return TrainedExp(exp_dir, cfg, net, dev, best, read_threshold(exp_dir, best, model, fingerprint), model,
                      read_calibration(exp_dir, best, model, fingerprint), backend)


def model_path(exp_dir: Path, model: str = BEST_MODEL) -> Path:
    """``<exp>/<model>``, checked: a relative path inside the exp dir naming an existing file."""
    rel = Path(model)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise UserError(f"model '{model}': give a file name relative to the exp dir (e.g. best.pt, "
                        "avg_last5.pt)")
    path = exp_dir / rel
    if not path.is_file():
        if model == BEST_MODEL:
            raise UserError(f"{path} not found: training has not validated a model yet; "
                            "run or finish stage 3 (steps/train.sh)")
        raise UserError(f"{path} not found; average epoch models with steps/average_models.sh or use "
                        f"--model {BEST_MODEL}")
    return path


def read_exp_config(path: Path) -> dict:
    """The resolved config of a trained exp, with ``features:`` and ``model:`` checked and completed.

    Only the sections inference needs are validated (through their owners' schemas), so an exp
    trained by an older dmha whose ``train:`` section has keys this version no longer knows still
    loads for extraction.
    """
    from dmha.features.fbank import FbankConfig
    from dmha.models.config import ModelConfig

    try:
        with open(path, encoding="utf-8") as f:
            raw = yaml.safe_load(f) or {}
    except yaml.YAMLError as e:
        raise UserError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("model"), dict):
        raise UserError(f"{path}: no 'model:' section; is it the config.yaml written by training?")
    cfg = dict(raw)
    cfg["features"] = FbankConfig.from_dict(raw.get("features") or {}).to_dict()
    cfg["model"] = ModelConfig.from_dict(raw["model"]).to_dict()
    cfg["train"] = raw.get("train") or {}
    return cfg


def _stale(path: Path, data: dict, best: dict | None, model_file: str, redo: str) -> bool:
    """True (and a warning) when a stored threshold/calibration belongs to another model than this one.

    Files written before ``model_file`` was recorded belong to best.pt.
    """
    stored_file = str(data.get("model_file") or BEST_MODEL)
    if stored_file != model_file:
        log.warning("%s was computed for %s, not %s; ignoring it (re-run %s --model %s)", path, stored_file,
                    model_file, redo, model_file)
        return True
    if best and "step" in best and data.get("model_step") is not None \
            and int(data["model_step"]) != int(best["step"]):
        log.warning("%s was computed for the model of step %s, but %s is from step %s; ignoring it "
                    "(re-run %s)", path, data["model_step"], model_file, best["step"], redo)
        return True
    return False


def model_stamp(best: dict, model_file: str) -> dict:
    """What a threshold / calibration / back-end records about the model it was computed with."""
    return {"model_step": int(best["step"]) if "step" in best else None,
            "model_epoch": int(best["epoch"]) if "epoch" in best else None,
            "model_file": str(model_file)}


def _other_backend(path: Path, data: dict, fingerprint: str | None) -> bool:
    """True (and a warning) when a threshold/calibration was computed with another back-end than the exp's
    current one (files without the key were computed on plain cosine scores)."""
    stored = data.get("backend") or None
    if stored == fingerprint:
        return False
    now = f"back-end {fingerprint}" if fingerprint else "no back-end"
    then = f"back-end {stored}" if stored else "plain cosine scores (no back-end)"
    log.warning("%s was computed on %s, but the exp now has %s; ignoring it (re-run "
                "steps/compute_threshold.sh after steps/train_backend.sh)", path, then, now)
    return True


def read_exp_backend(exp_dir: PathLike, best: dict | None = None,
                     model_file: str = BEST_MODEL) -> Backend | None:
    """``<exp>/backend`` if present and fitted on embeddings of this model (else None, warned if stale)."""
    from dmha.scoring.backend import read_backend

    path = Path(exp_dir) / BACKEND
    if not (path / "backend.yaml").is_file():
        return None
    backend = read_backend(path)
    if _stale(path, backend.info, best, model_file, "steps/train_backend.sh"):
        return None
    return backend


def read_threshold(exp_dir: PathLike, best: dict | None = None, model_file: str = BEST_MODEL,
                   backend: str | None = None) -> float | None:
    """The stored decision threshold, or None if absent or computed for another model or back-end
    (fingerprint ``backend``; warned)."""
    path = Path(exp_dir) / THRESHOLD
    if not path.is_file():
        return None
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
        value = float(data["threshold"])
    except (yaml.YAMLError, KeyError, TypeError, ValueError):
        raise UserError(f"{path}: not a threshold file (expected 'threshold: <float>'); delete it and "
                        "re-run steps/compute_threshold.sh") from None
    if _stale(path, data, best, model_file, "steps/compute_threshold.sh") \
            or _other_backend(path, data, backend):
        return None
    if not math.isfinite(value):
        raise UserError(f"{path}: threshold {value} is not finite; re-run steps/compute_threshold.sh")
    return value


def write_threshold(exp_dir: PathLike, threshold: float, *, eer: float, n_target: int, n_nontarget: int,
                    source: str, best: dict, model_file: str = BEST_MODEL,
                    backend: str | None = None) -> Path:
    """Write ``<exp>/threshold.yaml`` atomically (threshold, EER in %, trial counts, source, model)."""
    path = Path(exp_dir) / THRESHOLD
    data = {"threshold": float(threshold), "eer": float(eer), "n_target": int(n_target),
            "n_nontarget": int(n_nontarget), "source": str(source), **model_stamp(best, model_file),
            "backend": backend,
            "note": "cosine score (after the back-end, if any) >= threshold means same speaker (EER "
                    "operating point of the source trials)"}
    with atomic_open(path) as f:
        yaml.safe_dump(data, f, sort_keys=False)
    return path


def read_calibration(exp_dir: PathLike, best: dict | None = None,
                     model_file: str = BEST_MODEL, backend: str | None = None) -> Calibration | None:
    """``<exp>/calibration.yaml`` if present and fitted for this model (else None, warned if stale)."""
    from dmha.scoring.calibration import read_calibration_file

    path = Path(exp_dir) / CALIBRATION
    if not path.is_file():
        return None
    cal = read_calibration_file(path)
    if _stale(path, cal.info, best, model_file, "steps/compute_threshold.sh") \
            or _other_backend(path, cal.info, backend):
        return None
    if cal.info.get("norm", "none") != "none":  # load_model, dmha-verify, the export: no cohort, no norm
        log.warning("%s was fitted on %s-normalised scores; the API and dmha-verify score without "
                    "normalisation, so it is ignored there", path, cal.info["norm"])
        return None
    return cal


def write_calibration(exp_dir: PathLike, cal: Calibration, *, best: dict,
                      model_file: str = BEST_MODEL, backend: str | None = None) -> Path:
    """Write ``<exp>/calibration.yaml`` atomically, stamped with the model it belongs to."""
    from dmha.scoring.calibration import write_calibration_file

    info = dict(cal.info)
    info.update({**model_stamp(best, model_file), "backend": backend})
    return write_calibration_file(Path(exp_dir) / CALIBRATION, cal.with_info(info))
