"""dmha-verify: are two recordings the same speaker? Prints the score, the decision and why.

Several enrolment recordings of one speaker may come before the test recording (the last one): they are
enrolled as one model, the mean of their embeddings (with a PLDA back-end scored by the count of
recordings, as steps/score.sh --enroll does).

With a calibration (<exp>/calibration.yaml: score -> log-likelihood ratio, fitted on the validation
trials, data/<train>/lists/val_trials, held out from training), the decision is the Bayes decision for a
target prior --p-target (default 0.01, the DCF's): same speaker when LLR >= log((1 - p) / p), 4.595 for
0.01. Without one, the score is compared with <exp>/threshold.yaml, the EER operating point of the same
validation trials. --threshold (a threshold on the score) overrides both. run.sh stage 4 writes both files
with steps/compute_threshold.sh <exp> <lists-dir>; run that once for an exp trained otherwise.
With a scoring back-end in the exp (<exp>/backend: mean + LDA [+ PLDA], steps/train_backend.sh; or exported
into the ONNX model), the score is the cosine (PLDA: log-likelihood ratio) after it, as in stage 5, and
threshold/calibration belong to it.
Output (one line): <score> same|different (LLR <llr> >= / < <t> for P_target <p>; calibration <file>)
or, without calibration: <score> same|different (threshold <t> from <source>). Exit 0 in both cases.
With --onnx <exp>/onnx/model.onnx instead of --exp, the exported model runs on onnxruntime without
torch and decides by the same rule on what was exported with it (the exp's threshold.yaml and
calibration.yaml for those weights); the output names the model file as the source.
"""

from __future__ import annotations

import argparse

from dmha.bin._cli import run_main


def _prior(text: str) -> float:
    p = float(text)
    if not 0.0 < p < 1.0:
        raise argparse.ArgumentTypeError(f"expected a probability in (0, 1), got {text}")
    return p


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dmha-verify", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Examples: dmha-verify --exp exp/mini_dmha a.wav b.wav\n"
                                       "          dmha-verify --exp exp/mini_dmha enrol1.wav enrol2.wav "
                                       "enrol3.wav test.wav")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--exp", help="trained experiment dir (config.yaml, best.pt)")
    source.add_argument("--onnx", help="exported model (steps/export_onnx.sh), run without torch")
    p.add_argument("--model", default="best.pt",
                   help="weights file in the exp dir, e.g. avg_last5.pt (default %(default)s)")
    p.add_argument("--threshold", type=float,
                   help="threshold on the score (cosine, or the PLDA LLR with a plda back-end; default: "
                        "Bayes decision on the calibrated LLR, else "
                        "<exp>/threshold.yaml; see above)")
    p.add_argument("--p-target", type=_prior, default=0.01,
                   help="prior probability of a same-speaker trial for the Bayes decision (default "
                        "%(default)s)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--max-chunk-frames", type=int, default=0,
                   help="length cap as in steps/extract_embeddings.sh (0 = none; default 0)")
    p.add_argument("wavs", nargs="+", metavar="WAV",
                   help="enrolment recording(s) of one speaker, then the test recording (wav/flac paths)")
    return p


def _main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if len(args.wavs) < 2:
        parser.error("give at least two recordings: enrolment recording(s), then the test recording")
    if args.onnx:
        model, sources = _onnx_model(args), (f"{args.onnx} (exported calibration)",
                                              f"{args.onnx} (exported threshold)")
    else:
        from dmha.api import load_model
        from dmha.experiment import CALIBRATION, THRESHOLD

        model = load_model(args.exp, args.device, max_chunk_frames=args.max_chunk_frames, model=args.model)
        sources = (f"calibration {args.exp}/{CALIBRATION}", f"{args.exp}/{THRESHOLD}")
    embs = _embed_all(model, args)
    v = model.verify(embs[:-1], embs[-1], args.threshold, args.p_target)
    decision = "same" if v.same else "different"
    enrolled = _enrolled(args)
    if v.basis == "llr":
        print(f"{v.score:.4f} {decision} (LLR {v.llr:.3f} {'>=' if v.same else '<'} Bayes threshold "
              f"{v.threshold:.3f} for P_target {v.p_target:g}; {sources[0]}{enrolled})")
    else:
        source = "--threshold" if args.threshold is not None else sources[1]
        llr = "" if v.llr is None else f"; LLR {v.llr:.3f}"
        print(f"{v.score:.4f} {decision} (threshold {v.threshold:.4f} from {source}{llr}{enrolled})")
    return 0


def _enrolled(args: argparse.Namespace) -> str:
    n = len(args.wavs) - 1
    return f"; one model of {n} enrolment recordings" if n > 1 else ""


def _embed_all(model, args: argparse.Namespace) -> list:
    from dmha.common.errors import UserError
    from dmha.features.audio import AudioError

    embs = []
    for w in args.wavs:
        try:
            embs.append(model.embed(w))
        except AudioError as e:
            raise UserError(f"{w}: {e}") from None
    return embs


def _onnx_model(args: argparse.Namespace):
    """The torch-free path: onnxruntime, and the threshold/calibration stored in the exported model."""
    from dmha.common.errors import UserError
    from dmha.export.runtime import OnnxSpeakerModel

    if args.max_chunk_frames:
        raise UserError("--max-chunk-frames is not supported with --onnx; use --exp")
    if args.model != "best.pt":
        raise UserError("--model chooses weights of an exp dir; with --onnx, export them with "
                        "steps/export_onnx.sh --model NAME")
    return OnnxSpeakerModel(args.onnx, device=args.device)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (``dmha-verify``)."""
    run_main(_main, argv)


if __name__ == "__main__":
    main()
