"""The training loop (SPEC §3): Adam + AM-Softmax on random crops, validation EER, exact resume, DDP.

Design choices and why:
* **Exact resume.** ``exp/ckpt.pt`` holds model, loss head, optimizer (incl. LR), epoch, step, best EER,
  patience counters, history and RNG states; it is written atomically every ``train.ckpt_every_steps``
  optimizer steps and at every epoch end. The data order and crops are a pure function of
  (seed, epoch) (:func:`dmha.training.dataset.epoch_plan`) and the torch RNG (head dropout) is re-seeded
  from (seed, step, rank) before every step, so a run killed at any point and restarted produces the
  same weights as an uninterrupted one (CPU, same thread count).
* **One code path for 1..N processes.** Under torchrun every rank derives the same plan and takes
  its share of each step's batch; ``train.batch_size`` is the effective batch of one optimizer step
  (all ranks x ``train.grad_accum`` micro-batches), so the recipe means the same thing at any scale.
  Rank 0 validates, logs and writes files; results are broadcast so every rank takes the same
  LR/stop decisions.
* **Validation** embeds whole utterances with :func:`dmha.embed.batched.embed_feature_list` (the code
  extraction uses) and scores cosine trials with :func:`dmha.scoring.metrics.compute_metrics` (the code
  scoring uses), so the validation EER means what the final EER means.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from dmha.common.device import use_deterministic_kernels
from dmha.common.errors import UserError
from dmha.common.fileio import atomic_open, exclusive_lock, read_kv, write_text_if_changed
from dmha.config import config_diff, save_config
from dmha.data.trials import Trials, read_trials
from dmha.embed.batched import embed_feature_list
from dmha.features.cmn_table import CmnTable, load_tables, missing_tables
from dmha.features.config import FbankConfig
from dmha.features.stage import check_stored_features
from dmha.models.precision import bf16_autocast, describe, resolve_bf16
from dmha.scoring.cosine import cosine_scores
from dmha.scoring.metrics import compute_metrics
from dmha.training.averaging import prune_snapshots, snapshot_path
from dmha.training.checkpoint import get_rng_state, load_checkpoint, save_checkpoint, set_rng_state
from dmha.training.curves import plot_training_curves
from dmha.training.dataset import (
    PARTIAL_NORMS,
    CropDataset,
    ScpFeatures,
    TrainList,
    check_batch_split,
    collate_crops,
    epoch_plan,
    read_train_list,
    step_batches,
)
from dmha.training.distributed import DistInfo, all_reduce_sum, broadcast_float, sync_buffers
from dmha.training.schedule import cosine_lr, margin_at

log = logging.getLogger("dmha.training.loop")

CKPT = "ckpt.pt"
BEST = "best.pt"
CSV_FIELDS = ["epoch", "step", "loss", "acc", "val_eer", "val_mindcf", "lr", "time", "margin"]
# Sections whose change makes an existing checkpoint meaningless (resume refuses; use a new exp dir).
FROZEN_SECTIONS = ("features", "model", "loss")


class SpeakerClassifier(nn.Module):
    """Model + loss head as one module, so DDP synchronises the class weights too."""

    def __init__(self, model: nn.Module, loss: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.loss = loss

    def forward(self, feats: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.loss(self.model(feats, None), labels)


def step_seed(seed: int, step: int, rank: int) -> int:
    """Torch seed for optimizer step ``step`` on ``rank``: resumable without saving generator state."""
    return int(np.random.SeedSequence([int(seed), int(step), int(rank)]).generate_state(1)[0])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class ValidationSet:
    """Validation trials and the raw features of every utterance they mention (read at each use)."""

    def __init__(self, lists_dir: Path) -> None:
        trials = read_trials(lists_dir / "val_trials")
        scp = read_kv(lists_dir / "val_feats.scp")
        utts = sorted(set(trials.enroll) | set(trials.test))
        missing = [u for u in utts if u not in scp]
        if missing:
            raise UserError(f"{lists_dir}/val_feats.scp: no features for '{missing[0]}' "
                            f"({len(missing)} trial utterances missing); re-run steps/prepare_lists.sh")
        index = {u: i for i, u in enumerate(utts)}
        self.enroll = np.array([index[u] for u in trials.enroll])
        self.test = np.array([index[u] for u in trials.test])
        self.labels = trials.labels
        self.utts = utts  # row i of the embeddings is utts[i]
        self.feats = ScpFeatures(utts, [scp[u] for u in utts])  # read on use, not kept in memory
        self.domains = self._domain_masks(lists_dir / "val_utt2domain", trials, utts)

    @staticmethod
    def _domain_masks(path: Path, trials: Trials, utts: list[str]) -> dict[str, np.ndarray]:
        """Trials whose two sides share a domain, per domain (empty without ``val_utt2domain``).

        Why: a validation set of real and synthetic speakers (mini corpus version 5) has many
        cross-domain non-target pairs that any model rejects; pooled with the others they blur what
        model selection and the LR halvings look at (the pooled validation EER of version 5 jumped
        between epochs: README). A domain needs target and non-target trials of its own, or it cannot
        have an EER.
        """
        if not path.is_file():
            return {}
        utt2domain = read_kv(path)
        missing = [u for u in utts if u not in utt2domain]
        if missing:
            raise UserError(f"{path}: no domain for '{missing[0]}'; re-run steps/prepare_lists.sh")
        enroll = np.array([utt2domain[u] for u in trials.enroll])
        test = np.array([utt2domain[u] for u in trials.test])
        masks = {}
        for d in sorted(set(enroll) | set(test)):
            mask = (enroll == d) & (test == d)
            n_target = int(trials.labels[mask].sum())
            if n_target == 0 or n_target == int(mask.sum()):
                raise UserError(f"{path}: the validation trials of domain '{d}' need target and non-target "
                                f"pairs ({n_target} of {int(mask.sum())} are target)")
            masks[d] = mask
        return masks

    def evaluate(self, model: nn.Module, device: torch.device, tcfg: dict, norm: str) -> dict:
        """EER/minDCF of the validation trials; with domains, the mean over the domains' own trials
        (their figures under ``domains``; ``trials`` counts the trials that were scored)."""
        emb = embed_feature_list(model, self.feats, device, max_frames_per_batch=tcfg["val_max_frames"],
                                 batch_size=tcfg["val_batch_size"], norm=norm,
                                 bf16=resolve_bf16(tcfg["bf16"], device), lengths=self.feats.lengths)
        scores = cosine_scores(emb, self.enroll, self.test)
        if not self.domains:
            return {**compute_metrics(scores, self.labels), "trials": len(self.labels)}
        per = {d: compute_metrics(scores[m], self.labels[m]) for d, m in self.domains.items()}
        return {"eer": float(np.mean([r["eer"] for r in per.values()])),
                "mindcf_0.01": float(np.mean([r["mindcf_0.01"] for r in per.values()])),
                "trials": int(sum(m.sum() for m in self.domains.values())), "domains": per}


def _new_state(lr: float) -> dict[str, Any]:
    return {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "best_eer": math.inf, "best_epoch": -1,
            "bad_validations": 0, "stopped_early": False, "finished": False, "elapsed": 0.0,
            "epoch_sums": [0.0, 0.0, 0.0], "history": [], "lr": lr}


@contextlib.contextmanager
def _train_log(exp_dir: Path, info: DistInfo):
    """Rank 0 appends the dmha log to exp/train.log for the duration of training; other ranks are quiet."""
    logger = logging.getLogger("dmha")
    if not info.is_main:
        logger.setLevel(logging.WARNING)
        yield
        return
    fh = logging.FileHandler(exp_dir / "train.log")
    fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    logger.addHandler(fh)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(fh)
        fh.close()


def _write_metrics(exp_dir: Path, history: list[dict], name: str) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in CSV_FIELDS})
    with atomic_open(exp_dir / "metrics.csv") as f:
        f.write(buf.getvalue())
    plot_training_curves(history, exp_dir / "training.png", title=name)


def _check_resume_config(exp_dir: Path, cfg: dict) -> None:
    saved_path = exp_dir / "config.yaml"
    if not saved_path.is_file():
        return
    import yaml
    with open(saved_path, encoding="utf-8") as f:
        saved = yaml.safe_load(f) or {}
    frozen = [d for s in FROZEN_SECTIONS for d in config_diff({s: saved.get(s, {})}, {s: cfg.get(s, {})})]
    if frozen:
        raise UserError(f"{exp_dir}: the checkpoint was trained with a different config ({frozen[0]}); "
                        "use a new exp dir or delete this one to start over")
    for d in config_diff({"train": saved.get("train", {})}, {"train": cfg.get("train", {})}):
        log.warning("resuming with a changed training setting: %s", d)


@dataclass
class TrainOutcome:
    """What :func:`train` leaves behind in memory: the final state dict and the trained module."""

    state: dict[str, Any]
    net: SpeakerClassifier


def train(cfg: dict, lists_dir: str | Path, exp_dir: str | Path, info: DistInfo) -> TrainOutcome:
    """Train (or resume, or report that training is done) in ``exp_dir``."""
    exp_dir = Path(exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    # Rank 0 owns the exp dir's files: a second training started there stops before touching them.
    lock = (exclusive_lock(exp_dir / ".train.lock", f"training in {exp_dir}") if info.is_main
            else contextlib.nullcontext())
    with lock, _train_log(exp_dir, info):
        return _train(cfg, Path(lists_dir), exp_dir, info)


def _train(cfg: dict, lists_dir: Path, exp_dir: Path, info: DistInfo) -> TrainOutcome:
    from dmha.models import build_model
    from dmha.models.losses import build_loss

    tcfg = cfg["train"]
    if tcfg["num_threads"] > 0:
        torch.set_num_threads(int(tcfg["num_threads"]))
    device = info.device
    if tcfg["deterministic"]:
        log.info("kernels: %s", use_deterministic_kernels(device))
    micro = check_batch_split(tcfg["batch_size"], tcfg["grad_accum"], info.world_size)

    for name in ("train.list", "train_feats.scp", "spk2int", "val_trials", "val_feats.scp"):
        if not (lists_dir / name).is_file():
            raise UserError(f"{lists_dir}/{name}: missing; run steps/prepare_lists.sh (stage 2) first")
    check_stored_features(lists_dir, FbankConfig.from_dict(cfg["features"]), "the config",
                          "re-run stages 1-2 with this config (run.sh --stage 1), or restore the config's "
                          "features: section")
    spk2int = read_kv(lists_dir / "spk2int")
    num_classes = len(spk2int)
    train_list = read_train_list(lists_dir / "train.list", lists_dir / "train_feats.scp")
    n_steps = len(train_list) // tcfg["batch_size"]
    if n_steps == 0:
        raise UserError(f"{lists_dir}/train.list: {len(train_list)} utterances, fewer than one batch of "
                        f"train.batch_size={tcfg['batch_size']}; lower the batch size")

    ckpt_path = exp_dir / CKPT
    resuming = ckpt_path.is_file()
    if resuming:
        _check_resume_config(exp_dir, cfg)
    if info.is_main:
        # both left untouched when identical, so a resumed run keeps stage 4's stamps valid
        save_config(cfg, exp_dir / "config.yaml")
        write_text_if_changed(exp_dir / "spk2int", (lists_dir / "spk2int").read_text(encoding="utf-8"))

    seed_everything(int(tcfg["seed"]))
    model = build_model(cfg["model"], num_classes)
    loss_head = build_loss(cfg["loss"], model.embed_dim, num_classes)
    net = SpeakerClassifier(model, loss_head).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=tcfg["lr"], weight_decay=tcfg["weight_decay"])
    state = _new_state(tcfg["lr"])

    if not resuming and tcfg["init_from"]:
        init_weights(net, Path(tcfg["init_from"]), device)
    if resuming:
        ckpt = load_checkpoint(ckpt_path, map_location=device)
        net.load_state_dict(ckpt["net"])
        optimizer.load_state_dict(ckpt["optimizer"])
        state = ckpt["state"]
        set_rng_state(ckpt["rng"])
        log.info("resuming from %s: epoch %d, step %d of the epoch (global step %d), best EER %.3f%%",
                 ckpt_path, state["epoch"], state["step_in_epoch"], state["global_step"], state["best_eer"])
    else:
        n_params = sum(p.numel() for p in model.parameters())
        log.info("new run in %s: %d speakers, %d training utterances, %d steps/epoch, micro-batch %d x %d "
                 "accumulation x %d processes, model %.2f M parameters, device %s",
                 exp_dir, num_classes, len(train_list), n_steps, micro, tcfg["grad_accum"], info.world_size,
                 n_params / 1e6, device)

    if state["finished"] and (state["stopped_early"] or state["epoch"] >= tcfg["max_epochs"]):
        log.info("training in %s is already finished (epoch %d, best validation EER %.3f%% at epoch %d); "
                 "nothing to do", exp_dir, state["epoch"], state["best_eer"], state["best_epoch"])
        return TrainOutcome(state, net)
    state["finished"] = False
    # A resumed run may have a changed train.lr only if it was never decayed; the optimizer's LR wins.
    state["lr"] = optimizer.param_groups[0]["lr"]

    ddp_net: nn.Module = net
    if info.distributed:
        ddp_net = nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None)
    val_set = ValidationSet(lists_dir) if info.is_main else None
    dataset = CropDataset(train_list, tcfg["crop_frames"], norm=cfg["features"]["norm"],
                          cache=tcfg["cache_feats"],
                          table=partial_read_table(tcfg, cfg["features"]["norm"], train_list))
    autocast = bf16_autocast(resolve_bf16(tcfg["bf16"], device), device)
    log.info("precision: %s", describe(tcfg["bf16"], device))
    accum = tcfg["grad_accum"]
    final_margin = getattr(loss_head, "margin", None)
    warmup_steps = tcfg["margin_warmup_epochs"] * n_steps
    cosine = tcfg["lr_schedule"] == "cosine"
    lr_warmup_steps, total_steps = tcfg["lr_warmup_epochs"] * n_steps, tcfg["max_epochs"] * n_steps

    while state["epoch"] < tcfg["max_epochs"]:
        epoch = state["epoch"]
        order, offsets = epoch_plan(train_list.num_frames, tcfg["crop_frames"], tcfg["seed"], epoch)
        batches = step_batches(order, offsets, tcfg["batch_size"], accum, info.rank, info.world_size,
                               start_step=state["step_in_epoch"])
        loader = DataLoader(dataset, batch_sampler=batches, collate_fn=collate_crops,
                            num_workers=tcfg["num_workers"], pin_memory=device.type == "cuda",
                            worker_init_fn=_worker_init)
        ddp_net.train()
        t_start = time.time()
        bar = tqdm(total=n_steps, initial=state["step_in_epoch"], desc=f"epoch {epoch + 1}",
                   disable=not info.is_main, dynamic_ncols=True, file=sys.stderr,
                   mininterval=1.0 if sys.stderr.isatty() else 30.0)
        sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss*n, correct, n (this step)
        for i, (feats, labels) in enumerate(loader):
            if i % accum == 0:
                torch.manual_seed(step_seed(tcfg["seed"], state["global_step"], info.rank))
                optimizer.zero_grad(set_to_none=True)
                if final_margin is not None and warmup_steps > 0:
                    loss_head.margin = margin_at(state["global_step"], final_margin, warmup_steps)
                if cosine:
                    state["lr"] = cosine_lr(state["global_step"], tcfg["lr"], tcfg["min_lr"], lr_warmup_steps,
                                            total_steps)
                    for g in optimizer.param_groups:
                        g["lr"] = state["lr"]
            feats = feats.to(device, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
            last = i % accum == accum - 1
            sync = ddp_net.no_sync() if (info.distributed and not last) else contextlib.nullcontext()
            with sync:
                with autocast:
                    loss, logits = ddp_net(feats, labels)
                (loss.float() / accum).backward()
            with torch.no_grad():
                sums[0] += loss.detach().double() * len(labels)
                sums[1] += (logits.argmax(1) == labels).sum()
                sums[2] += len(labels)
            if not last:
                continue
            optimizer.step()
            all_reduce_sum(sums, info)
            state["epoch_sums"] = [a + b for a, b in zip(state["epoch_sums"], sums.tolist())]
            sums.zero_()
            state["global_step"] += 1
            state["step_in_epoch"] += 1
            bar.update(1)
            es = state["epoch_sums"]
            if info.is_main and state["global_step"] % tcfg["log_every_steps"] == 0:
                log.info("epoch %d step %d/%d: loss %.4f acc %.2f%% lr %.2e", epoch + 1,
                         state["step_in_epoch"], n_steps, es[0] / es[2], 100 * es[1] / es[2], state["lr"])
            bar.set_postfix(loss=f"{es[0] / es[2]:.3f}", acc=f"{100 * es[1] / es[2]:.1f}%", refresh=False)
            if (tcfg["ckpt_every_steps"] > 0 and state["global_step"] % tcfg["ckpt_every_steps"] == 0
                    and state["step_in_epoch"] < n_steps):
                state["elapsed"] += time.time() - t_start
                t_start = time.time()
                _save(net, optimizer, state, exp_dir, info)
        bar.close()
        state["elapsed"] += time.time() - t_start
        _end_of_epoch(net, optimizer, state, cfg, val_set, exp_dir, info)
        if state["stopped_early"]:
            break

    state["finished"] = True
    _save(net, optimizer, state, exp_dir, info)
    log.info("training finished after %d epochs (%s); best validation EER %.3f%% at epoch %d; model %s",
             state["epoch"], "early stop" if state["stopped_early"] else "max_epochs", state["best_eer"],
             state["best_epoch"], exp_dir / BEST)
    return TrainOutcome(state, net)


def partial_read_table(tcfg: dict, norm: str, train_list: TrainList) -> CmnTable | None:
    """The CMN side tables for partial reads, or None for whole-utterance reads (``train.partial_reads``).

    ``auto`` uses them when every ark has one (and the features are neither cached nor CMVN'd); a table
    that exists but does not match its archive is an error either way, found here, before training.
    """
    setting = tcfg["partial_reads"]
    if setting is False or setting == "false":
        return None
    if setting == "auto":
        why = ("train.cache_feats is on" if tcfg["cache_feats"] else
               f"feature norm '{norm}' needs the whole utterance" if norm not in PARTIAL_NORMS else None)
        missing = [] if why else missing_tables(train_list.feats)
        if why or missing:
            log.info("data: whole-utterance reads (%s)",
                     why or f"no CMN side table such as {missing[0]}; "
                     "python -m dmha.bin.cmn_stats writes them")
            return None
    elif tcfg["cache_feats"]:
        raise UserError("train.partial_reads=true and train.cache_feats=true exclude each other; drop one")
    table = load_tables(train_list.utts, train_list.feats, train_list.num_frames)
    log.info("data: partial reads (only each crop's rows; CMN means from %d side tables)", len(table.arks))
    return table


def _split_net(sd: dict) -> tuple[dict, dict]:
    """A ckpt.pt ``net`` state dict -> (model weights, loss weights)."""
    model = {k[len("model."):]: v for k, v in sd.items() if k.startswith("model.")}
    loss = {k[len("loss."):]: v for k, v in sd.items() if k.startswith("loss.")}
    return model, loss


def init_weights(net: SpeakerClassifier, path: Path, device: torch.device) -> None:
    """Load another run's model and classifier weights into ``net`` (``train.init_from``; step 0 only).

    ``path`` is a ``best.pt`` (model + loss weights) or a ``ckpt.pt`` (its final weights). A ``best.pt``
    written before it held the classifier takes the classifier of the ``ckpt.pt`` beside it when that
    checkpoint's model is the best model (the last epoch was the best); otherwise point init_from at the
    ckpt.pt. Starting a margin fine-tuning from a random classifier would undo what the model learnt.
    """
    ck = load_checkpoint(path, map_location=device)
    if "net" in ck:
        model_sd, loss_sd = _split_net(ck["net"])
    elif "model" in ck:
        model_sd, loss_sd = ck["model"], ck.get("loss")
        beside = path.parent / CKPT
        if loss_sd is None and beside.is_file() and beside.resolve() != path.resolve():
            other_model, other_loss = _split_net(load_checkpoint(beside, map_location=device)["net"])
            if other_model.keys() == model_sd.keys() and all(torch.equal(other_model[k], model_sd[k])
                                                             for k in model_sd):
                loss_sd = other_loss
    else:
        raise UserError(f"{path}: not a dmha checkpoint (no model weights); train.init_from needs a best.pt "
                        "or ckpt.pt")
    if loss_sd is None:
        beside = path.parent / CKPT
        raise UserError(f"{path} holds no classifier weights (written by an older dmha) and {beside} is not "
                        f"of the same epoch; set train.init_from={beside}")
    want = net.loss.weight.shape
    got = tuple(loss_sd["weight"].shape) if "weight" in loss_sd else ("?", "?")
    if got != tuple(want):
        raise UserError(f"{path}: its classifier is {got[0]} speakers x {got[1]}, these lists and config "
                        f"{want[0]} x {want[1]}; fine-tune on the lists it was trained on")
    try:
        net.model.load_state_dict(model_sd)
        net.loss.load_state_dict(loss_sd)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise UserError(f"{path}: its weights do not fit this config's model ({first[:160]}); the model "
                        "section must equal that of the run it comes from") from None
    log.info("initialised model and classifier from %s", path)


def _worker_init(worker_id: int) -> None:
    """DataLoader workers: deterministic seeds (the crops themselves come from the epoch plan)."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def _end_of_epoch(net: SpeakerClassifier, optimizer: torch.optim.Optimizer, state: dict, cfg: dict,
                  val_set: ValidationSet | None, exp_dir: Path, info: DistInfo) -> None:
    """Close the epoch: validate (every ``val_every_epochs``), keep the best model, LR/stop, checkpoint."""
    tcfg = cfg["train"]
    sync_buffers(net, info)
    state["epoch"] += 1
    state["step_in_epoch"] = 0
    es = state["epoch_sums"]
    row = {"epoch": state["epoch"], "step": state["global_step"], "loss": round(es[0] / max(es[2], 1), 6),
           "acc": round(es[1] / max(es[2], 1), 6), "val_eer": None, "val_mindcf": None,
           "lr": state["lr"], "time": round(state["elapsed"], 2),
           "margin": round(float(getattr(net.loss, "margin", math.nan)), 4)}
    state["epoch_sums"] = [0.0, 0.0, 0.0]
    validate = state["epoch"] % tcfg["val_every_epochs"] == 0 or state["epoch"] >= tcfg["max_epochs"]
    if validate:
        eer, mindcf = math.nan, math.nan
        t0 = time.time()
        if info.is_main:
            metrics = val_set.evaluate(net.model, info.device, tcfg, cfg["features"]["norm"])
            eer, mindcf = float(metrics["eer"]), float(metrics["mindcf_0.01"])
            per_domain = "".join(f"; {d} EER {r['eer']:.3f}%" for d, r in metrics.get("domains", {}).items())
            log.info("validation: EER %.3f%% minDCF(0.01) %.4f%s (%d trials%s, %.1f s)", eer, mindcf,
                     " (mean of the domains)" + per_domain if per_domain else "", metrics["trials"],
                     " within a domain" if per_domain else "", time.time() - t0)
        eer = broadcast_float(eer, info)
        state["elapsed"] += time.time() - t0
        row["time"] = round(state["elapsed"], 2)
        mindcf = broadcast_float(mindcf, info)
        row["val_eer"], row["val_mindcf"] = round(eer, 4), round(mindcf, 5)
        if eer < state["best_eer"]:
            state["best_eer"], state["best_epoch"], state["bad_validations"] = eer, state["epoch"], 0
            if info.is_main:
                save_checkpoint({"model": net.model.state_dict(), "loss": net.loss.state_dict(),
                                 "epoch": state["epoch"],
                                 "step": state["global_step"], "val_eer": eer,
                                 "embed_dim": int(net.model.embed_dim)}, exp_dir / BEST)
                log.info("new best model (EER %.3f%%) -> %s", eer, exp_dir / BEST)
        else:
            state["bad_validations"] += 1
            if tcfg["lr_schedule"] == "plateau" and state["bad_validations"] % tcfg["lr_patience"] == 0:
                new_lr = max(state["lr"] * tcfg["lr_factor"], tcfg["min_lr"])
                for g in optimizer.param_groups:
                    g["lr"] = new_lr
                log.info("%d validations without improvement: LR %.2e -> %.2e", state["bad_validations"],
                         state["lr"], new_lr)
                state["lr"] = new_lr
            if state["bad_validations"] >= tcfg["stop_patience"]:
                state["stopped_early"] = True
                log.info("%d validations without improvement: early stop", state["bad_validations"])
    state["history"].append(row)
    if info.is_main and tcfg["keep_epoch_models"] > 0:
        _save_epoch_model(net, state, row, exp_dir, tcfg["keep_epoch_models"])
    if info.is_main:
        log.info("epoch %d done: loss %.4f acc %.2f%% %s(%.0f s so far)", state["epoch"], row["loss"],
                 100 * row["acc"], f"val EER {row['val_eer']:.3f}% " if validate else "", state["elapsed"])
        _write_metrics(exp_dir, state["history"], exp_dir.name)
    _save(net, optimizer, state, exp_dir, info)


def _save_epoch_model(net: SpeakerClassifier, state: dict, row: dict, exp_dir: Path, keep: int) -> None:
    """``models/epoch_<N>.pt`` (weights only, best.pt format) for checkpoint averaging; prune old ones.

    Written before the epoch's full checkpoint: a run killed in between redoes the epoch and rewrites
    the same snapshot, so no epoch is left without one.
    """
    save_checkpoint({"model": net.model.state_dict(), "epoch": state["epoch"], "step": state["global_step"],
                     "val_eer": row["val_eer"], "embed_dim": int(net.model.embed_dim)},
                    snapshot_path(exp_dir, state["epoch"]))
    val_eers = {int(r["epoch"]): r.get("val_eer") for r in state["history"]}
    deleted = prune_snapshots(exp_dir, val_eers, keep)
    if deleted:
        log.info("epoch models: removed epoch(s) %s (train.keep_epoch_models=%d keeps the %d latest and the "
                 "%d best)", ", ".join(map(str, deleted)), keep, keep, keep)


def _save(net: nn.Module, optimizer: torch.optim.Optimizer, state: dict, exp_dir: Path,
          info: DistInfo) -> None:
    """Full-state checkpoint, written by rank 0 (all ranks hold the same state)."""
    if info.is_main:
        save_checkpoint({"net": net.state_dict(), "optimizer": optimizer.state_dict(), "state": state,
                         "rng": get_rng_state()}, exp_dir / CKPT)
