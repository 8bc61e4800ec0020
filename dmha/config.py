"""Experiment configuration: YAML sections ``features:``, ``model:``, ``loss:``, ``train:``.

Why this module exists: every run must be reproducible from ``exp/<name>/config.yaml``, and a user must
be able to change any setting from the command line (``--override "train.lr=1e-3 model.heads=8"``)
without editing YAML. Every section is first completed with its defaults (``train:`` below; features,
model and loss from their owners' schemas: FbankConfig, ModelConfig, dmha.models.losses), so a YAML lists only
what it changes and the resolved config written to the exp dir shows every value that was used.
Overrides may only touch keys that exist after that, so a typo fails loudly instead of being silently
ignored, and values are coerced to the type of the existing value (``train.max_epochs=5`` stays an
int, ``train.lr=1e-3`` a float, even though YAML 1.1 reads ``1e-3`` as a string).
"""

from __future__ import annotations

import copy
import shlex
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from dmha.common.errors import UserError
from dmha.common.fileio import PathLike, write_text_if_changed

SECTIONS = ("features", "model", "loss", "train")
#: Optional sections carried verbatim into the resolved config (training ignores them): ``paper:`` holds
#: the paper's figures for a recipe config (<set>: {eer:, mindcf_0.01:}); dmha.bin.summarize_results
#: prints them beside ours.
EXTRA_SECTIONS = ("paper",)

#: ``train.lr_schedule`` values (computed by :mod:`dmha.training.schedule`).
LR_SCHEDULES = ("plateau", "cosine")

#: Training defaults (SPEC §3, the paper / reference values). ``batch_size`` is the effective batch of
#: one optimizer step over all processes; it is split into ``grad_accum`` micro-batches per process.
TRAIN_DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "crop_frames": 350,          # one random contiguous crop per utterance per epoch (3.5 s)
    "min_frames": 100,           # shorter utterances are dropped by prepare_lists (count logged)
    "batch_size": 128,           # effective batch per optimizer step (all ranks, all micro-batches)
    "grad_accum": 2,             # micro-batches per optimizer step (reference: 64 x 2)
    "lr": 1.0e-4,
    "weight_decay": 1.0e-3,      # coupled L2 (torch.optim.Adam weight_decay), as the reference
    "max_epochs": 100,
    "val_every_epochs": 1,       # validate every N epochs (and after the last epoch)
    "lr_patience": 15,           # halve the LR after this many validations without improvement
    "lr_factor": 0.5,
    "stop_patience": 25,         # stop after this many validations without improvement
    "min_lr": 0.0,               # floor of the halvings; end of the cosine schedule
    "lr_schedule": "plateau",    # plateau (paper: halve on plateaus) | cosine (dmha/training/schedule.py)
    "lr_warmup_epochs": 0.0,     # cosine: linear LR warm-up from 0 over N epochs
    "margin_warmup_epochs": 0.0, # ramp the loss margin linearly from 0 over N epochs (0: off, paper)
    "keep_epoch_models": 0,      # >0: models/epoch_<N>.pt per epoch, the N latest + N best kept (averaging)
    "ckpt_every_steps": 500,     # full-state checkpoint every N optimizer steps (and at epoch end)
    "log_every_steps": 50,
    "num_workers": 0,            # DataLoader worker processes per training process
    "num_threads": 0,            # torch intra-op threads per process (0: torch's default)
    "bf16": False,               # bf16 autocast: true | false | auto (native bf16 only; models/precision)
    "deterministic": False,      # CUDA: deterministic cuDNN/cuBLAS kernels, bit-identical reruns/resumes
    "val_max_frames": 20000,     # padded frames per validation batch (memory bound)
    "val_batch_size": 64,        # utterances per validation batch
    "cache_feats": False,        # keep raw training features in memory (small corpora)
    "partial_reads": "auto",     # read only each crop's rows (CMN side tables; same crops): true|false|auto
    # Start from another run's weights (model and classifier): a best.pt or ckpt.pt, at step 0 only (a
    # resumed run continues from its own checkpoint). Large-margin fine-tuning sets it (steps/lm_finetune.sh).
    "init_from": "",
}

#: Boolean keys that also accept "auto" (decided at run time for the device, see dmha.models.precision).
AUTO_BOOL_KEYS = {"train.bf16", "train.partial_reads"}

#: Loss defaults (SPEC §2: AM-Softmax s = 30, m = 0.4); ``margin: null`` = the default of ``type``.
LOSS_DEFAULTS: dict[str, Any] = {"type": "amsoftmax", "scale": 30.0, "margin": None}


def _merge(defaults: dict, given: dict) -> dict:
    """Defaults first, then the YAML's values (the YAML may add keys the defaults lack)."""
    out = copy.deepcopy(defaults)
    out.update(copy.deepcopy(given))
    return out


def _read_yaml(path: Path, what: str) -> Any:
    """The YAML document of ``path``; a missing file or bad YAML is one UserError naming it."""
    if not path.is_file():
        raise UserError(f"{path}: {what} not found")
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f) or {}
    except yaml.YAMLError as e:
        raise UserError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None


def load_config(path: PathLike, overrides: Iterable[str] | str | None = None) -> dict:
    """Load a YAML config, fill defaults, apply ``section.key=value`` overrides; return the dict."""
    path = Path(path)
    raw = _read_yaml(path, "config file")
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a mapping with sections {', '.join(SECTIONS)}")
    unknown = sorted(set(raw) - set(SECTIONS) - set(EXTRA_SECTIONS))
    if unknown:
        raise UserError(f"{path}: unknown top-level section(s) {unknown}; "
                        f"allowed: {', '.join(SECTIONS + EXTRA_SECTIONS)}")
    cfg = {s: (raw.get(s) or {}) for s in SECTIONS}
    for s in SECTIONS:
        if not isinstance(cfg[s], dict):
            raise UserError(f"{path}: section '{s}:' must be a mapping")
    from dataclasses import asdict

    from dmha.features.fbank import FbankConfig
    from dmha.models.config import ModelConfig

    unknown_train = sorted(set(cfg["train"]) - set(TRAIN_DEFAULTS))
    if unknown_train:
        raise UserError(f"{path}: unknown key(s) {unknown_train} in section 'train:'; "
                        f"known: {', '.join(sorted(TRAIN_DEFAULTS))}")
    # YAML 1.1 reads "1e-4" as a string: bring given train values to the defaults' types.
    train = {k: _convert(f"train.{k}", TRAIN_DEFAULTS[k], v, str(v)) for k, v in cfg["train"].items()}
    cfg["train"] = _merge(TRAIN_DEFAULTS, train)
    cfg["features"] = _merge(FbankConfig().to_dict(), cfg["features"])
    cfg["model"] = _merge(asdict(ModelConfig()), cfg["model"])
    cfg["loss"] = _merge(LOSS_DEFAULTS, cfg["loss"])
    apply_overrides(cfg, overrides)
    # Validate through the owners' schemas and write back the complete, canonical sections.
    cfg["features"] = FbankConfig.from_dict(cfg["features"]).to_dict()
    cfg["model"] = ModelConfig.from_dict(cfg["model"]).to_dict()
    if cfg["loss"].get("margin") is None:
        from dmha.models.losses import DEFAULT_MARGIN
        cfg["loss"]["margin"] = DEFAULT_MARGIN.get(cfg["loss"].get("type"))
    _check_train(cfg["train"], path)
    for s in EXTRA_SECTIONS:
        if raw.get(s) is not None:
            cfg[s] = copy.deepcopy(raw[s])
    return cfg


def _coerce(key: str, old: Any, text: str) -> Any:
    """Parse ``text`` as YAML and convert it to the type of ``old`` (the value being replaced)."""
    try:
        new = yaml.safe_load(text) if text != "" else ""
    except yaml.YAMLError:
        new = text
    return _convert(key, old, new, text)


def _convert(key: str, old: Any, new: Any, text: str) -> Any:
    """Convert the parsed value ``new`` (from ``text``) to the type of ``old``; UserError if impossible."""
    if old is None:
        return new
    if key in AUTO_BOOL_KEYS:
        if new == "auto":
            return new
        old = False  # otherwise a boolean, whatever the value being replaced ("auto" is a str)
    if isinstance(old, bool):
        if isinstance(new, bool):
            return new
        if isinstance(new, int) and new in (0, 1):
            return bool(new)
        also = ", or auto" if key in AUTO_BOOL_KEYS else ""
        raise UserError(f"override {key}={text}: expected true or false{also}")
    if isinstance(old, int):
        if isinstance(new, bool):
            raise UserError(f"override {key}={text}: expected an integer")
        if isinstance(new, float) and new.is_integer():
            return int(new)
        if isinstance(new, str):  # e.g. "1e3" is a str to YAML 1.1
            try:
                as_float = float(new)
            except ValueError:
                as_float = None
            if as_float is not None and as_float.is_integer():
                return int(as_float)
        if isinstance(new, int):
            return new
        raise UserError(f"override {key}={text}: expected an integer")
    if isinstance(old, float):
        if isinstance(new, (int, float)) and not isinstance(new, bool):
            return float(new)
        if isinstance(new, str):
            try:
                return float(new)  # YAML 1.1 reads "1e-3" as a string
            except ValueError:
                pass
        raise UserError(f"override {key}={text}: expected a number")
    if isinstance(old, str):
        return new if isinstance(new, str) else text
    if isinstance(old, list):
        if isinstance(new, list):
            return new
        raise UserError(f"override {key}={text}: expected a list, e.g. {key}=[1,2]")
    if isinstance(old, dict):
        if isinstance(new, dict):
            return new
        raise UserError(f"override {key}={text}: expected a mapping, e.g. {key}={{a: 1}}")
    return new


def override_file_items(path: PathLike) -> list[str]:
    """A YAML of config sections with the keys to change (e.g. ``loss: {margin: 0.5}``) as override items.

    Why a file: a recipe variant that changes several settings of any model config (large-margin
    fine-tuning: longer crops, larger margin, lower LR) is kept in one small YAML beside the configs,
    instead of a copy of every model config. Keys must exist, as for ``--override``.
    """
    import json

    path = Path(path)
    raw = _read_yaml(path, "override file")
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise UserError(f"{path}: expected sections of keys, e.g. 'train: {{lr: 1.0e-4}}'")
    return [f"{s}.{k}={json.dumps(v)}" for s, keys in raw.items() for k, v in keys.items()]


def apply_overrides(cfg: dict, overrides: Iterable[str] | str | None) -> dict:
    """Apply dotted ``a.b.c=value`` overrides in place; unknown keys are a :class:`UserError`.

    ``overrides`` is a list of items or one string with space-separated items (shell quoting allowed).
    """
    if overrides is None:
        return cfg
    items = shlex.split(overrides) if isinstance(overrides, str) else list(overrides)
    for item in items:
        if "=" not in item:
            raise UserError(f"override '{item}': expected section.key=value (e.g. train.lr=1e-3)")
        key, text = item.split("=", 1)
        parts = key.strip().split(".")
        node = cfg
        for depth, part in enumerate(parts):
            if not isinstance(node, dict) or part not in node:
                where = ".".join(parts[:depth]) or "the config"
                known = ", ".join(sorted(node)) if isinstance(node, dict) else "none"
                raise UserError(f"override '{key}': no key '{part}' in {where} (known: {known})")
            if depth == len(parts) - 1:
                node[part] = _coerce(key, node[part], text.strip())
            else:
                node = node[part]
    return cfg


def _check_train(t: dict, path: PathLike) -> None:
    """Range checks of the ``train:`` section (one line naming the key)."""
    positive = ("crop_frames", "batch_size", "grad_accum", "max_epochs", "val_every_epochs", "lr_patience",
                "stop_patience", "log_every_steps", "val_max_frames", "val_batch_size")
    for k in positive:
        if t[k] < 1:
            raise UserError(f"{path}: train.{k}={t[k]} must be >= 1")
    for k in ("min_frames", "ckpt_every_steps", "num_workers", "num_threads", "weight_decay", "min_lr",
              "margin_warmup_epochs", "keep_epoch_models", "lr_warmup_epochs"):
        if t[k] < 0:
            raise UserError(f"{path}: train.{k}={t[k]} must be >= 0")
    if not t["lr"] > 0 or not 0 < t["lr_factor"] <= 1:
        raise UserError(f"{path}: need train.lr > 0 and 0 < train.lr_factor <= 1")
    if t["lr_schedule"] not in LR_SCHEDULES:
        raise UserError(f"{path}: train.lr_schedule={t['lr_schedule']} is not one of "
                        f"{', '.join(LR_SCHEDULES)}")
    if t["lr_schedule"] == "cosine" and not (t["min_lr"] < t["lr"]
                                             and t["lr_warmup_epochs"] < t["max_epochs"]):
        raise UserError(f"{path}: train.lr_schedule=cosine needs train.min_lr < train.lr and "
                        "train.lr_warmup_epochs < train.max_epochs")
    from dmha.models.config import check_bf16_setting

    check_bf16_setting(t["bf16"], f"{path}: train.bf16")
    check_bf16_setting(t["partial_reads"], f"{path}: train.partial_reads")


def save_config(cfg: dict, path: PathLike) -> None:
    """Write the resolved config atomically (sections in the canonical order).

    An identical file is left untouched: a resumed (or finished) training rewrites its config.yaml, and a
    new mtime would make stage 4's extraction stamps (which key on it) redo every embedding.
    """
    ordered = {s: cfg.get(s, {}) for s in SECTIONS}
    ordered.update({s: cfg[s] for s in EXTRA_SECTIONS if s in cfg})
    write_text_if_changed(path, yaml.safe_dump(ordered, sort_keys=False, default_flow_style=None))


def config_diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two configs (for resume checks and log lines)."""
    out: list[str] = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        name = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_diff(a, b, name + ".")
        elif a != b:
            out.append(f"{name}: {a!r} -> {b!r}")
    return out
