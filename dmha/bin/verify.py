"""dmha-verify: are two recordings the same speaker? Prints the cosine score and a decision.

The decision compares the score with a threshold: --threshold if given, else the one stored in
<exp>/threshold.yaml, the EER operating point of the validation trials (data/<train>/lists/val_trials,
held out from training) scored with the exp's best model. run.sh stage 4 writes it with
steps/compute_threshold.sh <exp> <lists-dir>; run that once for an exp trained otherwise.
Output (one line): <score> same|different (threshold <t> from <source>). Exit 0 in both cases.
With --onnx <exp>/onnx/model.onnx instead of --exp, the exported model runs on onnxruntime without
torch; its threshold is the one stored at export (from the exp's threshold.yaml).
"""

from __future__ import annotations

import argparse

from dmha.bin._cli import run_main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dmha-verify", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Example: dmha-verify --exp exp/mini_dmha a.wav b.wav")
    model = p.add_mutually_exclusive_group(required=True)
    model.add_argument("--exp", help="trained experiment dir (config.yaml, best.pt)")
    model.add_argument("--onnx", help="exported model (steps/export_onnx.sh), run without torch")
    p.add_argument("--threshold", type=float,
                   help="cosine threshold (default: <exp>/threshold.yaml, see above)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--max-chunk-frames", type=int, default=0,
                   help="length cap as in steps/extract_embeddings.sh (0 = none; default 0)")
    p.add_argument("wav1", help="first recording (wav/flac path)")
    p.add_argument("wav2", help="second recording")
    return p


def _main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from dmha.common.errors import UserError
    from dmha.features.audio import AudioError

    if args.onnx:
        from dmha.export.runtime import OnnxSpeakerModel

        if args.max_chunk_frames:
            raise UserError("--max-chunk-frames is not supported with --onnx; use --exp")
        model = OnnxSpeakerModel(args.onnx, device=args.device)
        source = "--threshold" if args.threshold is not None else f"{args.onnx} (exported threshold)"
    else:
        from dmha.api import load_model
        from dmha.experiment import THRESHOLD

        model = load_model(args.exp, args.device, max_chunk_frames=args.max_chunk_frames)
        source = "--threshold" if args.threshold is not None else f"{args.exp}/{THRESHOLD}"
    embs = []
    for w in (args.wav1, args.wav2):
        try:
            embs.append(model.embed(w))
        except AudioError as e:
            raise UserError(f"{w}: {e}") from None
    score, same = model.verify(embs[0], embs[1], args.threshold)
    thr = args.threshold if args.threshold is not None else model.threshold
    print(f"{score:.4f} {'same' if same else 'different'} (threshold {thr:.4f} from {source})")
    return 0


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (``dmha-verify``)."""
    run_main(_main, argv)


if __name__ == "__main__":
    main()
