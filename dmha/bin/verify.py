"""dmha-verify: are two recordings the same speaker? Prints the cosine score and a decision.

The decision compares the score with a threshold: --threshold if given, else the one stored in
<exp>/threshold.yaml, the EER operating point of the validation trials (data/<train>/lists/val_trials,
held out from training) scored with the exp's best model. run.sh stage 4 writes it with
steps/compute_threshold.sh <exp> <lists-dir>; run that once for an exp trained otherwise.
Output (one line): <score> same|different (threshold <t> from <source>). Exit 0 in both cases.
"""

from __future__ import annotations

import argparse

from dmha.bin._cli import run_main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dmha-verify", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Example: dmha-verify --exp exp/mini_dmha a.wav b.wav")
    p.add_argument("--exp", required=True, help="trained experiment dir (config.yaml, best.pt)")
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
    from dmha.api import load_model
    from dmha.common.errors import UserError
    from dmha.experiment import THRESHOLD
    from dmha.features.audio import AudioError

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
