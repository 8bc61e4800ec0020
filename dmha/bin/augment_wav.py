"""wav.scp pipe tool: one augmented (or speed-perturbed) copy of an utterance, as WAV on stdout.

Written into wav.scp lines by steps/augment_data_dir.sh and steps/perturb_data_dir_speed.sh; see
:mod:`dmha.augment.spec` for what the options mean and why the output is a pure function of them.
Stage 1 runs these lines in-process (:mod:`dmha.features.audio`); this CLI is what any other reader of
the wav.scp (Kaldi, sox, a shell) runs.
"""

from __future__ import annotations

import sys

from dmha.bin._cli import run_main


def main(argv: list[str] | None = None) -> int:
    from dmha.augment.spec import argument_parser
    from dmha.features.audio import augmented_wav_bytes

    args = list(sys.argv[1:] if argv is None else argv)
    argument_parser().parse_args(args)  # --help and usage errors
    data = augmented_wav_bytes(args)
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    run_main(main)
