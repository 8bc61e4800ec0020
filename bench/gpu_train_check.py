"""Training throughput with the REAL data loader: samples/s, time waiting for data, device utilisation,
peak device memory. Part of bench/gpu_check.sh.

It runs the training step of dmha.training.loop (model + AM-Softmax head, Adam, micro-batches with
gradient accumulation, optional bf16 autocast) fed by a DataLoader over :class:`CropDataset` on the
simulator's archives (bench/scale_sim.py: the utterances of its dense arks, partial reads when their
CMN side tables exist). So the loader and the device are measured together: ``data wait`` is the share
of the wall time the training loop spent waiting for the next batch (near 0: the device is the limit).

Device utilisation: ``torch.cuda.utilization()`` (needs pynvml) sampled every 0.2 s, else
``nvidia-smi``; "-" on CPU.

    python bench/gpu_train_check.py --sim /tmp/vox2sim --device cuda --bf16 true --workers 8
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


class UtilSampler:
    """Mean GPU utilisation (%) over the timed steps, sampled in a background thread."""

    def __init__(self, device) -> None:
        self.device, self.samples, self._stop = device, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _read(self) -> float | None:
        import torch

        try:
            return float(torch.cuda.utilization(self.device))
        except Exception:
            pass
        if shutil.which("nvidia-smi"):
            idx = self.device.index or 0
            out = subprocess.run(["nvidia-smi", "-i", str(idx), "--query-gpu=utilization.gpu",
                                  "--format=csv,noheader,nounits"], capture_output=True, text=True)
            try:
                return float(out.stdout.strip().splitlines()[0])
            except (ValueError, IndexError):
                return None
        return None

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            v = self._read()
            if v is not None:
                self.samples.append(v)

    def __enter__(self):
        if self.device.type == "cuda":
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    @property
    def mean(self) -> float | None:
        return float(np.mean(self.samples)) if self.samples else None


def dense_subset(lists: Path):
    """The training list restricted to utterances whose arks have CMN side tables (the dense arks)."""
    from dmha.features.arkrows import split_entry
    from dmha.features.cmn_table import table_path
    from dmha.training.dataset import TrainList, read_train_list

    full = read_train_list(lists / "train.list", lists / "train_feats.scp")
    has = {}
    keep = []
    for i, e in enumerate(full.feats):
        ark = split_entry(e)[0]
        if ark not in has:
            has[ark] = table_path(ark).is_file()
        if has[ark]:
            keep.append(i)
    if not keep:
        raise SystemExit(f"{lists}: no utterance in an ark with a CMN side table (run bench/scale_sim.py)")
    return TrainList([full.utts[i] for i in keep], full.labels[keep], full.num_frames[keep],
                     [full.feats[i] for i in keep]), int(full.labels.max()) + 1


def run(a: argparse.Namespace) -> dict:
    import torch
    from torch.utils.data import DataLoader
    from torch.utils.flop_counter import FlopCounterMode

    from dmha.common.device import resolve_device
    from dmha.config import load_config
    from dmha.features.cmn_table import load_tables
    from dmha.models import build_model
    from dmha.models.losses import build_loss
    from dmha.models.precision import bf16_autocast
    from dmha.training.dataset import CropDataset, collate_crops, epoch_plan, step_batches
    from dmha.training.loop import SpeakerClassifier

    device = resolve_device(a.device)
    cfg = load_config(a.config, a.override)
    tl, n_classes = dense_subset(Path(a.sim) / "vox2_train" / "lists")
    crop = cfg["train"]["crop_frames"]
    table = load_tables(tl.utts, tl.feats, tl.num_frames)
    ds = CropDataset(tl, crop, norm=cfg["features"]["norm"], table=table)
    batch = a.micro_batch * a.accum
    n_steps = a.warmup + a.steps
    order, offsets = epoch_plan(tl.num_frames, crop, 0, 0)
    order = np.tile(order, -(-n_steps * batch // len(order)))  # a small dense part: repeat the plan
    batches = step_batches(order[:n_steps * batch], offsets, batch, a.accum, 0, 1)
    loader = DataLoader(ds, batch_sampler=batches, collate_fn=collate_crops, num_workers=a.workers,
                        pin_memory=device.type == "cuda", prefetch_factor=4 if a.workers else None)
    torch.manual_seed(0)
    model = build_model(cfg["model"], n_classes)
    net = SpeakerClassifier(model, build_loss(cfg["loss"], model.embed_dim, n_classes)).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    autocast = bf16_autocast(a.bf16 == "true", device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    wait = 0.0
    t_start = None
    gflop = None
    it = iter(loader)
    with UtilSampler(device) as util:
        for step in range(n_steps):
            if step == a.warmup:
                sync()
                t_start, wait = time.perf_counter(), 0.0
                util.samples.clear()
            opt.zero_grad(set_to_none=True)
            for _ in range(a.accum):
                t0 = time.perf_counter()
                feats, labels = next(it)
                wait += time.perf_counter() - t0
                feats = feats.to(device, non_blocking=True)
                labels = labels.to(device, non_blocking=True)
                counting = step == 0 and gflop is None
                counter = FlopCounterMode(display=False) if counting else contextlib.nullcontext()
                with counter:  # the first micro-batch (untimed warm-up): the model's FLOPs per crop
                    with autocast:
                        loss, _ = net(feats, labels)
                    (loss.float() / a.accum).backward()
                if counting:
                    gflop = counter.get_total_flops() / 1e9 / len(labels)
            opt.step()
        sync()
        wall = time.perf_counter() - t_start
    return {
        "device": str(device), "bf16": a.bf16, "workers": a.workers, "micro_batch": a.micro_batch,
        "accum": a.accum, "steps": a.steps, "samples_s": a.steps * batch / wall, "data_wait": wait / wall,
        "util": util.mean, "peak_gb": (torch.cuda.max_memory_allocated(device) / 1e9
                                       if device.type == "cuda" else None),
        "gflop_per_crop": gflop, "tflops": gflop * a.steps * batch / wall / 1e3,
        "loss": float(loss.detach()), "utts": len(tl), "classes": n_classes, "partial_reads": True,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sim", required=True, help="bench/scale_sim.py output dir (with vox2_train/lists)")
    p.add_argument("--config", default=str(REPO / "egs/voxceleb/conf/dmha_k8.yaml"))
    p.add_argument("--override", default="", help="dotted config overrides (the dry run shrinks the model)")
    p.add_argument("--device", default="auto")
    p.add_argument("--bf16", choices=["true", "false"], default="false")
    p.add_argument("--micro-batch", type=int, default=64, help="default 64 (the paper's 64 x 2)")
    p.add_argument("--accum", type=int, default=2)
    p.add_argument("--workers", type=int, default=8, help="DataLoader worker processes")
    p.add_argument("--steps", type=int, default=20, help="timed optimizer steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed optimizer steps first")
    a = p.parse_args()
    a.warmup = max(1, a.warmup)  # the FLOP count runs in the first (untimed) step
    print(json.dumps(run(a)))


if __name__ == "__main__":
    main()
