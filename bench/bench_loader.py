"""Benchmark: training-crop loader throughput per process, by storage format and read path; disk per hour.

Writes a VoxCeleb2-shaped corpus (durations of bench/scale_sim.py: mean 7.8 s, min 4 s, long tail) of
``--hours`` hours in each format, with kaldiio as stage 1 would, plus the CMN side tables, then serves
random 3.5-s crops (the real epoch plan, :class:`dmha.training.dataset.CropDataset`, one torch thread as
in a DataLoader worker) and prints crops/s with the ratio to today's path (whole-utterance float32 reads)
measured in the same run:

* ``whole``: kaldiio reads (and decompresses) the whole matrix, CMN over it, then the crop (today);
* ``partial``: only the crop's rows are read and the stored mean subtracted (float32, CM2, CM3);
  float32 partial crops are bit-equal to today's (checked here too); CM2/CM3 are lossy, their error
  against float32 is printed.

Kaldi has no float16 matrix type (kaldiio cannot write one); its two-byte compressed matrix ``CM2``
(uint16 between a per-matrix min and max) is the same size and is what ``float16`` means here.
``CM`` (Kaldi's default compression, per-column 8-bit) is column-major: read whole only.

Cold cache: ``posix_fadvise(DONTNEED)`` on the archives before the timed pass (no root needed; works for
clean pages), else ``echo 3 > /proc/sys/vm/drop_caches`` when permitted (``--drop-caches``). Warm: the
archives were just read in full. The disk is printed (df, rotational flag).

    nice python bench/bench_loader.py --dir /tmp/loader_bench                  # ~4 h of audio, ~2 min
    nice python bench/bench_loader.py --dir /tmp/loader_bench --hours 20 --crops 4000
    nice python bench/bench_loader.py --sim /tmp/vox2sim --crops 3000   # on scale_sim.py's dense arks
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

FORMATS = {"float32": None, "CM2 (2 B)": 3, "CM3 (1 B)": 5, "CM (Kaldi default)": 2}
CASES = [("whole", "float32"), ("partial", "float32"), ("partial", "CM2 (2 B)"), ("partial", "CM3 (1 B)"),
         ("whole", "CM2 (2 B)"), ("whole", "CM (Kaldi default)")]
CROP = 350


def write_corpus(d: Path, hours: float, seed: int, reuse: bool = False
                 ) -> tuple[dict[str, dict[str, str]], np.ndarray, list[str]]:
    """The same utterances in every format; returns ({format: {utt: entry}}, frames, utts).

    ``reuse``: keep archives an earlier run with the same --hours and --seed wrote into ``d``."""
    import kaldiio
    from scale_sim import frames_of, vox2_durations

    from dmha.features.cmn_table import write_table

    rng = np.random.default_rng(seed)
    n = int(hours * 3600 / 7.8)
    frames = frames_of(vox2_durations(n, rng))
    utts = [f"utt{i:07d}" for i in range(n)]
    base = rng.normal(9.0, 2.5, size=80).astype(np.float32)
    entries: dict[str, dict[str, str]] = {}
    d.mkdir(parents=True, exist_ok=True)
    for k, (fmt, method) in enumerate(FORMATS.items()):
        ark, scp = d / f"feats{k}.ark", d / f"feats{k}.scp"
        if reuse and scp.is_file() and (fmt == "CM (Kaldi default)" or (d / f"feats{k}.cmn.npy").is_file()):
            entries[fmt] = dict(line.split(" ", 1) for line in scp.read_text().splitlines())
            continue
        mats = np.random.default_rng(seed + 1)
        with kaldiio.WriteHelper(f"ark,scp:{ark},{scp}", compression_method=method) as w:
            for utt, t in zip(utts, frames):
                w(utt, (base + mats.normal(0, 2.0, size=(int(t), 80))).astype(np.float32))
        entries[fmt] = dict(line.split(" ", 1) for line in scp.read_text().splitlines())
        if fmt != "CM (Kaldi default)":
            write_table(ark, [(u, int(entries[fmt][u].rsplit(":", 1)[1])) for u in utts])
    return entries, frames, utts


def drop_cache(paths: list[Path], use_sysctl: bool) -> str:
    if use_sysctl:
        try:
            subprocess.run(["sync"], check=True)
            Path("/proc/sys/vm/drop_caches").write_text("3\n")
            return "drop_caches"
        except OSError:
            pass
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
    return "posix_fadvise(DONTNEED)"


def warm(paths: list[Path]) -> None:
    for p in paths:
        with open(p, "rb") as f:
            while f.read(1 << 24):
                pass


def measure(ds, items: list[tuple[int, int]]) -> tuple[float, float]:
    """(crops per wall second, crops per CPU second of this process): the second does not depend on how
    busy a shared machine is (but leaves out time waiting for the disk)."""
    t, c = time.perf_counter(), time.process_time()
    for it in items:
        ds[it]
    return len(items) / (time.perf_counter() - t), len(items) / max(time.process_time() - c, 1e-9)


_SHARED: dict = {}  # the dataset and crops a forked worker serves (set before the pool forks)


def _serve(share: tuple[int, int]) -> int:
    k, n = share
    ds, items = _SHARED["ds"], _SHARED["items"]
    for it in items[k::n]:
        ds[it]
    return len(items[k::n])


def measure_procs(ds, items: list[tuple[int, int]], procs: int, arks: list[Path], use_sysctl: bool) -> float:
    """Cold crops per wall second of ``procs`` loader processes together (as ``procs`` DataLoader workers
    of one or several GPU processes): the processes are forked and idle first, the cache is dropped,
    then each serves every ``procs``-th crop of the same epoch plan; the clock runs from the start of
    the work to the end of the last process."""
    import multiprocessing as mp

    _SHARED.update(ds=ds, items=items)
    with mp.get_context("fork").Pool(procs) as pool:
        pool.map(int, range(procs))  # every worker started before the clock starts
        drop_cache(arks, use_sysctl)
        t = time.perf_counter()
        served = sum(pool.map(_serve, [(k, procs) for k in range(procs)], chunksize=1))
        return served / (time.perf_counter() - t)


def disk_info(d: Path) -> str:
    df = subprocess.run(["df", "-h", str(d)], capture_output=True, text=True).stdout.splitlines()[-1].split()
    dev = os.path.basename(df[0])
    rot = "?"
    for name in (dev, dev.rstrip("0123456789")):
        p = Path(f"/sys/block/{name}/queue/rotational")
        if p.is_file():
            rot = p.read_text().strip()
            break
    return f"{df[0]} ({df[1]}, {df[3]} free), rotational={rot}"


def bench_sim(sim: Path, crops: int, seed: int, use_sysctl: bool) -> None:
    """Whole vs partial float32 reads on the simulator's dense arks (VoxCeleb2 layout, GBs of data)."""
    from gpu_train_check import dense_subset

    from dmha.features.arkrows import split_entry
    from dmha.features.cmn_table import load_tables
    from dmha.training.dataset import CropDataset, epoch_plan

    tl, _ = dense_subset(sim / "vox2_train" / "lists")
    arks = sorted({Path(split_entry(e)[0]) for e in tl.feats})
    gb = sum(p.stat().st_size for p in arks) / 1e9
    order, offsets = epoch_plan(tl.num_frames, CROP, seed, 0)
    items = [(int(i), int(offsets[i])) for i in order[:crops]]
    whole = CropDataset(tl, CROP)
    partial = CropDataset(tl, CROP, table=load_tables(tl.utts, tl.feats, tl.num_frames))
    print(f"## Loader on the simulator's archives ({time.strftime('%Y-%m-%d %H:%M')}, load "
          f"{os.getloadavg()[0]:.2f})\n\n{len(tl)} utterances in {len(arks)} dense float32 arks, "
          f"{gb:.1f} GB; "
          f"{crops} random crops of one epoch plan per pass; disk {disk_info(arks[0])}\n")
    print("| read path | cold crops/s | x today | cold MB read/s | bytes read per crop |\n"
          "|---|---|---|---|---|")
    base = None
    for name, ds, per_crop in (("whole (today)", whole, float(np.mean(tl.num_frames[order[:crops]])) * 320),
                               ("partial", partial, CROP * 320.0)):
        how = drop_cache(arks, use_sysctl)
        rate, _ = measure(ds, items)
        base = base or rate
        print(f"| {name} | {rate:.0f} | {rate / base:.2f} | {rate * per_crop / 1e6:.0f} | "
              f"{per_crop / 1e3:.0f} kB |")
    print(f"\ncold: {how} on all {len(arks)} arks before each pass")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", help="scratch directory for the archives (removed with --clean)")
    p.add_argument("--hours", type=float, default=4.0, help="hours of audio per format")
    p.add_argument("--crops", type=int, default=2000, help="random crops per measurement")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--drop-caches", action="store_true", help="try /proc/sys/vm/drop_caches (root) first")
    p.add_argument("--clean", action="store_true", help="remove --dir afterwards")
    p.add_argument("--reuse", action="store_true", help="reuse the archives of an earlier run in --dir")
    p.add_argument("--sim", help="instead: whole vs partial reads on bench/scale_sim.py output in SIM")
    p.add_argument("--procs", default="",
                   help="also measure N loader processes together, cold, for each N of this comma list "
                        "(e.g. 1,2,4,8; --crops crops per process); use --hours large enough that the "
                        "crops read do not fit the archive twice over")
    a = p.parse_args()
    if a.sim:
        import torch

        torch.set_num_threads(1)
        bench_sim(Path(a.sim), a.crops, a.seed, a.drop_caches)
        return
    import torch

    from dmha.features.cmn_table import load_tables
    from dmha.training.dataset import CropDataset, TrainList, epoch_plan

    torch.set_num_threads(1)  # a DataLoader worker's setting
    d = Path(a.dir)
    t0 = time.time()
    entries, frames, utts = write_corpus(d, a.hours, a.seed, reuse=a.reuse)
    hours = float(frames.sum()) * 0.01 / 3600
    print(f"## Loader throughput ({time.strftime('%Y-%m-%d %H:%M')}, load {os.getloadavg()[0]:.2f}, "
          f"{os.cpu_count()} CPUs)\n")
    print(f"{len(utts)} utterances, {hours:.2f} h (mean {frames.mean() / 100:.2f} s), {CROP}-frame crops, "
          f"one process, one torch thread; disk {disk_info(d)}; corpus written in {time.time() - t0:.0f} s\n")
    arks = {fmt: Path(next(iter(e.values())).rsplit(":", 1)[0]) for fmt, e in entries.items()}
    order, offsets = epoch_plan(frames, CROP, a.seed, 0)
    items = [(int(i), int(offsets[i])) for i in order[:a.crops]]
    cold_items = [(int(i), int(offsets[i])) for i in order[a.crops:2 * a.crops]] or items
    labels = np.zeros(len(utts), dtype=np.int64)
    datasets = {}
    for path, fmt in CASES:
        tl = TrainList(utts, labels, frames.astype(np.int64), [entries[fmt][u] for u in utts])
        table = load_tables(tl.utts, tl.feats, tl.num_frames) if path == "partial" else None
        datasets[(path, fmt)] = CropDataset(tl, CROP, table=table)
    ref = datasets[("whole", "float32")]
    rows = []
    how = ""
    for path, fmt in CASES:
        ds = datasets[(path, fmt)]
        check = items[:200]
        err = max(float((ds[it][0] - ref[it][0]).abs().max()) for it in check)
        how = drop_cache([arks[fmt]], a.drop_caches)
        cold, _ = measure(ds, cold_items)
        warm([arks[fmt]])
        hot, hot_cpu = max(measure(ds, items) for _ in range(3))  # best of 3: the machine is shared
        rows.append((path, fmt, arks[fmt].stat().st_size, cold, hot, err, hot_cpu))
    base_cold, base_warm, base_cpu = rows[0][3], rows[0][4], rows[0][6]
    f32 = rows[0][2]
    print(f"Cold: {how} on the archive before the pass ({len(cold_items)} crops); warm: archive read in full "
          f"first, best of 3 passes of {len(items)} crops. Ratios: against today's path (first row) in this "
          "run.\n")
    print("| read path | format | disk GB/h of audio | x float32 | cold crops/s | x today | warm crops/s "
          "| x today | warm crops per CPU-s | x today | max abs diff vs today |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for path, fmt, size, cold, hot, err, hot_cpu in rows:
        print(f"| {path} | {fmt} | {size / hours / 1e9:.3f} | {size / f32:.2f} | {cold:.0f} | "
              f"{cold / base_cold:.2f} | {hot:.0f} | {hot / base_warm:.2f} | {hot_cpu:.0f} | "
              f"{hot_cpu / base_cpu:.2f} | {'0 (bit-equal)' if err == 0 else f'{err:.2g}'} |")
    procs = [int(n) for n in a.procs.split(",") if n.strip()]
    if procs:
        print(f"\n### Several loader processes together (cold: {how} before each pass; {a.crops} crops per "
              f"process from one epoch plan; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f})\n")
        print("| read path | format | " + " | ".join(f"{n} proc crops/s" for n in procs) + " |")
        print("|---|---|" + "---|" * len(procs))
        for path, fmt in CASES[:3]:
            rates = []
            for n in procs:
                plan = [(int(i), int(offsets[i])) for i in order[:a.crops * n]]
                rates.append(measure_procs(datasets[(path, fmt)], plan, n, [arks[fmt]], a.drop_caches))
            print(f"| {path} | {fmt} | " + " | ".join(f"{r:.0f}" for r in rates) + " |")
    if a.clean:
        shutil.rmtree(d)


if __name__ == "__main__":
    main()
