"""Stage 2 CLI: speaker map, length-filtered training list and validation trials (see dmha.data.lists)."""

from __future__ import annotations

import argparse

from dmha.bin._cli import run_main
from dmha.config import load_config
from dmha.data.datadir import carry_feature_settings
from dmha.data.lists import prepare_lists
from dmha.features.config import FbankConfig
from dmha.features.stage import check_stored_features


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m dmha.bin.prepare_lists",
        description="Write <lists-dir>/{spk2int, train.list, train_feats.scp, val_trials, val_feats.scp, "
                    "summary} from a training and a validation data dir (both with feats.scp). Training "
                    "utterances shorter than train.min_frames are dropped (counted); those shorter than "
                    "train.crop_frames are padded by repetition at training time. Validation trials are "
                    "<val-data-dir>/trials, or generated from its utt2spk when it has none.")
    p.add_argument("--config", required=True, help="YAML config (its train.min_frames, train.crop_frames, "
                                                   "train.seed are used)")
    p.add_argument("--override", action="append", default=[], help="dotted overrides, as for training")
    p.add_argument("--max-val-trials", type=int, default=20000,
                   help="cap on generated validation trials (default 20000)")
    p.add_argument("train_dir", help="training data dir (utt2spk, feats.scp, utt2num_frames)")
    p.add_argument("val_dir", help="validation data dir (feats.scp; trials or utt2spk)")
    p.add_argument("lists_dir", help="output dir")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = load_config(args.config, " ".join(args.override))
    features = FbankConfig.from_dict(cfg["features"])
    for data_dir in (args.train_dir, args.val_dir):
        check_stored_features(data_dir, features, f"the config {args.config}")
    t = cfg["train"]
    prepare_lists(args.train_dir, args.val_dir, args.lists_dir, min_frames=t["min_frames"],
                  crop_frames=t["crop_frames"], max_val_trials=args.max_val_trials, seed=t["seed"])
    # the lists point at these features: training checks their record against its config (stage 3 is
    # often re-run alone after a config change)
    carry_feature_settings(args.lists_dir, [args.train_dir])
    return 0


if __name__ == "__main__":
    run_main(main)
