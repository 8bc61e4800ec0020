"""Benchmark (issue 16): onnxruntime vs torch — parity and EER on real data, single-thread speed.

    python bench/bench_onnx.py speed                       # mini + paper model, random weights
    python bench/bench_onnx.py parity --exp exp/mini_dmha --calib-data data/mini_train \\
        data/mini_test data/real_test                      # a trained exp, every utterance, EER

``speed``: the mini recipe's model (egs/mini/conf/dmha.yaml) and the paper's (egs/voxceleb/conf/
dmha_k32.yaml: VGG4L 128-1024, DMHA K = 32), random weights (speed does not depend on them), exported
as steps/export_onnx.sh does (float with ``--winograd auto``, and int8 calibrated on random log-mel-like
features), plus the float graph with direct convolutions (``--winograd off``) for comparison. One thread
everywhere (torch.set_num_threads(1), onnxruntime intra/inter-op 1). Real-time factor = CPU time /
audio duration of the model call (features excluded: the numpy log-mel is timed on its own) for 1-s,
3.5-s and 10-s inputs, median of ``--reps`` runs after a warm-up; batched throughput = utterances/s of
a padded batch of ``--batch`` 3.5-s utterances. All in one process, so the ratios compare like with
like on the same (possibly loaded) machine.

``parity``: exports ``--exp`` (float + int8) to a temporary dir, embeds every utterance of each data
dir from its feats.scp with torch (stage 4's code) and with both ONNX models, and prints the min
cosine to torch and the EER of the data dir's trials for each.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dmha.export.onnx_export import EmbeddingGraph, _export_float, _quantize_int8  # noqa: E402
from dmha.export.winograd import winograd_tiles, with_winograd  # noqa: E402
from dmha.models import build_model  # noqa: E402


def _session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _median_time(fn, reps: int) -> float:
    """Median CPU seconds of ``fn`` (process time): with one compute thread this is the compute time,
    and unlike wall time it does not grow while other jobs on a shared machine hold the core."""
    fn()
    times = []
    for _ in range(reps):
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return statistics.median(times)


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def _min_cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.min(np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)))


def speed(args: argparse.Namespace) -> None:
    from dmha.features.melbank import logmel_numpy

    torch.set_num_threads(1)
    configs = {"mini": REPO / "egs/mini/conf/dmha.yaml", "paper": REPO / "egs/voxceleb/conf/dmha_k32.yaml"}
    rng = np.random.default_rng(0)
    print(f"torch {torch.__version__}, onnxruntime {__import__('onnxruntime').__version__}, 1 thread, "
          f"{_cpu_name()}, load average {os.getloadavg()[0]:.1f} (times are CPU time: see the docstring)")
    wave = (0.1 * rng.standard_normal(160000)).astype(np.float32)
    t_np = _median_time(lambda: logmel_numpy(wave), args.reps)
    print(f"numpy log-mel front-end: RTF {t_np / 10:.4f} (10-s input)\n")
    print("| model | input | torch RTF | ORT float RTF | ORT float direct-conv RTF | ORT int8 RTF | "
          "float vs torch | direct vs torch | int8 vs torch | int8 vs float | cos(float, torch) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    sizes: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, conf in configs.items():
            if args.models and name not in args.models:
                continue
            cfg = yaml.safe_load(open(conf))["model"]
            torch.manual_seed(0)
            graph = EmbeddingGraph(build_model(cfg, 10).eval(), "cmn").eval()
            fd = Path(tmp) / f"{name}.direct.onnx"
            fp = Path(tmp) / f"{name}.onnx"
            q = Path(tmp) / f"{name}.int8.onnx"
            _export_float(graph, 80, fd, 17, name)
            tiles = winograd_tiles(graph, "auto")
            _export_float(with_winograd(graph, tiles), 80, fp, 17, name)
            calib = [(rng.normal(8, 2, size=(300, 80))).astype(np.float32) for _ in range(8)]
            _quantize_int8(fd, q, calib)
            s_f, s_d, s_q = _session(fp), _session(fd), _session(q)
            mb = [p.stat().st_size / 1e6 for p in (fp, q)]
            layers = ", ".join(f"{k.split('.', 1)[1]} F({m}x{m})" for k, m in tiles.items()) or "none"
            sizes.append(f"{name} {mb[0]:.1f} MB float ({len(tiles)} Winograd convolutions: {layers})"
                         f" / {mb[1]:.1f} MB int8")
            rows = [(f"{sec:g} s", 1, int(sec * 100) - 2) for sec in (1.0, 3.5, 10.0)]
            rows.append((f"batch {args.batch} x 3.5 s", args.batch, 348))
            for label, b, t in rows:
                x = torch.from_numpy(rng.normal(8, 2, size=(b, t, 80)).astype(np.float32))
                lens = torch.full((b,), t, dtype=torch.long)
                feed = {"feats": x.numpy(), "lengths": lens.numpy()}
                with torch.no_grad():
                    tt = _median_time(lambda g=graph, x=x, n=lens: g(x, n), args.reps)
                    ref = graph(x, lens).numpy()
                tf = _median_time(lambda s=s_f, f=feed: s.run(None, f), args.reps)
                td = _median_time(lambda s=s_d, f=feed: s.run(None, f), args.reps)
                tq = _median_time(lambda s=s_q, f=feed: s.run(None, f), args.reps)
                ef = s_f.run(None, feed)[0]
                audio = b * (t + 2) / 100
                if b == 1:
                    cells = [f"{v / audio:.4f}" for v in (tt, tf, td, tq)]
                else:  # throughput, utterances per second
                    cells = [f"{b / v:.2f} utt/s" for v in (tt, tf, td, tq)]
                print(f"| {name} | {label} | {' | '.join(cells)} | {tt / tf:.2f}x | {tt / td:.2f}x | "
                      f"{tt / tq:.2f}x | {tf / tq:.2f}x | {_min_cos(ef, ref):.7f} |", flush=True)
    print(f"\nmodel files: {'; '.join(sizes)}. Load average at the end: {os.getloadavg()[0]:.1f}")


def parity(args: argparse.Namespace) -> None:
    import kaldiio

    from dmha.common.fileio import read_kv
    from dmha.data.trials import read_trials
    from dmha.embed.xvectors import embed_utterances
    from dmha.experiment import load_exp
    from dmha.export.onnx_export import export_onnx
    from dmha.export.runtime import OnnxSpeakerModel
    from dmha.scoring.metrics import compute_eer

    torch.set_num_threads(args.threads)
    exp = load_exp(args.exp, "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        paths = export_onnx(args.exp, quantize="int8", calib_data=args.calib_data, out_dir=Path(tmp) / "onnx",
                            winograd=args.winograd)
        models = {"onnx float": OnnxSpeakerModel(paths[0], num_threads=args.threads),
                  "onnx int8": OnnxSpeakerModel(paths[1], num_threads=args.threads)}
        print(f"exp {args.exp} (best step {exp.best.get('step')}), {args.threads} thread(s), "
              f"--winograd {args.winograd}\n")
        print("| set | utts | trials | torch EER % | ONNX float EER % | ONNX int8 EER % | "
              "min cos float/torch | min cos int8/torch |")
        print("|---|---|---|---|---|---|---|---|")
        for data in args.data:
            data = Path(data)
            scp = read_kv(data / "feats.scp")
            keys = sorted(scp)
            feats = [np.array(kaldiio.load_mat(scp[k]), dtype=np.float32) for k in keys]
            embs = {"torch": embed_utterances(exp.model, feats, norm=exp.norm)}
            for name, m in models.items():
                embs[name] = m.embed_features(feats)
            trials = read_trials(data / "trials")
            index = {k: i for i, k in enumerate(keys)}
            e_i = np.array([index[u] for u in trials.enroll])
            t_i = np.array([index[u] for u in trials.test])
            eers, coss = {}, {}
            for name, e in embs.items():
                n = e / np.linalg.norm(e, axis=1, keepdims=True)
                eers[name] = 100 * compute_eer(np.sum(n[e_i] * n[t_i], 1), trials.labels)[0]
                t = embs["torch"] / np.linalg.norm(embs["torch"], axis=1, keepdims=True)
                coss[name] = float(np.min(np.sum(n * t, 1)))
            print(f"| {data.name} | {len(keys)} | {len(trials.enroll)} | {eers['torch']:.2f} | "
                  f"{eers['onnx float']:.2f} | {eers['onnx int8']:.2f} | {coss['onnx float']:.7f} | "
                  f"{coss['onnx int8']:.5f} |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--reps", type=int, default=3)
    s.add_argument("--batch", type=int, default=8)
    s.add_argument("--models", nargs="*", choices=("mini", "paper"))
    s = sub.add_parser("parity")
    s.add_argument("--exp", required=True)
    s.add_argument("--calib-data", required=True)
    s.add_argument("--threads", type=int, default=1)
    s.add_argument("--winograd", choices=("auto", "off", "all"), default="auto",
                   help="as steps/export_onnx.sh; 'all' puts Winograd into every convolution of a small "
                        "model too, to check its numerics on real data")
    s.add_argument("data", nargs="+")
    args = p.parse_args()
    speed(args) if args.cmd == "speed" else parity(args)


if __name__ == "__main__":
    main()
