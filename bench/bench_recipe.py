"""Benchmark: wall time and peak memory of each stage of the mini recipe (run.sh), markdown table.

Each stage runs as its own ``bash run.sh --stage N --stop-stage N ...`` call, started from a fresh
helper process, so the stage's time is the call's wall time and its peak memory is the peak RSS of
the largest process it ran (getrusage RUSAGE_CHILDREN of the helper: every descendant that was
waited for). The stage banner run.sh prints (``=== <date> stage N: ...``) is checked, so a stage
that silently did nothing is reported.

Two modes:

* in place (default): on the repo's existing data/ — useful for stages 3-5 after a config change.
  The exp dir (``--exp-name``, default ``bench_recipe``) is removed first (``--fresh true``) so
  training and extraction really run. Stages 0-2 skip work that is up to date (run.sh has no
  --force), so on existing data their times are the cost of the up-to-date checks.
* ``--scratch DIR``: a copy of the recipe files in DIR (as tests/test_recipe_e2e.py makes one), the
  whole recipe from stage 0: every stage does its full work. ``--mini-opts`` passes corpus options
  (e.g. a toy corpus) and the repo's downloads/ cache is used, so nothing is fetched twice.

    nice python bench/bench_recipe.py --stages 3-5                     # in place, retrain + score
    nice python bench/bench_recipe.py --scratch /tmp/recipe_bench      # whole recipe 0-5 from scratch
    python bench/bench_recipe.py --stages 3-5 -- --config egs/mini/conf/stats.yaml
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COPY = ("run.sh", "path.sh", "pyproject.toml", "requirements.txt", "egs", "local", "steps", "utils", "dmha")
NAMES = {0: "data preparation", 1: "features", 2: "training lists", 3: "training", 4: "embeddings",
         5: "scoring"}


def _stage_range(text: str) -> list[int]:
    m = re.fullmatch(r"(\d)(?:-(\d))?", text)
    if not m:
        raise argparse.ArgumentTypeError(f"--stages {text!r}: expected N or N-M (0..5)")
    lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
    if not 0 <= lo <= hi <= 5:
        raise argparse.ArgumentTypeError(f"--stages {text!r}: expected 0 <= N <= M <= 5")
    return list(range(lo, hi + 1))


def _copy_repo(dest: Path) -> None:
    dest.mkdir(parents=True)
    for name in COPY:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, dest / name)


def _worker(root: Path, stage: int, run_args: list[str], log_path: Path) -> None:
    """Run one stage; print a JSON line {seconds, peak_rss_mib, banner, rc}."""
    cmd = ["bash", "run.sh", "--stage", str(stage), "--stop-stage", str(stage), *run_args]
    t0 = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        log.write(f"# {' '.join(cmd)}\n")
        log.flush()
        proc = subprocess.run(cmd, cwd=root, stdout=log, stderr=subprocess.STDOUT)
    dt = time.perf_counter() - t0
    banner = f"stage {stage}:" in log_path.read_text(encoding="utf-8", errors="replace")
    print(json.dumps({"seconds": dt, "rc": proc.returncode, "banner": banner,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stages", type=_stage_range, default=None,
                   help="N or N-M (default: 1-5 in place, 0-5 with --scratch)")
    p.add_argument("--scratch", help="run a fresh copy of the recipe in this (new) directory")
    p.add_argument("--exp-name", default="bench_recipe", help="exp dir name (default bench_recipe)")
    p.add_argument("--fresh", choices=("true", "false"), default="true",
                   help="remove exp/<exp-name> before the first stage (default true)")
    p.add_argument("--nj", type=int, default=2)
    p.add_argument("--mini-opts", default="", help="local/make_mini_corpus.sh options (--scratch)")
    p.add_argument("--log-dir", default=str(REPO / "bench" / "results" / "recipe_logs"))
    p.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    p.add_argument("run_args", nargs="*", help="after --: extra run.sh options (e.g. --config FILE)")
    args = p.parse_args()
    if args.worker:
        root, stage, log = args.worker
        _worker(Path(root), int(stage), args.run_args, Path(log))
        return

    env = dict(os.environ)
    if args.scratch:
        root = Path(args.scratch).resolve()
        if root.exists():
            sys.exit(f"bench_recipe: {root} exists; give a new directory for --scratch")
        _copy_repo(root)
        env.update(DMHA_NO_VENV="1", PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}")
        env.pop("PYTHONPATH", None)  # path.sh points it at the copy
        stages = args.stages or list(range(6))
    else:
        root = REPO
        stages = args.stages or list(range(1, 6))
    run_args = ["--nj", str(args.nj), "--exp-name", args.exp_name, *args.run_args]
    mini_opts = args.mini_opts
    if args.scratch and (REPO / "downloads").is_dir() and "--download-dir" not in mini_opts:
        mini_opts = f"{mini_opts} --download-dir {REPO / 'downloads'}".strip()
    if mini_opts:
        run_args += ["--mini-opts", mini_opts]
    exp = root / "exp" / args.exp_name
    if args.fresh == "true" and exp.is_dir() and 3 in stages:
        shutil.rmtree(exp)
    log_dir = Path(args.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)

    load0 = "/".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"# Mini recipe stage times (bench/bench_recipe.py)\n\nroot {root} "
          f"({'scratch copy' if args.scratch else 'in place'}), run.sh {' '.join(run_args)}; "
          f"{os.cpu_count()} CPUs, load average at start {load0}\n", flush=True)
    print("| stage | what | wall s | peak RSS MiB (largest process) | note |\n|---|---|---:|---:|---|",
          flush=True)
    total = 0.0
    for stage in stages:
        log = log_dir / f"stage{stage}.log"
        cmd = [sys.executable, __file__, "--worker", str(root), str(stage), str(log), "--", *run_args]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            sys.exit(f"bench_recipe: helper for stage {stage} failed:\n{proc.stderr[-2000:]}")
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        total += r["seconds"]
        note = "" if r["banner"] else "no stage banner"
        if r["rc"] != 0:
            note = f"FAILED (rc {r['rc']}), log {log}"
        print(f"| {stage} | {NAMES[stage]} | {r['seconds']:.1f} | {r['peak_rss_mib']:.0f} | {note} |",
              flush=True)
        if r["rc"] != 0:
            sys.exit(1)
    load1 = "/".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"| all | stages {stages[0]}-{stages[-1]} | {total:.1f} | | |\n\nload average at end {load1}; "
          f"stage logs in {log_dir}")


if __name__ == "__main__":
    main()
