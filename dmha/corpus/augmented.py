"""Augmented and speed-perturbed copies of a data dir, as new Kaldi data dirs of wav.scp pipes.

Kaldi's VoxCeleb v2 recipe makes a reverberated, a noise, a music and a babble copy of every training
utterance (ids ``<utt>-reverb`` ...; here also a ``telephone`` copy: 8 kHz band and a codec), keeps a
random subset of them and combines it with the clean set; ``perturb_data_dir_speed.sh`` makes copies at
speeds 0.9 and 1.1 (ids ``sp0.9-<utt>``). Here both write a data dir whose ``wav.scp`` lines are pipes
of :mod:`dmha.bin.augment_wav` (no audio is duplicated on disk; ``--write-wav`` stores files instead),
planned by :func:`plan_augmentation` / :func:`plan_speed_perturbation`: every choice is drawn from
(seed, new utterance id), so a plan does not depend on the order or number of utterances planned
alongside it.

Speed-perturbed copies are new speakers by default (``sp0.9-<spk>``, WeSpeaker's "x3 classes": a voice
at another speed is another voice to the classifier); with ``new_speakers=False`` they keep their
speaker, and their ids get a suffix (``<utt>-sp0.9``) so that every id still starts with its speaker's.
"""

from __future__ import annotations

import logging
import random
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

from dmha.augment.effects import CODECS
from dmha.augment.sources import Sources
from dmha.augment.spec import KINDS, SYNTH_PREFIX, AugSpec, utt_rng
from dmha.common.errors import UserError
from dmha.common.fileio import PathLike, write_kv
from dmha.data.datadir import DataDir, c_sort_key, load_data_dir, utt2spk_to_spk2utt

log = logging.getLogger(__name__)

#: Defaults (Kaldi's v2 recipe and WeSpeaker): SNR ranges in dB, babble speakers, RT60 in s.
SNR_RANGES = {"noise": (0.0, 15.0), "music": (5.0, 15.0), "babble": (13.0, 20.0)}
BABBLE_SPEAKERS = (3, 7)
RT60_RANGE = (0.2, 1.0)
DRR_RANGE = (-2.0, 8.0)
SYNTH_NOISES = ("synth:white", "synth:pink", "synth:brown")
PLAN_FILE = ".planned_wav.scp"  # the wav.scp this dir was planned with (skip check of a rerun)
_SP_PREFIX = re.compile(r"^sp[0-9.]+-")


def base_speaker(spk: str) -> str:
    """The person behind a speaker id: ``sp0.9-id10001`` is ``id10001`` (babble never uses that person)."""
    return _SP_PREFIX.sub("", spk)


def _pick(rng, items: list, k: int) -> list:
    return [items[i] for i in sorted(rng.choice(len(items), size=k, replace=False).tolist())]


def plan_copy(kind: str, utt: str, spk: str, seed: int, sources: Sources,
              babble_pool: dict[str, list[str]], snr_ranges: dict[str, tuple[float, float]] | None = None,
              rt60_range: tuple[float, float] = RT60_RANGE) -> AugSpec:
    """The spec of copy ``<utt>-<kind>``: all its choices drawn from (seed, copy id)."""
    new = f"{utt}-{kind}"
    rng = utt_rng(seed, new, 0)
    snr_ranges = {**SNR_RANGES, **(snr_ranges or {})}
    spec = AugSpec(kind, new, seed)
    if kind == "reverb":
        if sources.rirs:
            spec.rir = sources.rirs[int(rng.integers(len(sources.rirs)))]
        else:
            spec.rt60 = round(float(rng.uniform(*rt60_range)), 3)
            spec.drr = round(float(rng.uniform(*DRR_RANGE)), 2)
        return spec
    if kind == "telephone":
        spec.codec = CODECS[int(rng.integers(len(CODECS)))]
        return spec
    spec.snr = round(float(rng.uniform(*snr_ranges[kind])), 2)
    if kind == "noise":
        use_synth = not sources.noise or (sources.synthetic_noise and rng.random() < 0.5)
        pool = list(SYNTH_NOISES) if use_synth else sources.noise
        spec.sources = [pool[int(rng.integers(len(pool)))]]
    elif kind == "music":
        spec.sources = ([sources.music[int(rng.integers(len(sources.music)))]] if sources.music
                        else [f"{SYNTH_PREFIX}music"])
    elif kind == "babble":
        n = int(rng.integers(BABBLE_SPEAKERS[0], BABBLE_SPEAKERS[1] + 1))
        if sources.babble:
            spec.sources = _pick(rng, sources.babble, min(n, len(sources.babble)))
        else:
            others = sorted(s for s in babble_pool if s != base_speaker(spk))
            if not others:  # fewer than 3 others (a toy set): babble of as many as there are
                raise UserError("babble needs utterances of other speakers; the data dir has one speaker "
                                "(give --musan, or leave babble out)")
            picked = _pick(rng, others, min(n, len(others)))
            spec.sources = [babble_pool[s][int(rng.integers(len(babble_pool[s])))] for s in picked]
    else:
        raise UserError(f"unknown augmentation kind '{kind}' (one of {', '.join(KINDS)})")
    return spec


def plan_augmentation(dd: DataDir, kinds: Iterable[str], seed: int, sources: Sources, subset: int = 0,
                      snr_ranges: dict[str, tuple[float, float]] | None = None,
                      rt60_range: tuple[float, float] = RT60_RANGE) -> dict[str, tuple[str, AugSpec, str]]:
    """``{copy id: (speaker, spec, source utterance)}`` for every utterance x kind (or ``subset`` of them)."""
    kinds = list(dict.fromkeys(kinds))
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise UserError(f"augmentation kinds {kinds}: expected some of {', '.join(KINDS)}")
    if "wav.scp" not in dd.files:
        raise UserError(f"{dd.path}/wav.scp not found")
    wav = dd.files["wav.scp"]
    babble_pool: dict[str, list[str]] = {}
    for u in dd.utts:
        babble_pool.setdefault(base_speaker(dd.utt2spk[u]), []).append(wav[u])
    copies = sorted((f"{u}-{k}", u, k) for u in dd.utts for k in kinds)
    if subset:
        if subset < 0:
            raise UserError(f"--subset {subset}: must be >= 0 (0 keeps every copy)")
        if subset < len(copies):
            keep = set(random.Random(seed).sample(range(len(copies)), subset))
            copies = [c for i, c in enumerate(copies) if i in keep]
    out = {}
    for new, u, k in copies:
        spk = dd.utt2spk[u]
        out[new] = (spk, plan_copy(k, u, spk, seed, sources, babble_pool, snr_ranges, rt60_range), u)
    return out


def speed_utt_id(utt: str, factor: float, new_speakers: bool) -> str:
    return f"sp{factor:g}-{utt}" if new_speakers else f"{utt}-sp{factor:g}"


def plan_speed_perturbation(dd: DataDir, factors: Iterable[float],
                            new_speakers: bool = True) -> dict[str, tuple[str, AugSpec, str]]:
    """``{copy id: (speaker, spec, source utterance)}`` of every utterance at every factor."""
    factors = list(dict.fromkeys(float(f) for f in factors))
    if not factors:
        raise UserError("speed perturbation: give at least one factor (e.g. 0.9 1.1)")
    for f in factors:
        if not f > 0:
            raise UserError(f"speed factor {f:g} is invalid: a factor must be > 0 (e.g. 0.9 or 1.1)")
        if f == 1.0:
            raise UserError("speed factor 1 is the source itself: combine the source dir instead")
    if "wav.scp" not in dd.files:
        raise UserError(f"{dd.path}/wav.scp not found")
    out = {}
    for u in dd.utts:
        for f in factors:
            new = speed_utt_id(u, f, new_speakers)
            spk = f"sp{f:g}-{dd.utt2spk[u]}" if new_speakers else dd.utt2spk[u]
            out[new] = (spk, AugSpec("speed", new, 0, speed=f), u)
    return out


def durations_of(dd: DataDir, plan: dict[str, tuple[str, AugSpec, str]]) -> dict[str, str] | None:
    """utt2dur of the copies when the source has one (speed copies last 1/factor as long)."""
    if "utt2dur" not in dd.files:
        return None
    out = {}
    for new, (_, spec, src) in plan.items():
        d = float(dd.files["utt2dur"][src])
        out[new] = f"{d / spec.speed if spec.kind == 'speed' else d:.3f}"
    return out


def write_copies(dest: PathLike, src: DataDir, plan: dict[str, tuple[str, AugSpec, str]],
                 wav_paths: dict[str, str] | None = None) -> bool:
    """Write the copies' data dir; False (nothing written) when ``dest`` already holds this plan.

    ``wav.scp`` holds the pipes, or ``wav_paths`` (files mode). A rerun with another plan removes the
    features computed for the old audio. ``wav.scp`` is removed first and written last, so a killed
    run leaves a dir without wav.scp (invalid, redone by the next run), never a half-written one.
    """
    dest = Path(dest)
    if not plan:
        raise UserError(f"{dest}: no copies planned (empty source or subset)")
    if dest.resolve() == Path(src.path).resolve():
        raise UserError(f"{dest}: the copies must go to a new data dir, not the source")
    src_wav = src.files["wav.scp"]
    wav = {u: (wav_paths[u] if wav_paths else spec.pipe(src_wav[s])) for u, (_, spec, s) in plan.items()}
    planned = "".join(f"{u} {wav[u]}\n" for u in sorted(wav, key=c_sort_key))
    stamp = dest / PLAN_FILE
    if stamp.is_file() and (dest / "wav.scp").is_file() and stamp.read_text(encoding="utf-8") == planned:
        return False
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "wav.scp").unlink(missing_ok=True)
    stamp.unlink(missing_ok=True)
    # Features, splits and bad-utterance records of an earlier plan belong to other audio.
    for name in ("feats.scp", "utt2num_frames", "fbank.yaml", "bad_utts", "spk2utt", "utt2dur"):
        (dest / name).unlink(missing_ok=True)
    for sub in [dest / "data", dest / ".backup", *dest.glob("split*")]:
        if sub.is_dir():
            shutil.rmtree(sub)
    utt2spk = {u: spk for u, (spk, _, _) in plan.items()}
    write_kv(dest / "utt2spk", utt2spk)
    write_kv(dest / "spk2utt", utt2spk_to_spk2utt((u, utt2spk[u]) for u in sorted(utt2spk, key=c_sort_key)))
    durs = durations_of(src, plan)
    if durs is not None:
        write_kv(dest / "utt2dur", durs)
    write_kv(dest / "wav.scp", wav)
    write_kv(dest / PLAN_FILE, wav)
    return True


def load_source(path: PathLike) -> DataDir:
    """The source data dir (must have wav.scp)."""
    dd = load_data_dir(path)
    if "wav.scp" not in dd.files:
        raise UserError(f"{path}/wav.scp not found; augmentation needs the audio entries")
    return dd


def summary(plan: dict[str, tuple[str, AugSpec, str]]) -> str:
    counts: dict[str, int] = {}
    for _, spec, _ in plan.values():
        key = spec.kind if spec.kind != "speed" else f"speed {spec.speed:g}"
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{k} {n}" for k, n in sorted(counts.items()))
