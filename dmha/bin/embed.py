"""dmha-embed: speaker embeddings of wav files with a trained dmha experiment.

Input: wav paths on the command line (key = file name without extension), or a Kaldi wav.scp with
--scp (key = utterance id; entries may be paths or pipes ``cmd |``). Output in --out-dir:
  --format ark (default): xvector.ark + xvector.scp (kaldiio.load_scp / Kaldi readable)
  --format npy:           <key>.npy per recording (numpy.load), '/' in keys replaced by '_'
Audio is read and resampled to the model's rate, and features and embeddings are computed exactly as
in the recipe (features: section of <exp>/config.yaml, best.pt), so an embedding equals the one
steps/extract_embeddings.sh writes for the same file.
With --onnx <exp>/onnx/model.onnx (steps/export_onnx.sh) instead of --exp, the exported model runs on
onnxruntime and torch is never imported (numpy log-mels with the model's stored feature settings; audio
must already be at the model's sample rate).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

from dmha.bin._cli import run_main
from dmha.common.errors import UserError

log = logging.getLogger("dmha.embed")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dmha-embed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Example: dmha-embed --exp exp/mini_dmha --scp data/mini_test/wav.scp "
                                       "-o emb/ ;  dmha-embed --exp exp/mini_dmha --format npy -o out/ a.wav")
    model = p.add_mutually_exclusive_group(required=True)
    model.add_argument("--exp", help="trained experiment dir (config.yaml, best.pt)")
    model.add_argument("--onnx", help="exported model (steps/export_onnx.sh), run without torch")
    p.add_argument("--model", default="best.pt",
                   help="with --exp: weights file in the exp dir, e.g. avg_last5.pt (default %(default)s)")
    p.add_argument("-o", "--out-dir", required=True, help="output dir (created)")
    p.add_argument("--scp", help="Kaldi wav.scp to embed (instead of wav paths)")
    p.add_argument("--format", choices=("ark", "npy"), default="ark", help="output format (default ark)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--num-threads", type=int, default=0, help="--onnx: onnxruntime threads (0: its default)")
    p.add_argument("--max-chunk-frames", type=int, default=0,
                   help="length cap as in steps/extract_embeddings.sh (0 = none; default 0)")
    p.add_argument("--batch", type=int, default=64, help="recordings embedded per batch (default 64)")
    p.add_argument("wavs", nargs="*", help="wav files (key: file name without extension)")
    return p


def _inputs(args: argparse.Namespace) -> list[tuple[str, str]]:
    from dmha.common.fileio import read_kv

    if args.scp and args.wavs:
        raise UserError("give either --scp or wav paths, not both")
    if args.scp:
        return list(read_kv(args.scp).items())
    if not args.wavs:
        raise UserError("nothing to embed: give wav paths or --scp <wav.scp> (see --help)")
    items: dict[str, str] = {}
    for w in args.wavs:
        key = Path(w).stem
        if key in items:
            raise UserError(f"two inputs have the key '{key}' ({items[key]} and {w}); "
                            "rename one or use --scp")
        items[key] = w
    return list(items.items())


def _main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.batch < 1 or args.max_chunk_frames < 0:
        raise UserError("--batch must be >= 1 and --max-chunk-frames >= 0")
    items = _inputs(args)
    from tqdm import tqdm

    from dmha.features.audio import AudioError

    if args.onnx:
        from dmha.export.runtime import OnnxSpeakerModel

        if args.max_chunk_frames:
            raise UserError("--max-chunk-frames is not supported with --onnx (the graph normalises each "
                            "input whole); use --exp for capped embeddings")
        model = OnnxSpeakerModel(args.onnx, num_threads=args.num_threads, device=args.device)
    else:
        from dmha.api import load_model

        model = load_model(args.exp, args.device, max_chunk_frames=args.max_chunk_frames, model=args.model)
    table: dict[str, np.ndarray] = {}
    bar = tqdm(total=len(items), unit="wav", file=sys.stderr, disable=len(items) < 2)
    for start in range(0, len(items), args.batch):
        chunk = items[start:start + args.batch]
        feats = []
        for key, entry in chunk:
            try:
                feats.append(model.features(entry))
            except AudioError as e:
                raise UserError(f"{key} ({entry}): {e}") from None
        for (key, _), emb in zip(chunk, model.embed_features(feats)):
            table[key] = emb
        bar.update(len(chunk))
    bar.close()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if args.format == "npy":
        from dmha.common.fileio import atomic_open

        for key, emb in table.items():
            with atomic_open(out / f"{key.replace('/', '_')}.npy", "wb") as f:
                np.save(f, emb)
        print(f"wrote {len(table)} embeddings as {out}/<key>.npy")
    else:
        from dmha.bin.extract_embeddings import _write_table

        _write_table(table, out / "xvector.ark", out / "xvector.scp")
        print(f"wrote {len(table)} embeddings to {out}/xvector.scp")
    return 0


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (``dmha-embed``)."""
    run_main(_main, argv)


if __name__ == "__main__":
    main()
