"""Augmented copies of a data dir (reverb, noise, music, babble), as a new data dir of wav.scp pipes.

Thin CLI over :mod:`dmha.corpus.augmented` (the plan) and :mod:`dmha.augment.spec` (the signal); its
shell face is ``steps/augment_data_dir.sh``. See ``--help``.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
from pathlib import Path

from dmha.bin._cli import run_main
from dmha.common.errors import UserError

log = logging.getLogger("dmha.augment")


def _range(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW:HIGH, got '{text}'") from None
    if lo > hi:
        raise argparse.ArgumentTypeError(f"LOW > HIGH in '{text}'")
    return lo, hi


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m dmha.bin.augment_data_dir",
        description="Write augmented copies of every utterance of <src-dir> to <dest-dir> (ids "
                    "<utt>-reverb, -noise, -music, -babble; same speakers). wav.scp entries are pipes of "
                    "python -m dmha.bin.augment_wav (no audio stored) or, with --write-wav, files. Every "
                    "choice is drawn from (--seed, copy id): the same line always gives the same samples. "
                    "Combine the result with the clean dir (utils/combine_data.sh).")
    p.add_argument("--kinds", default="reverb,noise,music,babble",
                   help="comma-separated copies to make (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="augmentation seed (default %(default)s)")
    p.add_argument("--subset", type=int, default=0,
                   help="keep a random N of all copies (Kaldi v2: 1M of 5M); 0 keeps all (default)")
    p.add_argument("--musan", help="MUSAN folder (noise/, music/, speech/): real noise, music and babble")
    p.add_argument("--rirs", help="RIRS_NOISES folder (its simulated small/medium rooms) or any folder of "
                                  "impulse responses; default: simulated rooms")
    p.add_argument("--noise-dir", action="append", default=[], help="folder of noise files (repeatable)")
    p.add_argument("--music-dir", action="append", default=[], help="folder of music files (repeatable)")
    p.add_argument("--noise-snr", type=_range, help="noise SNR range LOW:HIGH in dB (default 0:15)")
    p.add_argument("--music-snr", type=_range, help="music SNR range (default 5:15)")
    p.add_argument("--babble-snr", type=_range, help="babble SNR range (default 13:20)")
    p.add_argument("--rt60", type=_range, help="simulated rooms' RT60 range in s (default 0.2:1.0)")
    p.add_argument("--write-wav", metavar="DIR",
                   help="store the copies as 16-bit WAV files in DIR (resumable) instead of pipes")
    p.add_argument("--nj", type=int, default=1, help="processes for --write-wav (default %(default)s)")
    p.add_argument("src_dir")
    p.add_argument("dest_dir")
    return p


def _write_one(args: tuple[str, list[str], str]) -> str:
    """Files mode: compute one copy (what its pipe would print) and store it atomically."""
    from dmha.common.fileio import atomic_open
    from dmha.features.audio import augmented_wav_bytes

    utt, argv, path = args
    if not Path(path).is_file():  # written atomically: an existing file is complete
        with atomic_open(path, "wb") as f:
            f.write(augmented_wav_bytes(argv))
    return utt


def write_wavs(plan: dict, src_wav: dict[str, str], wav_dir: Path, nj: int) -> dict[str, str]:
    tasks = [(u, [*spec.to_argv(), src_wav[src]], str(wav_dir / f"{u}.wav"))
             for u, (_, spec, src) in plan.items()]
    wav_dir.mkdir(parents=True, exist_ok=True)
    if nj > 1:
        with mp.get_context("spawn").Pool(nj) as pool:
            for k, _ in enumerate(pool.imap_unordered(_write_one, tasks, chunksize=8), 1):
                if k % 500 == 0:
                    log.info("written %d of %d copies", k, len(tasks))
    else:
        for t in tasks:
            _write_one(t)
    return {u: p for u, _, p in tasks}


def main(argv: list[str] | None = None) -> int:
    from dmha.augment.sources import collect_sources
    from dmha.corpus.augmented import load_source, plan_augmentation, summary, write_copies
    from dmha.data.datadir import validate_data_dir

    a = build_parser().parse_args(argv)
    if a.nj < 1:
        raise UserError(f"--nj {a.nj}: must be >= 1")
    src = load_source(a.src_dir)
    sources = collect_sources(a.musan, a.rirs, a.noise_dir, a.music_dir)
    snrs = {k: v for k, v in (("noise", a.noise_snr), ("music", a.music_snr), ("babble", a.babble_snr)) if v}
    kwargs = {"rt60_range": a.rt60} if a.rt60 else {}
    kinds = [k.strip() for k in a.kinds.replace(" ", ",").split(",") if k.strip()]
    plan = plan_augmentation(src, kinds, a.seed, sources, a.subset, snrs, **kwargs)
    log.info("%s: %d copies of %d utterances (%s); sources: %s", a.dest_dir, len(plan), len(src.utt2spk),
             summary(plan), sources.describe())
    paths = None
    if a.write_wav:
        paths = write_wavs(plan, src.files["wav.scp"], Path(a.write_wav), a.nj)
    if not write_copies(a.dest_dir, src, plan, paths):
        print(f"augment_data_dir: {a.dest_dir} is up to date ({len(plan)} copies); nothing to do")
        return 0
    problems = validate_data_dir(a.dest_dir, check_feats=False)
    if problems:
        raise UserError(f"{a.dest_dir} does not validate: {problems[0]}")
    print(f"augment_data_dir: wrote {a.dest_dir} ({len(plan)} copies: {summary(plan)})")
    return 0


if __name__ == "__main__":
    run_main(main)
