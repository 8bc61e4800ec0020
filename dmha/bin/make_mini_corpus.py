"""Build the mini corpus data dirs from already fetched packages (local/make_mini_corpus.sh fetches them).

Writes <data>/mini_train, <data>/mini_val, <data>/mini_test (+ trials) and, with --real-test,
<data>/real_test (+ trials); audio under <data>/mini_audio/. With --rhvoice, RHVoice persons join
mini_train and mini_val (audio under <data>/mini_audio/rhvoice/), with --pico the SVOX Pico voices
(<data>/mini_audio/pico/), with --festival the Festival/Flite voices (<data>/mini_audio/festival/).
Prints speaker, utterance, hour and trial counts per set. ``--print-packages`` only lists the Debian
voice packages the chosen voices need (``--print-rhvoice-packages`` / ``--print-festival-packages``:
those of the RHVoice / Festival voices, fetched with their dependencies).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from dmha.bin._cli import run_main
from dmha.common.errors import UserError
from dmha.common.fileio import read_kv, write_kv
from dmha.corpus import asterisk, festival, pico, real_sources, rhvoice
from dmha.corpus.mini import (
    Engine,
    SynthConfig,
    SynthVoice,
    augment_speakers,
    build_synthetic,
    in_percent_units,
    pool_map,
    summarize,
    synthesize_voices,
    write_set,
    write_wav,
)
from dmha.corpus.real_corpus import RealConfig, build_real
from dmha.corpus.synth import setup_espeak
from dmha.corpus.voices import select_voices, split_speakers
from dmha.data.trials import make_trials

log = logging.getLogger("make_mini_corpus")


def _range(text: str) -> tuple[int, int]:
    """'50' -> (50, 50); '40:60' -> (40, 60)."""
    parts = text.split(":")
    try:
        lo, hi = (int(parts[0]), int(parts[-1]))
    except ValueError as e:
        raise UserError(f"--utts-per-spk must be N or MIN:MAX, got {text!r}") from e
    if len(parts) > 2 or lo < 2 or hi < lo:
        raise UserError(f"--utts-per-spk must be N or MIN:MAX with 2 <= MIN <= MAX, got {text!r}")
    return lo, hi


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="make_mini_corpus", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data_dir", type=Path, help="data root (e.g. data)")
    p.add_argument("--download-dir", type=Path, default=Path("downloads"),
                   help="where local/fetch_debs.sh unpacked tools/, mbrola/, asterisk/ (default downloads)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--nj", type=int, default=2, help="parallel synthesis processes")
    p.add_argument("--voices", default="", help="comma-separated MBROLA databases (default: all 72)")
    p.add_argument("--utts-per-spk", default="40:60",
                   help="N or MIN:MAX utterances per voice (default 40:60)")
    p.add_argument("--n-test", type=int, default=None, help="test speakers (default 20%% of the voices)")
    p.add_argument("--n-val", type=int, default=None, help="validation speakers (default 6%% of the voices)")
    p.add_argument("--nontarget-ratio", type=float, default=10.0, help="non-target per target trial (10)")
    p.add_argument("--min-trials", type=int, default=20000, help="at least this many trials per test set")
    p.add_argument("--real-test", choices=("true", "false"), default="true",
                   help="also build real_test from the Asterisk prompts (default true)")
    p.add_argument("--real-max-utts", type=int, default=60, help="prompts per real speaker (default 60)")
    p.add_argument("--real-min-dur", type=float, default=1.5, help="shortest prompt kept, s (default 1.5)")
    p.add_argument("--real-voices", choices=("true", "false"), default="false",
                   help="mini corpus version 5: add recorded human voices from Debian packages to train and "
                        "validation, and a new test set real2_test (default false)")
    p.add_argument("--real-train-utts", type=int, default=100,
                   help="pieces of real speech per real speaker (default 100)")
    p.add_argument("--real-min-utts", type=int, default=10,
                   help="a real speaker with fewer usable pieces is left out (default 10)")
    p.add_argument("--n-real-val", type=int, default=6, help="real validation speakers (default 6)")
    p.add_argument("--n-real-test", type=int, default=8, help="real2_test speakers (default 8)")
    p.add_argument("--rhvoice", choices=("true", "false"), default="false",
                   help="add RHVoice synthetic voices (one per recorded person) to train and validation "
                        "(default false)")
    p.add_argument("--rhv-voices", default="",
                   help="comma-separated RHVoice persons, e.g. slt,anna,magda (default: all 32)")
    p.add_argument("--n-rhv-val", type=int, default=4, help="RHVoice validation speakers (default 4)")
    p.add_argument("--pico", choices=("true", "false"), default="false",
                   help="add the 6 SVOX Pico voices (6 female persons; Python package py-nanotts) to train "
                        "and validation (default false)")
    p.add_argument("--n-pico-val", type=int, default=2, help="Pico validation speakers (default 2)")
    p.add_argument("--festival", choices=("true", "false"), default="false",
                   help="add the 12 Festival/Flite voices (one recorded person each; Debian festvox-* "
                        "packages) to train and validation (default false)")
    p.add_argument("--n-festival-val", type=int, default=2,
                   help="Festival/Flite validation speakers (default 2)")
    p.add_argument("--print-packages", action="store_true",
                   help="print the Debian packages needed for --voices (and --real-test) and exit")
    p.add_argument("--print-rhvoice-packages", action="store_true",
                   help="print the Debian packages of --rhv-voices (program, libraries, languages), exit")
    p.add_argument("--print-festival-packages", action="store_true",
                   help="print the Debian packages of the Festival/Flite voices (programs, voices), exit")
    return p.parse_args(argv)


def _report(stats: dict[str, dict]) -> None:
    print(f"{'set':<12} {'speakers':>8} {'utts':>6} {'hours':>6} {'target':>8} {'nontarget':>10}")
    for name, st in stats.items():
        print(f"{name:<12} {st['speakers']:>8} {st['utterances']:>6} {st['hours']:>6.2f} "
              f"{st.get('target', '-'):>8} {st.get('nontarget', '-'):>10}")


#: Domain of the speakers a set had before real voices joined it (``spk2domain``, see extend_set).
SYNTHETIC_DOMAIN, REAL_DOMAIN = "synthetic", "real"


def extend_set(data_dir: Path, name: str, rows: dict[str, list[tuple[str, str, float, str]]],
               sexes: dict[str, str], trials_seed: int | None, args: argparse.Namespace,
               domain: str | None = None) -> dict:
    """Add speakers (rows: uid, wav, dur, ...) to the data dir ``name`` (created if absent) and rewrite it;
    trials over all its speakers are drawn again when ``trials_seed`` is given. Returns its figures.

    ``domain``: also write ``spk2domain``, the new speakers under this label and the set's earlier ones
    under theirs (``synthetic`` if the set had no spk2domain yet; a set that has one keeps it up to date,
    new speakers without a domain being synthetic voices). Validation reads it from mini_val to
    score real and synthetic trials apart (dmha/data/lists.py), so that the easy cross-domain pairs do
    not decide which model is best.
    """
    utt2wav: dict[str, str] = {}
    utt2spk: dict[str, str] = {}
    utt2dur: dict[str, float] = {}
    spk2gender: dict[str, str] = {}
    spk2domain: dict[str, str] = {}
    src = data_dir / name
    if (src / "wav.scp").is_file():
        utt2wav = read_kv(src / "wav.scp")
        utt2spk = read_kv(src / "utt2spk")
        utt2dur = {u: float(d) for u, d in read_kv(src / "utt2dur").items()}
        spk2gender = read_kv(src / "spk2gender")
        if (src / "spk2domain").is_file():
            spk2domain = read_kv(src / "spk2domain")
    spk2domain = {s: spk2domain.get(s, SYNTHETIC_DOMAIN) for s in set(utt2spk.values())}
    for s, spk_rows in rows.items():
        for uid, path, dur, *_ in spk_rows:
            utt2wav[uid], utt2spk[uid], utt2dur[uid] = path, s, dur
        spk2gender[s] = sexes[s]
        spk2domain[s] = domain or SYNTHETIC_DOMAIN
    trials = None
    if trials_seed is not None:
        trials = make_trials(utt2spk, args.nontarget_ratio, min_trials=args.min_trials, seed=trials_seed)
    write_set(src, utt2wav, utt2spk, utt2dur, spk2gender, trials)
    if domain is not None or (src / "spk2domain").is_file():
        write_kv(src / "spk2domain", spk2domain)
    return summarize(utt2spk, utt2dur, trials)


def _clean_pool(clean_dir: Path, speakers: list[str]) -> list[str]:
    """The clean wavs of ``speakers`` (sorted by speaker, then utterance): babble sources."""
    return [str(p) for s in sorted(speakers) for p in sorted((clean_dir / s).glob("*.wav"))]


def add_synthetic_persons(args: argparse.Namespace, data_dir: Path, audio_dir: Path, engine: Engine,
                          voices: list[SynthVoice], split: dict[str, list[str]], cfg: SynthConfig,
                          mbrola_split: dict[str, list[str]], stats: dict[str, dict], name: str) -> None:
    """Voices of another synthesizer (one recorded person each): synthesized, augmented like the MBROLA
    voices, added to mini_train and mini_val; audio under ``<audio_dir>/<name>``.

    Babble noise of such an utterance comes from the other speakers (MBROLA and this synthesizer's) of
    its own split, as for the MBROLA voices; the MBROLA audio and mini_test are not touched.
    """
    log.info("%s split (seed %d): train %d, val %d: val=%s", name, args.seed, len(split["train"]),
             len(split["val"]), ",".join(split["val"]))
    root = audio_dir / name
    write_kv(root / "speaker_split", {p: " ".join(s) for p, s in split.items()}, sort=False)
    clean = synthesize_voices(engine, voices, args.seed, args.nj, cfg, root / "clean", f"{name} synthesis")
    write_kv(root / "utt2text", {uid: text for rows in clean.values() for uid, _, _, text in rows})
    pools, order = {}, []
    for part in ("train", "val"):
        mbrola_pool = _clean_pool(audio_dir / "clean", mbrola_split.get(part, []))
        for spk in split[part]:
            pools[spk] = mbrola_pool + [p for o in split[part] if o != spk for _, p, _, _ in clean[o]]
            order.append(spk)
    final = augment_speakers(clean, order, pools, args.seed, args.nj, cfg, root / "wav")
    write_kv(root / "utt2aug", {uid: d for rows in final.values() for uid, _, _, d in rows})
    sexes = {v.db: v.sex for v in voices}
    for part, set_name in (("train", "mini_train"), ("val", "mini_val")):
        if split[part]:
            seed = args.seed if part == "val" else None
            stats[set_name] = extend_set(data_dir, set_name, {s: final[s] for s in split[part]}, sexes, seed,
                                         args)


def add_rhvoice(args: argparse.Namespace, data_dir: Path, audio_dir: Path, dl: Path, cfg: SynthConfig,
                mbrola_split: dict[str, list[str]], stats: dict[str, dict]) -> None:
    """RHVoice persons (``--rhvoice true``), see :func:`add_synthetic_persons`."""
    voices = rhvoice.select_rhvoice_voices([v for v in args.rhv_voices.replace(",", " ").split() if v])
    split = rhvoice.split_rhvoice(voices, args.seed, args.n_rhv_val)
    engine = rhvoice.setup_rhvoice(dl / "rhvoice", audio_dir / "rhvoice" / "home", voices)
    add_synthetic_persons(args, data_dir, audio_dir, engine, voices, split, in_percent_units(cfg),
                          mbrola_split, stats, "rhvoice")


def add_pico(args: argparse.Namespace, data_dir: Path, audio_dir: Path, cfg: SynthConfig,
             mbrola_split: dict[str, list[str]], stats: dict[str, dict]) -> None:
    """SVOX Pico persons (``--pico true``), see :func:`add_synthetic_persons`."""
    voices = pico.all_pico_voices()
    split = pico.split_pico(voices, args.seed, args.n_pico_val)
    engine = pico.setup_pico(voices)
    add_synthetic_persons(args, data_dir, audio_dir, engine, voices, split, in_percent_units(cfg),
                          mbrola_split, stats, "pico")


def add_festival(args: argparse.Namespace, data_dir: Path, audio_dir: Path, dl: Path, cfg: SynthConfig,
                 mbrola_split: dict[str, list[str]], stats: dict[str, dict]) -> None:
    """Festival/Flite persons (``--festival true``), see :func:`add_synthetic_persons`."""
    voices = festival.all_festival_voices()
    split = festival.split_festival(voices, args.seed, args.n_festival_val)
    engine = festival.setup_festival(dl / "festival", voices)
    add_synthetic_persons(args, data_dir, audio_dir, engine, voices, split, in_percent_units(cfg),
                          mbrola_split, stats, "festival")


def add_real_voices(args: argparse.Namespace, data_dir: Path, audio_dir: Path, dl: Path,
                    stats: dict[str, dict]) -> None:
    """Version 5: real speakers join mini_train and mini_val (rewritten) and form real2_test."""
    share = dl / "real/usr/share"
    cfg = RealConfig(max_utts=args.real_train_utts, min_utts=args.real_min_utts,
                     n_val=args.n_real_val, n_test=args.n_real_test)
    clips = real_sources.list_clips(share, list(real_sources.PACKAGES))
    split, rows, sexes = build_real(share, clips, args.seed, cfg, audio_dir / "realv", write_wav, pool_map,
                                    args.nj)
    log.info("real speakers: train %d, val %d, test %d: test=%s val=%s", len(split["train"]),
             len(split["val"]), len(split["test"]), ",".join(split["test"]), ",".join(split["val"]))
    write_kv(audio_dir / "real_speaker_split", {p: " ".join(s) for p, s in split.items()}, sort=False)
    write_kv(audio_dir / "realv.sources", {u: src for r in rows.values() for u, _, _, src in r})
    for part, name in (("train", "mini_train"), ("val", "mini_val"), ("test", "real2_test")):
        if split[part]:
            seed = None if part == "train" else args.seed
            stats[name] = extend_set(data_dir, name, {s: rows[s] for s in split[part]}, sexes, seed, args,
                                     domain=REAL_DOMAIN)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = [v for v in args.voices.replace(",", " ").split() if v]
    voices = select_voices(names)
    if args.print_rhvoice_packages:
        rhv_names = [v for v in args.rhv_voices.replace(",", " ").split() if v]
        print("\n".join(rhvoice.packages(rhvoice.select_rhvoice_voices(rhv_names))))
        return 0
    if args.print_festival_packages:
        print("\n".join(festival.packages(festival.all_festival_voices())))
        return 0
    if args.print_packages:
        pkgs = [v.package for v in voices] + (list(asterisk.PACKAGES) if args.real_test == "true" else [])
        pkgs += list(real_sources.PACKAGES) if args.real_voices == "true" else []
        print("\n".join(pkgs))
        return 0
    lo, hi = _range(args.utts_per_spk)
    cfg = SynthConfig(min_utts=lo, max_utts=hi)
    data_dir = args.data_dir.resolve()
    audio_dir = data_dir / "mini_audio"
    dl = args.download_dir.resolve()
    t0 = time.time()
    split = split_speakers(voices, args.seed, args.n_test, args.n_val)
    log.info("speaker split (seed %d): train %d, val %d, test %d: test=%s val=%s", args.seed,
             len(split["train"]), len(split["val"]), len(split["test"]), ",".join(split["test"]),
             ",".join(split["val"]))
    for part in ("val", "test"):
        if len(split[part]) == 1:
            raise UserError(f"{part} set needs 0 or >= 2 speakers for trials, got 1; change --n-{part}")
    if not split["test"]:
        raise UserError("no test speakers; use --n-test >= 2")
    write_kv(audio_dir / "speaker_split", {f"{p}": " ".join(s) for p, s in split.items()}, sort=False)
    espeak = setup_espeak(dl / "tools", dl / "mbrola", audio_dir / "espeak", [v.db for v in voices])
    stats = build_synthetic(espeak, voices, split, data_dir, audio_dir, args.seed, args.nj, cfg,
                            {"train": "mini_train", "val": "mini_val", "test": "mini_test"},
                            args.nontarget_ratio, args.min_trials)
    log.info("synthetic sets done in %.0f s", time.time() - t0)
    if args.rhvoice == "true":
        t1 = time.time()
        add_rhvoice(args, data_dir, audio_dir, dl, cfg, split, stats)
        log.info("RHVoice voices done in %.0f s", time.time() - t1)
    if args.pico == "true":
        t1 = time.time()
        add_pico(args, data_dir, audio_dir, cfg, split, stats)
        log.info("Pico voices done in %.0f s", time.time() - t1)
    if args.festival == "true":
        t1 = time.time()
        add_festival(args, data_dir, audio_dir, dl, cfg, split, stats)
        log.info("Festival/Flite voices done in %.0f s", time.time() - t1)
    if args.real_voices == "true":
        t1 = time.time()
        add_real_voices(args, data_dir, audio_dir, dl, stats)
        log.info("real voices done in %.0f s", time.time() - t1)
    if args.real_test == "true":
        sounds = dl / "asterisk/usr/share/asterisk/sounds"
        files = asterisk.collect(sounds, args.seed, args.real_max_utts, args.real_min_dur)
        utt2wav, utt2spk, utt2dur, utt2src = asterisk.convert(files, audio_dir / "real", write_wav)
        write_kv(audio_dir / "real_test.sources",
                 {u: str(Path(s).relative_to(dl)) for u, s in utt2src.items()})
        trials = make_trials(utt2spk, args.nontarget_ratio, min_trials=args.min_trials, seed=args.seed)
        write_set(data_dir / "real_test", utt2wav, utt2spk, utt2dur, asterisk.sexes(), trials)
        stats["real_test"] = summarize(utt2spk, utt2dur, trials)
    log.info("corpus built in %.0f s", time.time() - t0)
    _report(stats)
    return 0


if __name__ == "__main__":
    run_main(main)
