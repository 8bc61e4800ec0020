"""Import the reference code's training label file (and validation client/impostor pair files) as Kaldi
data dirs with trials; conventions in dmha.corpus.reference_lists."""

from __future__ import annotations

import argparse

from dmha.bin._cli import run_main
from dmha.common.errors import UserError
from dmha.corpus.reference_lists import import_train_labels, import_validation_pairs


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="local/import_reference_lists.sh", description=__doc__)
    p.add_argument("--audio-dir",
                   help="folder the label file's paths are relative to (reference: --train_data_dir)")
    p.add_argument("--clients", help="validation pair file of same-speaker pairs")
    p.add_argument("--impostors", help="validation pair file of different-speaker pairs")
    p.add_argument("--val-dir", help="output data dir for the validation utterances and trials")
    p.add_argument("--valid-audio-dir", help="folder the pair files' paths are relative to "
                   "(reference: --valid_data_dir; default --audio-dir)")
    p.add_argument("train_labels", help="label file: '<path> <label> [-1]' per line")
    p.add_argument("train_dir", help="output data dir for the training utterances")
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    val_opts = [a.clients, a.impostors, a.val_dir]
    if any(val_opts) and not all(val_opts):
        raise UserError("--clients, --impostors and --val-dir go together (give all three or none)")
    n_spk = import_train_labels(a.train_labels, a.train_dir, audio_dir=a.audio_dir)
    print(f"import_reference_lists: {a.train_dir}: {n_spk} speakers")
    if a.val_dir:
        trials = import_validation_pairs(a.clients, a.impostors, a.val_dir,
                                         audio_dir=a.valid_audio_dir or a.audio_dir)
        n_tgt = int(trials.labels.sum())
        print(f"import_reference_lists: {a.val_dir}: {len(trials)} trials ({n_tgt} target)")
    return 0


if __name__ == "__main__":
    run_main(main)
