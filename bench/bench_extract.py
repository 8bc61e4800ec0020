"""Benchmark: batched vs batch-1 embedding extraction (utterances/s and peak memory), markdown table.

Both modes run the stage-4 code path (:func:`dmha.embed.xvectors.embed_utterances`, i.e. the length-sorted,
padded, masked batches of :func:`dmha.embed.batched.embed_feature_list`) on the same synthetic log-mel
utterances with the mini recipe's model (egs/mini/conf/dmha.yaml, random weights: speed does not
depend on them). Each mode runs in its own fresh process so its peak memory is its own: peak RSS of
the process on CPU (getrusage), peak allocated CUDA memory on GPU. It also checks that both modes give
the same embeddings (min cosine).

Why batching may gain little on a CPU: batching removes per-call overhead and fills idle compute
units, but it cannot remove arithmetic (padding adds some). So the bench also counts the model's
floating-point operations (torch.utils.flop_counter, an untimed pass) and measures the device's peak
with a large matrix product in the same dtype and thread count: ``peak / (batch-1 GFLOP/s)`` is an
upper bound on the speed-up ANY batching can give on that device. On a GPU batch-1 leaves most of the
device idle and the bound is large; on a small CPU it can be close to 1.

    python bench/bench_extract.py                        # 200 utterances of 1-6 s, CPU or CUDA
    python bench/bench_extract.py --device cuda --n-utts 2000 --batch-frames 60000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _features(n: int, seed: int, min_frames: int, max_frames: int, n_mels: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_frames, max_frames + 1, size=n)
    return [(8.0 + rng.normal(0, 1.0, size=(int(t), n_mels))).astype(np.float32) for t in lengths]


def _worker(args: argparse.Namespace) -> None:
    """One mode in this process; prints a JSON line with timings, memory and the embeddings' file."""
    import torch
    import yaml

    from dmha.common.device import resolve_device
    from dmha.embed.xvectors import embed_utterances
    from dmha.models import build_model

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    with open(args.config, encoding="utf-8") as f:
        cfg = yaml.safe_load(f)
    torch.manual_seed(0)
    model = build_model(cfg["model"], 10).to(device).eval()
    n_mels = cfg["model"].get("in_dim", 80)
    feats = _features(args.n_utts, args.seed, args.min_frames, args.max_frames, n_mels)
    batch_size = 1 if args.worker == "single" else args.batch_size
    batch_frames = 1 if args.worker == "single" else args.batch_frames
    run = lambda fs: embed_utterances(model, fs, device=device, batch_frames=batch_frames,  # noqa: E731
                                      batch_size=batch_size, bf16=args.bf16)
    run(feats[: min(8, len(feats))])  # warm-up (cuDNN autotune, allocator, thread pools)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0, c0 = time.perf_counter(), time.process_time()
    emb = run(feats)
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    out = {"mode": args.worker, "seconds": dt, "utts_per_s": len(feats) / dt, "cpu_seconds": cpu,
           "frames": int(sum(f.shape[0] for f in feats)),
           "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "rss_before_mib": rss0 / 1024, "device": str(device),
           "gpu_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                        else f"{os.cpu_count()} CPUs"),
           "threads": torch.get_num_threads()}
    if device.type == "cuda":
        out["peak_cuda_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:  # untimed: counting slows the ops down
        run(feats)
    out["gflop"] = counter.get_total_flops() / 1e9
    np.save(args.emb_out, emb)
    print(json.dumps(out))


def _peak_gflops(args: argparse.Namespace) -> dict:
    """The device's matrix-product peak (GFLOP/s), same dtype and threads as the extraction modes."""
    import torch

    from dmha.common.device import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    n = 8192 if device.type == "cuda" else 2048
    dtype = torch.bfloat16 if args.bf16 else torch.float32
    name = str(dtype).replace("torch.", "")
    if device.type == "cuda" and dtype == torch.float32 and torch.backends.cudnn.allow_tf32:
        # cuDNN runs float32 convolutions on TF32 tensor cores by default, matrix products do not: the
        # peak must be measured with the model's arithmetic (on an H200 plain float32 ran ~49 TFLOP/s,
        # and batched extraction "reached 195% of the peak").
        torch.backends.cuda.matmul.allow_tf32 = True
        name = "float32 (TF32 tensor cores, as cuDNN's convolutions)"
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(6):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        (a @ b).sum().item()
        best = min(best, time.perf_counter() - t0)
    return {"peak_gflops": 2 * n**3 / best / 1e9, "n": n, "dtype": name}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(REPO / "egs/mini/conf/dmha.yaml"), help="model config YAML")
    p.add_argument("--device", default="auto")
    p.add_argument("--n-utts", type=int, default=200)
    p.add_argument("--min-frames", type=int, default=100, help="shortest utterance (default 1 s)")
    p.add_argument("--max-frames", type=int, default=600, help="longest utterance (default 6 s)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--batch-frames", type=int, default=0,
                   help="padded frames per batch (0: the stage's device default, 20000 CUDA / 2000 CPU)")
    p.add_argument("--bf16", action="store_true",
                   help="bf16 autocast (CPU or CUDA; the peak is then measured in bf16)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--worker", choices=("batched", "single", "peak"), help=argparse.SUPPRESS)
    p.add_argument("--emb-out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker == "peak":
        print(json.dumps(_peak_gflops(args)))
        return
    if args.worker:
        _worker(args)
        return

    import tempfile

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("batched", "single", "peak"):
            cmd = [sys.executable, __file__, "--worker", mode, "--emb-out", f"{tmp}/{mode}.npy"]
            for k in ("config", "device", "n_utts", "min_frames", "max_frames", "batch_size", "batch_frames",
                      "threads", "seed"):
                cmd += [f"--{k.replace('_', '-')}", str(getattr(args, k))]
            if args.bf16:
                cmd.append("--bf16")
            env = dict(os.environ, PYTHONPATH=str(REPO))
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                sys.exit(f"{mode} worker failed:\n{proc.stderr}")
            results[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
        a, b = np.load(f"{tmp}/batched.npy"), np.load(f"{tmp}/single.npy")
    peak = results["peak"]
    cos = np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    r_b, r_s = results["batched"], results["single"]
    mem_key = "peak_cuda_mib" if "peak_cuda_mib" in r_b else "peak_rss_mib"
    mem_name = "peak CUDA alloc (MiB)" if mem_key == "peak_cuda_mib" else "peak RSS (MiB)"
    print(f"# extraction bench: {args.n_utts} utterances of {args.min_frames}-{args.max_frames} frames "
          f"({r_b['frames']} frames), model {Path(args.config).name}, device {r_b['device']} "
          f"({r_b['gpu_name']}), torch threads {r_b['threads']}{', bf16' if args.bf16 else ''}\n")
    print(f"| mode | batch | utterances/s | wall s | CPU s (process) | GFLOP (model) | GFLOP/s | "
          f"{mem_name} |")
    print("|---|---|---|---|---|---|---|---|")
    frames = args.batch_frames or "device-default (2000 CPU / 20000 CUDA)"
    for name, r, batch in (("batched", r_b, f"{args.batch_size} utts / {frames} frames"),
                           ("batch-1", r_s, "1")):
        print(f"| {name} | {batch} | {r['utts_per_s']:.1f} | {r['seconds']:.2f} | {r['cpu_seconds']:.2f} | "
              f"{r['gflop']:.1f} | {r['gflop'] / r['seconds']:.1f} | {r[mem_key]:.0f} |")
    print(f"\nspeed-up batched / batch-1: {r_b['utts_per_s'] / r_s['utts_per_s']:.2f}x wall, "
          f"{r_s['cpu_seconds'] / r_b['cpu_seconds']:.2f}x CPU time; "
          f"min cosine(batched, batch-1) = {cos.min():.6f}; load average {os.getloadavg()[0]:.1f}")
    single_rate = r_s["gflop"] / r_s["seconds"]
    print(f"\ncompute bound: a {peak['dtype']} matrix product of {peak['n']}^3 peaks at "
          f"{peak['peak_gflops']:.0f} GFLOP/s here; batch-1 extraction already runs at "
          f"{single_rate:.0f} GFLOP/s, so no batching can be faster than "
          f"{peak['peak_gflops'] / single_rate:.1f}x batch-1 on this device (batched reached "
          f"{r_b['gflop'] / r_b['seconds'] / peak['peak_gflops']:.0%} of the peak)")


if __name__ == "__main__":
    main()
