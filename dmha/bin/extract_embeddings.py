"""Stage 4 worker: whole-utterance speaker embeddings of a data dir (called by steps/extract_embeddings.sh).

  extract_embeddings prepare [--max-chunk-frames N] <exp-dir> <data-dir> <emb-dir>
      exit 0: run the jobs (old outputs removed first); exit 10: outputs complete and up to date.
  extract_embeddings job [options] <exp-dir> <data-dir> <out.ark> <out.scp>
      embeds every utterance of <data-dir>/feats.scp (one job's part of a split).
  extract_embeddings merge --nj N [--max-chunk-frames N] <exp-dir> <data-dir> <emb-dir>
      merges <emb-dir>/jobs/xvector.{1..N}.scp into <emb-dir>/xvector.{ark,scp}, writes the per-speaker
      means spk_xvector.{ark,scp} and num_utts.ark, checks that every utterance has an embedding.

Model and feature settings come from <exp-dir>/config.yaml and <exp-dir>/best.pt, or the weights file
--model names (e.g. avg_last5.pt of steps/average_models.sh; see dmha.experiment);
with --backend onnx the exported model (default <exp-dir>/onnx/model.onnx, steps/export_onnx.sh) runs on
onnxruntime instead (dmha.export.runtime; torch is not imported), checked against the data's fbank.yaml;
embeddings are computed in length-sorted, padded, masked batches (dmha.embed.batched) and do not depend on the
batch size. Outputs are written under temporary names and renamed, the .scp last: a killed run never
leaves an .scp that looks complete.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from dmha.bin._cli import run_main
from dmha.common.errors import UserError

log = logging.getLogger("dmha.embed")

SKIP = 10
STAMP = ".extract_info"
OUTPUTS = ("xvector.scp", "xvector.ark", "spk_xvector.scp", "spk_xvector.ark", "num_utts.ark")


def _positive(v: str) -> int:
    n = int(v)
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return n


def _non_negative(v: str) -> int:
    n = int(v)
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {v}")
    return n


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dmha.bin.extract_embeddings", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    backends = []
    model_help = "weights file in <exp-dir>, e.g. avg_last5.pt (default best.pt)"
    cap_help = ("cap on utterance length: longer utterances are CMN'd whole, cut into ceil(T/N) equal "
                "chunks and get the mean of the L2-normalised chunk embeddings (0 = no cap; default 0)")
    s = sub.add_parser("prepare", help="decide whether to run; remove stale outputs")
    backends.append(s)
    s.add_argument("--max-chunk-frames", type=_non_negative, default=0, help=cap_help)
    for name in ("exp_dir", "data_dir", "emb_dir"):
        s.add_argument(name)
    s = sub.add_parser("job", help="embed the utterances of one data dir (one split)")
    backends.append(s)
    s.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    s.add_argument("--batch-frames", type=_non_negative, default=0,
                   help="padded frames per batch (0: 20000 on CUDA, 2000 on CPU; default 0)")
    s.add_argument("--batch-size", type=_positive, default=64, help="utterances per batch (default 64)")
    s.add_argument("--max-chunk-frames", type=_non_negative, default=0, help=cap_help)
    s.add_argument("--block-frames", type=_positive, default=2_000_000,
                   help="raw frames held in memory at once (utterances are read block by block, "
                        "longest first; default %(default)s)")
    s.add_argument("--num-threads", type=_non_negative, default=0,
                   help="torch CPU threads (0: torch's default)")
    s.add_argument("--bf16", action="store_true",
                   help="bf16 autocast (CPU or CUDA; faster only where the device has native bf16, see "
                        "dmha.models.precision; default float32)")
    for name in ("exp_dir", "data_dir", "out_ark", "out_scp"):
        s.add_argument(name)
    s = sub.add_parser("merge", help="merge job outputs, write speaker means")
    backends.append(s)
    s.add_argument("--nj", type=_positive, required=True, help="number of jobs that ran")
    s.add_argument("--max-chunk-frames", type=_non_negative, default=0, help=cap_help)
    for name in ("exp_dir", "data_dir", "emb_dir"):
        s.add_argument(name)
    for s in backends:
        s.add_argument("--backend", choices=("torch", "onnx"), default="torch",
                       help="torch: <exp-dir>/best.pt; onnx: the exported model, onnxruntime (default torch)")
        s.add_argument("--onnx-model", default="",
                       help="--backend onnx: the .onnx file (default <exp-dir>/onnx/model.onnx)")
        s.add_argument("--model", default=BEST_MODEL, help="--backend torch: " + model_help)
    return p


# ---------------------------------------------------------------------------------------------
# up-to-date check


def _file_sig(path: Path) -> str:
    st = path.stat()
    return f"{path.name} {st.st_size} {st.st_mtime_ns}"


# dmha.experiment's names, repeated so that the onnx backend never imports torch (a test checks they agree)
CONFIG, BEST_MODEL = "config.yaml", "best.pt"


def onnx_model_path(exp_dir: Path, onnx_model: str = "") -> Path:
    """The exported model --backend onnx uses: --onnx-model, else <exp-dir>/onnx/model.onnx."""
    return Path(onnx_model) if onnx_model else exp_dir / "onnx" / "model.onnx"


def _fingerprint(exp_dir: Path, data_dir: Path, max_chunk_frames: int, backend: str = "torch",
                 onnx_model: str = "", model: str = BEST_MODEL) -> str:
    """What the outputs depend on: model files, features, the cap (not batch sizes: results don't)."""
    model_files = [CONFIG, model] if backend == "torch" else []
    parts = {"version": 1, "max_chunk_frames": max_chunk_frames,
             "inputs": [_file_sig(exp_dir / f) for f in model_files]
             + [_file_sig(data_dir / "feats.scp"), _file_sig(data_dir / "utt2spk")]}
    if backend != "torch":  # the torch text stays as it was, so existing outputs stay up to date
        parts["backend"] = backend
        parts["inputs"].insert(0, _file_sig(onnx_model_path(exp_dir, onnx_model)))
    text = json.dumps(parts, sort_keys=True)
    return text + "\n" + hashlib.sha1(text.encode()).hexdigest() + "\n"


def _check_inputs(exp_dir: Path, data_dir: Path, backend: str = "torch", onnx_model: str = "",
                  model: str = BEST_MODEL) -> None:
    if backend == "onnx":
        model_files = ((onnx_model_path(exp_dir, onnx_model), f"export it: steps/export_onnx.sh {exp_dir}"),)
    else:
        model_files = ((exp_dir / CONFIG, "run stage 3 (steps/train.sh)"),)
    for f, hint in (*model_files,
                    (data_dir / "utt2spk", "is it a Kaldi data dir?"),
                    (data_dir / "feats.scp", "compute features first: steps/make_fbank.sh " + str(data_dir))):
        if not f.is_file():
            raise UserError(f"{f} not found; {hint}")
    if backend == "torch":
        from dmha.experiment import model_path, read_exp_config
        from dmha.features.config import FbankConfig
        from dmha.features.stage import check_stored_features

        model_path(exp_dir, model)  # one clear line if it is missing or not inside the exp dir
        features = FbankConfig.from_dict(read_exp_config(exp_dir / CONFIG)["features"])
        check_stored_features(data_dir, features, f"the model in {exp_dir}")


def prepare(exp_dir: Path, data_dir: Path, emb_dir: Path, max_chunk_frames: int, backend: str = "torch",
            onnx_model: str = "", model: str = BEST_MODEL) -> bool:
    """True: run the jobs (stale outputs removed). False: complete outputs for these inputs exist."""
    _check_inputs(exp_dir, data_dir, backend, onnx_model, model)
    if backend == "onnx":
        _check_onnx_backend(exp_dir, data_dir, max_chunk_frames, onnx_model)
    stamp = emb_dir / STAMP
    fingerprint = _fingerprint(exp_dir, data_dir, max_chunk_frames, backend, onnx_model, model)
    if (stamp.is_file() and stamp.read_text() == fingerprint
            and all((emb_dir / f).is_file() for f in OUTPUTS)):
        return False
    # Outputs of another model/feature set must not survive a killed re-run looking complete.
    for name in (STAMP, *OUTPUTS):
        (emb_dir / name).unlink(missing_ok=True)
    emb_dir.mkdir(parents=True, exist_ok=True)
    return True


def _check_onnx_backend(exp_dir: Path, data_dir: Path, max_chunk_frames: int, onnx_model: str) -> None:
    """The exported model loads and was exported for the features stored in <data-dir> (fbank.yaml)."""
    import yaml

    from dmha.export.runtime import OnnxSpeakerModel

    if max_chunk_frames:
        raise UserError("--max-chunk-frames is not supported with --backend onnx (the graph normalises each "
                        "input whole); use --backend torch for capped embeddings")
    model = OnnxSpeakerModel(onnx_model_path(exp_dir, onnx_model))
    conf = data_dir / "fbank.yaml"
    if conf.is_file():
        with open(conf, encoding="utf-8") as f:
            model.check_features_config(yaml.safe_load(f) or {}, str(conf))


# ---------------------------------------------------------------------------------------------
# job


def _length_blocks(utts: list[str], lengths: dict[str, int], block_frames: int) -> list[list[str]]:
    """Utterances longest first, in blocks of at most ``block_frames`` raw frames (>= 1 utterance)."""
    order = sorted(utts, key=lambda u: (-lengths.get(u, 0), u))
    blocks: list[list[str]] = []
    cur: list[str] = []
    total = 0
    for u in order:
        n = lengths.get(u, 0)
        if cur and total + n > block_frames:
            blocks.append(cur)
            cur, total = [], 0
        cur.append(u)
        total += n
    if cur:
        blocks.append(cur)
    return blocks


def run_job(args: argparse.Namespace) -> None:
    from dmha.common.fileio import read_kv

    data_dir = Path(args.data_dir)
    _check_inputs(Path(args.exp_dir), data_dir, args.backend, args.onnx_model, args.model)
    feats_scp = read_kv(data_dir / "feats.scp")
    lengths: dict[str, int] = {}
    if (data_dir / "utt2num_frames").is_file():
        lengths = {u: int(n) for u, n in read_kv(data_dir / "utt2num_frames").items()}
    if args.backend == "onnx":
        from dmha.export.runtime import OnnxSpeakerModel

        if args.max_chunk_frames:
            raise UserError("--max-chunk-frames is not supported with --backend onnx")
        model = OnnxSpeakerModel(onnx_model_path(Path(args.exp_dir), args.onnx_model),
                                 num_threads=args.num_threads, device=args.device,
                                 batch_frames=args.batch_frames or 2000, batch_size=args.batch_size)
        log.info("%s: %d utterances, onnxruntime model %s (%s), batch-frames %d", data_dir, len(feats_scp),
                 model.path, model.quantized, model.batch_frames)
        table = _embed_blocks(feats_scp, lengths, data_dir, model.features_config.n_mels, args.block_frames,
                              lambda feats: model.embed_features(feats))
    else:
        table = _run_torch(args, data_dir, feats_scp, lengths)
    bad = [u for u, e in table.items() if not np.isfinite(e).all()]
    if bad:
        raise UserError(f"non-finite embedding for '{bad[0]}' ({len(bad)} utterances); check its features")
    _write_table(table, Path(args.out_ark), Path(args.out_scp))
    log.info("wrote %d embeddings to %s", len(table), args.out_scp)


def _run_torch(args: argparse.Namespace, data_dir: Path, feats_scp: dict[str, str],
               lengths: dict[str, int]) -> dict[str, np.ndarray]:
    import torch

    from dmha.embed.xvectors import default_batch_frames, embed_utterances
    from dmha.experiment import load_exp

    if args.num_threads > 0:
        torch.set_num_threads(args.num_threads)
    exp = load_exp(args.exp_dir, args.device, model=args.model)
    in_dim = int(exp.config["model"]["in_dim"])
    log.info("%s: %d utterances, model %s/%s (epoch %s) on %s, batch-frames %d, max-chunk-frames %d",
             data_dir, len(feats_scp), exp.exp_dir, exp.model_file, exp.best.get("epoch"), exp.device,
             args.batch_frames or default_batch_frames(exp.device), args.max_chunk_frames)

    def embed(feats: list[np.ndarray]) -> np.ndarray:
        return embed_utterances(exp.model, feats, device=exp.device, norm=exp.norm,
                                batch_frames=args.batch_frames, batch_size=args.batch_size,
                                max_chunk_frames=args.max_chunk_frames, bf16=args.bf16)

    return _embed_blocks(feats_scp, lengths, data_dir, in_dim, args.block_frames, embed)


def _embed_blocks(feats_scp: dict[str, str], lengths: dict[str, int], data_dir: Path, in_dim: int,
                  block_frames: int, embed: Callable[[list[np.ndarray]], np.ndarray]
                  ) -> dict[str, np.ndarray]:
    """Read the features block by block (longest first) and embed each block with ``embed``."""
    import kaldiio
    from tqdm import tqdm

    utts = list(feats_scp)
    table: dict[str, np.ndarray] = {}
    bar = tqdm(total=len(utts), desc="embeddings", unit="utt", file=sys.stderr, dynamic_ncols=True,
               mininterval=1.0 if sys.stderr.isatty() else 30.0)
    for block in _length_blocks(utts, lengths, block_frames):
        feats = []
        for u in block:
            try:
                mat = np.array(kaldiio.load_mat(feats_scp[u]), dtype=np.float32)  # own, writable copy
            except Exception as e:  # missing/corrupt ark: name the utterance and the file
                raise UserError(f"{data_dir}/feats.scp: cannot read features of '{u}' ({type(e).__name__}: "
                                f"{e}); re-run steps/make_fbank.sh") from None
            if mat.ndim != 2 or mat.shape[1] != in_dim or mat.shape[0] < 1:
                raise UserError(f"{data_dir}/feats.scp: features of '{u}' have shape {mat.shape}, the model "
                                f"expects (T >= 1, {in_dim}); were they computed with the exp's features "
                                "config?")
            feats.append(mat)
        for u, e in zip(block, embed(feats)):
            table[u] = e
        bar.update(len(block))
    bar.close()
    return table


def _write_table(table: dict[str, np.ndarray], ark: Path, scp: Path) -> None:
    """kaldiio ark + scp in C-sorted key order; the scp (the index readers use) is renamed into place last.

    The scp holds the ark's absolute path (as stage 1's feats.scp does), so it reads from any directory.
    """
    import kaldiio

    scp.parent.mkdir(parents=True, exist_ok=True)
    ark = ark.resolve()
    tmp_scp = scp.with_name(f".{scp.name}.{os.getpid()}.tmp")
    try:
        with kaldiio.WriteHelper(f"ark,scp:{ark},{tmp_scp}") as writer:
            for key in sorted(table, key=lambda k: k.encode("utf-8")):
                writer(key, np.asarray(table[key], dtype=np.float32))
        os.replace(tmp_scp, scp)
    except BaseException:
        tmp_scp.unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------------------------
# merge


def merge(exp_dir: Path, data_dir: Path, emb_dir: Path, nj: int, max_chunk_frames: int,
          backend: str = "torch", onnx_model: str = "", model: str = BEST_MODEL) -> str:
    import kaldiio

    from dmha.common.fileio import atomic_open, read_kv, write_kv
    from dmha.data.datadir import load_data_dir
    from dmha.embed.xvectors import speaker_means

    table: dict[str, np.ndarray] = {}
    for j in range(1, nj + 1):
        scp = emb_dir / "jobs" / f"xvector.{j}.scp"
        if not scp.is_file():
            raise UserError(f"{scp} not found: job {j} did not finish; see {emb_dir}/log/extract.{j}.log")
        for key, vec in kaldiio.load_scp(str(scp)).items():
            if key in table:
                raise UserError(f"{scp}: utterance '{key}' was embedded by two jobs; delete {emb_dir}/jobs "
                                "and re-run")
            table[key] = np.asarray(vec, dtype=np.float32)
    dd = load_data_dir(data_dir)
    feats_utts = read_kv(data_dir / "feats.scp")
    no_feats = [u for u in dd.utts if u not in feats_utts]
    if no_feats:
        raise UserError(f"{data_dir}: utterance '{no_feats[0]}' has no features ({len(no_feats)} such); run "
                        "utils/fix_data_dir.sh on it (or re-run steps/make_fbank.sh)")
    missing = [u for u in feats_utts if u not in table]
    if missing:
        raise UserError(f"{emb_dir}: no embedding for '{missing[0]}' ({len(missing)} missing); re-run "
                        "steps/extract_embeddings.sh")
    means, counts = speaker_means(table, dd.spk2utt(), where=str(emb_dir))
    _write_table(table, emb_dir / "xvector.ark", emb_dir / "xvector.scp")
    _write_table(means, emb_dir / "spk_xvector.ark", emb_dir / "spk_xvector.scp")
    write_kv(emb_dir / "num_utts.ark", counts)
    with atomic_open(emb_dir / STAMP) as f:
        f.write(_fingerprint(exp_dir, data_dir, max_chunk_frames, backend, onnx_model, model))
    for j in range(1, nj + 1):
        for ext in ("ark", "scp"):
            (emb_dir / "jobs" / f"xvector.{j}.{ext}").unlink(missing_ok=True)
    if not any((emb_dir / "jobs").iterdir()):
        (emb_dir / "jobs").rmdir()
    dim = next(iter(table.values())).shape[0] if table else 0
    return f"{len(table)} utterance embeddings (dim {dim}) and {len(means)} speaker means in {emb_dir}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.cmd == "prepare":
        return 0 if prepare(Path(args.exp_dir), Path(args.data_dir), Path(args.emb_dir),
                            args.max_chunk_frames, args.backend, args.onnx_model, args.model) else SKIP
    if args.cmd == "job":
        run_job(args)
        return 0
    print(merge(Path(args.exp_dir), Path(args.data_dir), Path(args.emb_dir), args.nj, args.max_chunk_frames,
                args.backend, args.onnx_model, args.model))
    return 0


if __name__ == "__main__":
    run_main(main)
