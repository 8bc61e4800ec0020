"""Prepare the VoxCeleb data dirs (run.sh --corpus voxceleb, stage 0); see dmha.corpus.voxceleb_prep.

Utterance ids are <spk>-<video>-<nnnnn> (e.g. id10270-x6uYqmx31kE-00001). VoxCeleb2 m4a audio is read
through an ffmpeg pipe in wav.scp (--m4a-mode pipe) or converted once to wav (--m4a-mode convert).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dmha.bin._cli import run_main
from dmha.corpus.voxceleb_prep import prepare_vox1, prepare_vox2


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="local/prepare_voxceleb.sh", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vox1", required=True, help="VoxCeleb1 root: {dev,test}/wav/<spk>/<video>/<nnnnn>.wav")
    p.add_argument("--vox2", help="VoxCeleb2 root: dev/aac/<spk>/<video>/<nnnnn>.m4a (or dev/wav/...)")
    p.add_argument("--trials-dir", help="folder with the official trial lists (default: --vox1)")
    p.add_argument("--m4a-mode", choices=("pipe", "convert"), default="pipe",
                   help="pipe: decode m4a with ffmpeg in wav.scp (default); convert: to wav files once")
    p.add_argument("--convert-dir",
                   help="where --m4a-mode convert writes wav (default <data-dir>/vox2_dev_wav)")
    p.add_argument("--nj", type=int, default=4, help="parallel ffmpeg processes for --m4a-mode convert")
    p.add_argument("--val-speakers", type=int, default=40,
                   help="VoxCeleb2 dev speakers held out of training for validation (default 40)")
    p.add_argument("--val-utts-per-spk", type=int, default=25,
                   help="utterances per validation speaker (default 25; 0 = all)")
    p.add_argument("--val-trials", type=int, default=20000, help="max validation trials (default 20000)")
    p.add_argument("--max-missing-pct", type=float, default=1.0,
                   help="fail if more than this %% of a list's trials name absent utterances (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed for the validation split and trials")
    p.add_argument("data_dir", help="where the data dirs go (run.sh: data)")
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    data = Path(a.data_dir)
    data.mkdir(parents=True, exist_ok=True)
    made = prepare_vox1(a.vox1, data, a.trials_dir, max_missing_pct=a.max_missing_pct)
    if a.vox2:
        prepare_vox2(a.vox2, data, m4a_mode=a.m4a_mode, convert_dir=a.convert_dir, nj=a.nj,
                     val_speakers=a.val_speakers, val_utts_per_spk=a.val_utts_per_spk,
                     val_trials=a.val_trials, seed=a.seed)
    print(f"prepare_voxceleb: data dirs in {data}: " + " ".join(
        (["vox2_train", "vox2_val"] if a.vox2 else []) + ["vox1", *made]))
    return 0


if __name__ == "__main__":
    run_main(main)
