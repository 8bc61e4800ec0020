"""Benchmark: training-step throughput of dmha's model vs the reference computation, markdown output.

One training step = forward + AM-Softmax loss + backward + Adam step (batch_size samples of
crop_frames frames, equal length as in training). Implementations ("variants"):

* ``ours``     — dmha.models.build_model + dmha.models.losses (through
  dmha.training.loop.SpeakerClassifier, the module the training loop steps), data moved per step,
  zero_grad(set_to_none=True);
* ``ref``      — bench/reference_model.py: the paper's model as its public reference code computes
  it (full K x K query product then the diagonal, reference AM-Softmax), reference-style loop
  (zero_grad, forward, loss, backward, step, loss.item());
* ``ours_cl``  — ours with ``model.channels_last: true`` (NHWC conv weights and input; CPU and CUDA).
  ``ours`` is built with ``channels_last: false`` whatever the config says, so the two rows
  separate the layout from the rest;
* ``ours_bf16`` — ours_cl under bf16 autocast, as dmha.training.loop runs it with ``train.bf16: true`` (or
  ``auto`` on a device with native bf16: the recipe configs' setting). Only in the default variant list
  where the device has native bf16 (dmha.models.precision.native_bf16). Its results are not bit-equal to
  float32: the check prints its deviation, and bench/quality.sh trains dmha both ways (dmha vs
  dmha_fp32) to show equal EER at the same budget.

Cases: ``paper`` (egs/voxceleb/conf/dmha_k32.yaml: VGG4L 128/256/512/1024, DMHA K = 32, 350 frames,
5994 classes; small batch on CPU) and ``mini`` (egs/mini/conf/dmha.yaml with its train batch/crop).
Both models use the reference's scalings (stage1_scale: reference, stage2_scale: false, no head
dropout) so they compute the same function; speed does not depend on those scalars.

Each (variant, round) runs in a fresh process so its peak memory (peak RSS on CPU, peak allocated
CUDA memory on GPU) is its own; the variants take turns round by round so load changes on a shared
machine hit all alike. Figures: the best (minimum) and median wall time per step over all timed
steps, and the process CPU time per step. On a shared CPU the best wall time and, with --threads 1,
the CPU time are the least noisy (other jobs' load only adds wall time; one thread does not
spin-wait); the median shows the spread. Also printed:

* equality: our weights copied into the reference model; pre-layer outputs and loss in train mode
  on the same unpadded batch, and again after one Adam step on each (max abs difference);
* pooling alone: forward + backward of the pooling layer on (B, T', D) frames, ours vs reference;
* where the time goes: torch.profiler self time per step (mean over --steps) of ``ours`` and ``ref``,
  grouped by op kind (a profile taken under load is noisy; compare shares, not milliseconds).

    python bench/bench_train.py                              # paper (batch 2) + mini, CPU
    nice python bench/bench_train.py --threads 1             # shared machine: CPU time is exact
    python bench/bench_train.py --cases paper --paper-batch 4 --steps 3 --rounds 2
    python bench/bench_train.py --device cuda --paper-batch 64 --steps 20
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

CASES = {
    "paper": {"config": "egs/voxceleb/conf/dmha_k32.yaml", "classes": 5994},
    "mini": {"config": "egs/mini/conf/dmha.yaml", "classes": 50},
}
REF_COMPAT = {"stage1_scale": "reference", "stage2_scale": False, "head_dropout": 0.0,
              "dense_variant": "reference"}


def _case_cfg(args: argparse.Namespace, case: str) -> dict:
    import yaml

    with open(REPO / CASES[case]["config"], encoding="utf-8") as f:
        raw = yaml.safe_load(f)
    model = {**raw["model"], **REF_COMPAT}
    train = raw.get("train") or {}
    if case == "paper":
        batch, frames = args.paper_batch, args.paper_frames or train.get("crop_frames", 350)
    else:
        batch, frames = args.mini_batch or train.get("batch_size", 32), train.get("crop_frames", 200)
    loss = raw.get("loss") or {}
    lr, wd = float(train.get("lr", 1e-4)), float(train.get("weight_decay", 1e-3))
    return {"model": model, "loss": loss, "batch": int(batch), "frames": int(frames),
            "classes": CASES[case]["classes"], "lr": lr, "wd": wd, "config": CASES[case]["config"]}


def _build(c: dict, variant: str, device):
    """Both models from one seed: ours built first, the reference gets a copy of its weights."""
    import torch
    from reference_model import RefAMSoftmax, RefSpeakerNet, copy_weights

    from dmha.models import build_model
    from dmha.models.losses import build_loss
    from dmha.training.loop import SpeakerClassifier

    torch.manual_seed(0)
    model = build_model({**c["model"], "channels_last": variant in ("ours_cl", "ours_bf16")}, c["classes"])
    loss = build_loss(c["loss"], model.embed_dim, c["classes"])
    if variant.startswith("ours"):
        return SpeakerClassifier(model, loss).to(device), None
    mcfg = model.cfg
    ref = RefSpeakerNet(mcfg.widths(), mcfg.pooling, mcfg.heads, mcfg.in_dim, mcfg.embed_dim)
    ref_loss = RefAMSoftmax(mcfg.embed_dim, c["classes"], margin=loss.margin, scale=loss.scale)
    copy_weights(model, loss, ref, ref_loss)
    del model, loss
    return ref.to(device), ref_loss.to(device)


def _step_fn(net, crit, variant: str, opt, device):
    """One training step as each code base writes it; returns a callable(feats_cpu, labels_cpu)."""
    import torch

    from dmha.models.precision import bf16_autocast

    if crit is None:  # ours: the loop of dmha.training.loop (set_to_none, loss/acc sums kept on the device)
        sums = torch.zeros(3, dtype=torch.float64, device=device)
        autocast = bf16_autocast(variant == "ours_bf16", device)

        def step(x, y):
            opt.zero_grad(set_to_none=True)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with autocast:
                loss, logits = net(x, y)
            loss.backward()
            with torch.no_grad():
                sums[0] += loss.detach().double() * len(y)
                sums[1] += (logits.argmax(1) == y).sum()
                sums[2] += len(y)
            opt.step()
            return sums.tolist()  # train.py reads the sums every step (all_reduce + tolist)
        return step

    def step(x, y):  # reference style
        opt.zero_grad()
        x, y = x.to(device), y.to(device)
        out = net(x)
        loss, logits = crit(out, y)
        loss.backward()
        opt.step()
        acc = (logits.argmax(1) == y).float().mean().item()
        return loss.item(), acc
    return step


def _training_step(c: dict, variant: str, device):
    """A fresh model of ``variant`` in train mode with its Adam optimizer: (step callable, parameters)."""
    import torch

    net, crit = _build(c, variant, device)
    params = list(net.parameters()) + (list(crit.parameters()) if crit is not None else [])
    opt = torch.optim.Adam(params, lr=c["lr"], weight_decay=c["wd"])
    net.train()
    return _step_fn(net, crit, variant, opt, device), sum(p.numel() for p in params)


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _worker_time(args: argparse.Namespace, case: str, variant: str) -> dict:
    import itertools

    import torch

    from dmha.common.device import resolve_device

    device = resolve_device(args.device)
    c = _case_cfg(args, case)
    step, n_params = _training_step(c, variant, device)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(c["batch"], c["frames"], 80, generator=g)
    y = torch.randint(0, c["classes"], (c["batch"],), generator=g)
    for _ in range(args.warmup):
        step(x, y)
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    c0 = time.process_time()
    for _ in itertools.repeat(None, args.steps):
        t0 = time.perf_counter()
        step(x, y)
        _sync(device)
        times.append(time.perf_counter() - t0)
    out = {"case": case, "variant": variant, "times": times, "cpu_s": time.process_time() - c0,
           "batch": c["batch"], "frames": c["frames"], "threads": torch.get_num_threads(),
           "device": str(device), "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "params_m": n_params / 1e6}
    if device.type == "cuda":
        out["peak_cuda_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
        out["gpu"] = torch.cuda.get_device_name(device)
    return out


def _worker_interleaved(args: argparse.Namespace, case: str, variants: list[str]) -> dict:
    """All variants in one process, one step each in turn: the most precise time ratios.

    Separate processes (``_worker_time``) give each variant its own peak memory but also their own
    allocator and cache history; here every variant sees the same machine state, step after step.
    """
    import torch

    from dmha.common.device import resolve_device

    device = resolve_device(args.device)
    c = _case_cfg(args, case)
    steps = {}
    for v in variants:
        steps[v], _ = _training_step(c, v, device)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(c["batch"], c["frames"], 80, generator=g)
    y = torch.randint(0, c["classes"], (c["batch"],), generator=g)
    for v in variants:
        for _ in range(args.warmup):
            steps[v](x, y)
    wall = {v: [] for v in variants}
    cpu = {v: [] for v in variants}
    for _ in range(args.steps * args.rounds):
        for v in variants:
            _sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            steps[v](x, y)
            _sync(device)
            wall[v].append(time.perf_counter() - t0)
            cpu[v].append(time.process_time() - c0)
    return {"wall": wall, "cpu": cpu}


def _worker_check(args: argparse.Namespace, case: str) -> dict:
    """Equality of ours and the reference (outputs, loss, after one Adam step) + pooling micro-bench."""
    import torch
    from reference_model import copy_weights

    from dmha.common.device import resolve_device

    device = resolve_device(args.device)
    c = _case_cfg(args, case)
    ours, _ = _build(c, "ours", device)
    ref, ref_loss = _build(c, "ref", device)
    batch = max(2, min(c["batch"], 4))
    g = torch.Generator().manual_seed(2)
    x = torch.randn(batch, c["frames"], 80, generator=g).to(device)
    y = torch.randint(0, c["classes"], (batch,), generator=g).to(device)
    res = {"case": case, "batch": batch}
    ours_cl, _ = _build(c, "ours_cl", device)
    ours_cl.train(), ours.train()
    res["cl_out_maxabs"] = float((ours_cl.model(x, None) - ours.model(x, None)).abs().max())
    from dmha.models.precision import bf16_autocast

    # bf16 vs float32 embeddings in eval mode: in train mode on random input the batch statistics of a
    # freshly initialised net are near-degenerate (fc2's batch variance ~ bf16 resolution), which blows
    # up any rounding; real batches are not like that (see the quality report for results).
    ours_cl.eval(), ours.eval()
    with torch.no_grad():
        with bf16_autocast(True, device):
            emb_bf16 = ours_cl.model.embed(x, None).float()
        emb_fp32 = ours.model.embed(x, None)
    res["bf16_emb_relerr"] = float((emb_bf16 - emb_fp32).norm() / emb_fp32.norm())
    ours.train()
    del ours_cl
    opt_o = torch.optim.Adam(ours.parameters(), lr=c["lr"], weight_decay=c["wd"])
    opt_r = torch.optim.Adam(list(ref.parameters()) + list(ref_loss.parameters()), lr=c["lr"],
                             weight_decay=c["wd"])
    ours.train(), ref.train()
    for tag in ("initial", "after_step"):
        out_o = ours.model(x, None)
        out_r = ref(x)
        loss_o, _ = ours.loss(out_o, y)
        loss_r, _ = ref_loss(out_r, y)
        res[f"{tag}_out_maxabs"] = float((out_o - out_r).abs().max())
        res[f"{tag}_out_scale"] = float(out_r.abs().max())
        res[f"{tag}_loss"] = [float(loss_o), float(loss_r)]
        if tag == "initial":
            opt_o.zero_grad(), opt_r.zero_grad()
            loss_o.backward(), loss_r.backward()
            opt_o.step(), opt_r.step()
    # the pooling layer alone (this is where the two implementations differ)
    d = ours.model.frontend.get_out_dim()
    t_out = c["frames"]
    for _ in ours.model.frontend.blocks:
        t_out = (t_out + 1) // 2
    pb = c["batch"]
    h = torch.randn(pb, t_out, d, device=device, generator=None, requires_grad=True)
    copy_weights(ours.model, ours.loss, ref, ref_loss)
    po, pr = ours.model.pooling, ref.pooling
    with torch.no_grad():
        a = po(h, None)
        b = pr(h)
        res["pool_maxabs"] = float((a - b).abs().max())

    def run(layer, reps):
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(reps):
            out = layer(h, None) if layer is po else layer(h)
            out.sum().backward()
        _sync(device)
        return (time.perf_counter() - t0) / reps

    reps = args.pool_reps
    run(po, 2), run(pr, 2)
    tp, tr = [], []
    for _ in range(5):  # take turns
        tp.append(run(po, reps))
        tr.append(run(pr, reps))
    res["pool_shape"] = [pb, t_out, d]
    res["pool_ours_ms"] = 1e3 * min(tp)
    res["pool_ref_ms"] = 1e3 * min(tr)
    return res


KINDS = (("conv (fwd+bwd)", ("conv", "mkldnn", "cudnn")),
         ("max-pool", ("max_pool", "pool2d")),
         ("optimizer (Adam)", ("adam", "_foreach", "lerp", "addcdiv")),
         ("ReLU/mask/elementwise", ("relu", "threshold", "mul", "add", "div", "where", "sub")),
         ("linear/matmul", ("addmm", "mm", "bmm", "matmul", "linear", "einsum")),
         ("softmax/loss", ("softmax", "nll", "cross_entropy", "norm", "one_hot", "scatter")))


def _worker_profile(args: argparse.Namespace, case: str, variant: str) -> dict:
    import torch
    from torch.profiler import ProfilerActivity, profile

    from dmha.common.device import resolve_device

    device = resolve_device(args.device)
    c = _case_cfg(args, case)
    step, _ = _training_step(c, variant, device)
    x = torch.randn(c["batch"], c["frames"], 80)
    y = torch.randint(0, c["classes"], (c["batch"],))
    step(x, y)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        for _ in range(args.steps):
            step(x, y)
        _sync(device)
    attr = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    rows = []
    for e in prof.key_averages():
        rows.append((e.key, float(getattr(e, attr, 0.0) or 0.0) / 1e3, e.count))
    rows.sort(key=lambda r: -r[1])
    rows = [(n, ms / args.steps, cnt // args.steps) for n, ms, cnt in rows]
    total = sum(r[1] for r in rows) or 1.0
    groups: dict[str, float] = {}
    for name, ms, _ in rows:
        low = name.lower()
        kind = next((k for k, keys in KINDS if any(s in low for s in keys)), "other")
        groups[kind] = groups.get(kind, 0.0) + ms
    return {"case": case, "variant": variant, "total_ms": total, "groups": groups,
            "top": rows[:args.top_ops], "time_kind": "device" if device.type == "cuda" else "CPU self"}


def _spawn(args: argparse.Namespace, what: str, case: str, variant: str = "") -> dict:
    cmd = [sys.executable, __file__, "--worker", what, "--worker-case", case, "--worker-variant", variant]
    for k in ("device", "paper_batch", "paper_frames", "mini_batch", "steps", "warmup", "threads",
              "pool_reps", "top_ops"):
        cmd += [f"--{k.replace('_', '-')}", str(getattr(args, k))]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"bench_train: {what} {case} {variant} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _load() -> str:
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", default="paper,mini", help="comma list of: paper, mini")
    p.add_argument("--variants", default="",
                   help="comma list of: ours, ref, ours_cl, ours_bf16 (default: the first three, plus "
                        "ours_bf16 where the device has native bf16)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto (default cpu)")
    p.add_argument("--paper-batch", type=int, default=2, help="paper-config batch (default 2: CPU)")
    p.add_argument("--paper-frames", type=int, default=0, help="paper crop (default: its config, 350)")
    p.add_argument("--mini-batch", type=int, default=0, help="mini batch (default: its config)")
    p.add_argument("--steps", type=int, default=3, help="timed steps per process (default 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first (default 1)")
    p.add_argument("--rounds", type=int, default=2, help="fresh processes per variant, taking turns")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch default)")
    p.add_argument("--pool-reps", type=int, default=20)
    p.add_argument("--top-ops", type=int, default=8)
    p.add_argument("--no-check", action="store_true", help="skip the equality check")
    p.add_argument("--no-profile", action="store_true", help="skip the profile")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--worker-case", help=argparse.SUPPRESS)
    p.add_argument("--worker-variant", help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.worker:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        fn = {"time": lambda: _worker_time(args, args.worker_case, args.worker_variant),
              "check": lambda: _worker_check(args, args.worker_case),
              "interleaved": lambda: _worker_interleaved(args, args.worker_case,
                                                         args.worker_variant.split(",")),
              "profile": lambda: _worker_profile(args, args.worker_case, args.worker_variant)}[args.worker]
        print(json.dumps(fn()))
        return

    cases = [s for s in args.cases.split(",") if s]
    if not args.variants:
        from dmha.common.device import resolve_device
        from dmha.models.precision import native_bf16

        bf16 = native_bf16(resolve_device(args.device))
        args.variants = "ours,ref,ours_cl" + (",ours_bf16" if bf16 else "")
    variants = [s for s in args.variants.split(",") if s]
    for s in cases:
        if s not in CASES:
            p.error(f"unknown case {s!r}; choose from {sorted(CASES)}")
    for v in variants:
        if v not in ("ours", "ref", "ours_cl", "ours_bf16"):
            p.error(f"unknown variant {v!r}")
    print(f"# Training-step benchmark (bench/bench_train.py)\n\nmachine: {os.cpu_count()} CPUs, "
          f"device {args.device}; load average (1/5/15 min) at start {_load()}; "
          f"{args.rounds} rounds x {args.steps} timed steps (+{args.warmup} warm-up) per variant, "
          f"variants take turns, each in a fresh process\n", flush=True)
    t_all = time.time()
    for case in cases:
        runs: dict[str, list[dict]] = {v: [] for v in variants}
        for _ in range(args.rounds):
            for v in variants:
                runs[v].append(_spawn(args, "time", case, v))
        first = runs[variants[0]][0]
        c = _case_cfg(args, case)
        mem_key = "peak_cuda_mib" if "peak_cuda_mib" in first else "peak_rss_mib"
        mem_name = "peak CUDA alloc MiB" if mem_key == "peak_cuda_mib" else "peak RSS MiB"
        print(f"## {case}: {c['config']} (model section with reference scalings), batch {c['batch']} x "
              f"{c['frames']} frames, {c['classes']} classes, {first['params_m']:.2f} M parameters, "
              f"{first['threads']} torch threads, device {first.get('gpu', first['device'])}\n")
        print("each variant in its own processes (peak memory is the variant's own; rounds take turns):\n")
        print(f"| variant | s/step best | median | samples/s (best) | CPU s/step | {mem_name} | "
              "speed vs ref (best wall) | speed vs ref (CPU time) |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        best = {v: min(t for r in runs[v] for t in r["times"]) for v in variants}
        cpu = {v: statistics.mean(r["cpu_s"] / len(r["times"]) for r in runs[v]) for v in variants}
        for v in variants:
            ts = [t for r in runs[v] for t in r["times"]]
            mem = max(r[mem_key] for r in runs[v])
            r_wall = f"{best['ref'] / best[v]:.2f}x" if "ref" in best else "-"
            r_cpu = f"{cpu['ref'] / cpu[v]:.2f}x" if "ref" in cpu else "-"
            print(f"| {v} | {best[v]:.3f} | {statistics.median(ts):.3f} | {c['batch'] / best[v]:.2f} | "
                  f"{cpu[v]:.3f} | {mem:.0f} | {r_wall} | {r_cpu} |")
        r = _spawn(args, "interleaved", case, ",".join(variants))
        print(f"\nall variants in one process, one step each in turn ({len(r['cpu'][variants[0]])} steps "
              "each; best step):\n")
        print("| variant | wall s/step | CPU s/step | samples/s | speed vs ref (wall) | speed vs ref (CPU) |")
        print("|---|---:|---:|---:|---:|---:|")
        bw = {v: min(r["wall"][v]) for v in variants}
        bc = {v: min(r["cpu"][v]) for v in variants}
        for v in variants:
            rw = f"{bw['ref'] / bw[v]:.2f}x" if "ref" in bw else "-"
            rc = f"{bc['ref'] / bc[v]:.2f}x" if "ref" in bc else "-"
            print(f"| {v} | {bw[v]:.3f} | {bc[v]:.3f} | {c['batch'] / bw[v]:.2f} | {rw} | {rc} |")
        print(f"\nload average after {case}: {_load()}\n", flush=True)
        if not args.no_check:
            r = _spawn(args, "check", case)
            ok = (r["initial_out_maxabs"] <= 1e-4 * max(1.0, r["initial_out_scale"])
                  and r["after_step_out_maxabs"] <= 1e-3 * max(1.0, r["after_step_out_scale"]))
            print(f"equality ({'OK' if ok else 'MISMATCH'}), batch {r['batch']}, train mode: pre-layer "
                  f"max |ours - ref| = {r['initial_out_maxabs']:.2e} "
                  f"(max |out| {r['initial_out_scale']:.2f}), loss {r['initial_loss'][0]:.6f} vs "
                  f"{r['initial_loss'][1]:.6f}; after one Adam step on each: "
                  f"{r['after_step_out_maxabs']:.2e}, "
                  f"loss {r['after_step_loss'][0]:.6f} vs {r['after_step_loss'][1]:.6f}; "
                  f"ours_cl vs ours: {r['cl_out_maxabs']:.2e}; bf16 vs float32 embeddings (eval mode, "
                  f"not meant to be equal): relative error {r['bf16_emb_relerr']:.1e}")
            print(f"pooling layer alone (fwd+bwd, frames {tuple(r['pool_shape'])}): ours "
                  f"{r['pool_ours_ms']:.3f} ms, reference {r['pool_ref_ms']:.3f} ms -> "
                  f"{r['pool_ref_ms'] / r['pool_ours_ms']:.2f}x; max |diff| {r['pool_maxabs']:.1e}\n",
                  flush=True)
        if not args.no_profile:
            for v in [v for v in ("ours", "ref") if v in variants]:
                r = _spawn(args, "profile", case, v)
                tot = r["total_ms"]
                print(f"where the time goes ({v}, per step over {args.steps} steps, torch.profiler "
                      f"{r['time_kind']} time {tot:.0f} ms):\n")
                print("| op kind | ms | share |\n|---|---:|---:|")
                for k, ms in sorted(r["groups"].items(), key=lambda kv: -kv[1]):
                    print(f"| {k} | {ms:.1f} | {100 * ms / tot:.1f}% |")
                top = "; ".join(f"{n} {ms:.0f} ms ({cnt}x)" for n, ms, cnt in r["top"])
                print(f"\ntop ops: {top}\n", flush=True)
    print(f"total bench time {time.time() - t_all:.0f} s; load average at end {_load()}")


if __name__ == "__main__":
    main()
