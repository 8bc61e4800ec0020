"""Time one training step (forward + backward, model + loss) of a config's model on CPU.

Used to size the mini-recipe models: they must train in minutes on 2 CPU cores.

    python bench/model_cpu_time.py egs/mini/conf/dmha.yaml --batch 64 --frames 200 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import yaml

from dmha.models import build_model, count_parameters
from dmha.models.losses import build_loss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", help="YAML config with model: and loss: sections")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--speakers", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    with open(args.config) as f:
        cfg = yaml.safe_load(f)
    torch.manual_seed(0)
    model = build_model(cfg.get("model"), args.speakers).train()
    loss_fn = build_loss(cfg.get("loss"), model.embed_dim, args.speakers)
    feats = torch.randn(args.batch, args.frames, 80)
    lengths = torch.full((args.batch,), args.frames)
    labels = torch.randint(0, args.speakers, (args.batch,))
    times = []
    for i in range(args.repeats + 1):  # the first step warms up allocators and kernels
        t0 = time.perf_counter()
        loss, _ = loss_fn(model(feats, lengths), labels)
        loss.backward()
        if i:
            times.append(time.perf_counter() - t0)
    counts = model.parameter_counts()
    print(f"{args.config}: params {counts} + classifier {count_parameters(loss_fn)}; "
          f"pooled dim {model.pooling.get_out_dim()}")
    print(f"batch {args.batch} x {args.frames} frames, {args.threads} threads: forward+backward "
          f"median {statistics.median(times):.3f} s (min {min(times):.3f}, max {max(times):.3f}, "
          f"{args.repeats} steps)")


if __name__ == "__main__":
    main()
