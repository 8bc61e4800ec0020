"""Export a trained experiment's model to ONNX for deployment (called by steps/export_onnx.sh).

Writes <exp-dir>/onnx/model.onnx (float32; with --quantize int8 also model.int8.onnx). Inputs of the
graph: feats (batch, frames, n_mels) raw log-mels zero-padded, lengths (batch,) int64; output:
embedding (batch, embed_dim). The graph does the per-utterance CMN; the feature settings (and the
exp's decision threshold for these weights) are stored in the model's metadata. Run it with
dmha-embed --onnx / dmha-verify --onnx / steps/extract_embeddings.sh --backend onnx (no torch needed).
"""

from __future__ import annotations

import argparse

from dmha.bin._cli import run_main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dmha.bin.export_onnx", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 14; default 17)")
    p.add_argument("--quantize", choices=("none", "int8"), default="none",
                   help="also write an int8 model (onnxruntime static quantisation; needs --calib-data)")
    p.add_argument("--calib-data", help="data dir with feats.scp to calibrate the int8 model on "
                                        "(e.g. the training set)")
    p.add_argument("--model", default="best.pt",
                   help="weights file in the exp dir to export (default best.pt; or e.g. avg_last5.pt "
                        "from steps/average_models.sh)")
    p.add_argument("--winograd", choices=("auto", "off", "all"), default="auto",
                   help="3x3 convolutions of the float graph computed as Winograd F(4x4 or 2x2, 3x3): auto "
                        "(default) = those with >= 128 in and >= 256 out channels, where it pays on CPU "
                        "(the paper model's 6 wide layers; none of the mini model's); off = all direct; "
                        "all = every one with > 1 input channel. Same results to float rounding")
    p.add_argument("--out-dir", help="output dir (default <exp-dir>/onnx)")
    p.add_argument("exp_dir", help="trained experiment dir (config.yaml, best.pt)")
    return p


def _main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from dmha.export.onnx_export import export_onnx

    written = export_onnx(args.exp_dir, model_file=args.model, opset=args.opset, quantize=args.quantize,
                          calib_data=args.calib_data, out_dir=args.out_dir, winograd=args.winograd)
    for path in written:
        print(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> None:
    run_main(_main, argv)


if __name__ == "__main__":
    main()
