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

The threshold is the EER operating point of the validation trials (data/<train>/lists/val_trials, the
trials training validated on) scored with the best model; ``steps/compute_threshold.sh`` (run.sh
stage 4) writes it. It records the best model's training step, so a threshold left over from an older
model is detected and ignored.
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

log = logging.getLogger(__name__)

CONFIG = "config.yaml"
BEST_MODEL = "best.pt"  # the name dmha.training.loop.BEST writes (a test checks they agree)
SPK2INT = "spk2int"
THRESHOLD = "threshold.yaml"


@dataclass
class TrainedExp:
    """Everything inference needs from an exp dir; ``model`` is in eval mode on ``device``."""

    exp_dir: Path
    config: dict
    model: torch.nn.Module
    device: torch.device
    best: dict[str, Any] = field(default_factory=dict)  # epoch, step, val_eer of the best model
    threshold: float | None = None

    @property
    def features(self):
        """The exp's :class:`dmha.features.fbank.FbankConfig` (incl. ``norm``, applied when loading)."""
        from dmha.features.fbank import FbankConfig

        return FbankConfig.from_dict(self.config["features"])

    @property
    def norm(self) -> str:
        return str(self.config["features"]["norm"])


def load_exp(exp_dir: PathLike, device: str | torch.device = "auto",
             checkpoint: PathLike | None = None) -> TrainedExp:
    """Load ``<exp>/config.yaml`` and ``<exp>/best.pt`` into a model in eval mode on ``device``.

    ``checkpoint``: another file with a ``model`` state dict for the same config (e.g. an averaged
    model); None = ``best.pt``, the model extraction uses.
    """
    from dmha.common.device import resolve_device
    from dmha.models import build_model
    from dmha.training.checkpoint import load_checkpoint

    exp_dir = Path(exp_dir)
    if not exp_dir.is_dir():
        raise UserError(f"{exp_dir}: experiment dir not found (train one with steps/train.sh)")
    if not (exp_dir / CONFIG).is_file():
        raise UserError(f"{exp_dir}/{CONFIG} not found; is {exp_dir} a dmha experiment dir (stage 3)?")
    best_path = Path(checkpoint) if checkpoint else exp_dir / BEST_MODEL
    if checkpoint and not best_path.is_file():
        raise UserError(f"{best_path}: checkpoint not found")
    if not best_path.is_file():
        raise UserError(f"{best_path} not found: training has not validated a model yet; "
                        "run or finish stage 3 (steps/train.sh)")
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    cfg = read_exp_config(exp_dir / CONFIG)
    num_classes = 1  # the classifier lives in the loss; the model only checks the count is positive
    if (exp_dir / SPK2INT).is_file():
        from dmha.common.fileio import read_kv
        num_classes = max(1, len(read_kv(exp_dir / SPK2INT)))
    model = build_model(cfg["model"], num_classes)
    ckpt = load_checkpoint(best_path, map_location="cpu")
    if "model" not in ckpt:
        raise UserError(f"{best_path}: no 'model' entry; not a best-model file written by dmha training")
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise UserError(f"{best_path}: weights do not fit the model of {exp_dir / CONFIG} ({first}); "
                        "was config.yaml edited after training?") from None
    model.to(dev).eval()
    best = {k: ckpt[k] for k in ("epoch", "step", "val_eer") if k in ckpt}
    return TrainedExp(exp_dir, cfg, model, dev, best, read_threshold(exp_dir, best))


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


def read_threshold(exp_dir: PathLike, best: dict | None = None) -> float | None:
    """The stored decision threshold, or None if absent or computed for another best model (warned)."""
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
    if best and "step" in best and data.get("model_step") is not None \
            and int(data["model_step"]) != int(best["step"]):
        log.warning("%s was computed for the model of step %s, but best.pt is from step %s; ignoring it "
                    "(re-run steps/compute_threshold.sh)", path, data["model_step"], best["step"])
        return None
    if not math.isfinite(value):
        raise UserError(f"{path}: threshold {value} is not finite; re-run steps/compute_threshold.sh")
    return value


def write_threshold(exp_dir: PathLike, threshold: float, *, eer: float, n_target: int, n_nontarget: int,
                    source: str, best: dict) -> Path:
    """Write ``<exp>/threshold.yaml`` atomically (threshold, EER in %, trial counts, source, model)."""
    path = Path(exp_dir) / THRESHOLD
    data = {"threshold": float(threshold), "eer": float(eer), "n_target": int(n_target),
            "n_nontarget": int(n_nontarget), "source": str(source),
            "model_step": int(best["step"]) if "step" in best else None,
            "model_epoch": int(best["epoch"]) if "epoch" in best else None,
            "note": "cosine score >= threshold means same speaker (EER operating point of the source "
                    "trials)"}
    with atomic_open(path) as f:
        yaml.safe_dump(data, f, sort_keys=False)
    return path
