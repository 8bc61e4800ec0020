"""Build the synthetic part of the mini corpus: clean synthesis, augmentation, Kaldi data dirs.

Two passes over the speakers, each spread over ``nj`` processes (one speaker = one task):
1. clean synthesis: random text (some in English for voices that have an English variant), speaking
   rate and pitch per utterance, 2-8 s after silence trimming
   (the word count adapts to the voice's speed), 16 kHz -> ``<audio>/clean/<spk>/<utt>.wav``;
2. augmentation: additive noise (white/pink/brown, or babble of other speakers of the SAME split, so no
   test voice leaks into training) at 5-20 dB SNR, simulated room reverberation, a telephone band and a
   random level -> ``<audio>/wav/<spk>/<utt>.wav``.
Every random choice comes from a generator seeded by (seed, speaker, utterance), so the output does
not depend on ``nj`` or on the order in which tasks finish.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np
import soundfile as sf

from dmha.augment import effects as augment
from dmha.common.errors import UserError
from dmha.common.fileio import write_kv
from dmha.corpus.synth import SAMPLE_RATE, to_16k, trim_silence
from dmha.corpus.text import make_text
from dmha.corpus.voices import Voice
from dmha.data.trials import Trials, make_trials, write_trials

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SynthConfig:
    """What the synthetic utterances look like (the defaults are the recipe's)."""

    min_utts: int = 40
    max_utts: int = 60
    min_dur: float = 2.0
    max_dur: float = 8.0
    rate_range: tuple[int, int] = (120, 210)    # espeak-ng words per minute
    pitch_range: tuple[int, int] = (25, 75)     # espeak-ng pitch 0-99 (50 = the voice's own)
    p_english: float = 0.3                      # voices with an mb-<db>-en variant speak English
    p_noise: float = 0.6
    snr_range: tuple[float, float] = (5.0, 20.0)
    p_reverb: float = 0.3
    rt60_range: tuple[float, float] = (0.2, 0.9)
    p_telephone: float = 0.1
    level_range: tuple[float, float] = (-32.0, -18.0)  # dBFS RMS


def in_percent_units(cfg: SynthConfig) -> SynthConfig:
    """``cfg`` with rate and pitch in percent of the voice's own (100 = normal), for the synthesizers
    that take them so (RHVoice, SVOX Pico).

    espeak-ng's 120-210 words per minute around its 175 are 69-120 % of the normal rate; pitch varies
    +-15 % around the voice's own. Counts, durations and the augmentation stay the MBROLA voices'.
    """
    return replace(cfg, rate_range=(70, 120), pitch_range=(85, 115))


def utt_rng(seed: int, spk: str, index: int, stream: int) -> np.random.Generator:
    """The generator of one utterance's random choices (stream 0: synthesis, 1: augmentation)."""
    return np.random.default_rng([seed, zlib.crc32(spk.encode()), index, stream])


def utt_id(spk: str, index: int) -> str:
    return f"{spk}-{index:04d}"


def write_wav(path: Path, wave: np.ndarray) -> None:
    """16-bit PCM at 16 kHz; written under a temporary name and renamed (no half-written wav)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    sf.write(tmp, np.clip(wave, -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16", format="WAV")
    tmp.replace(path)


# --- pass 1: clean synthesis ---------------------------------------------------------------------

class Engine(Protocol):
    """A synthesizer (espeak-ng + MBROLA, RHVoice): text -> (waveform, sample rate)."""

    def synthesize(self, text: str, voice: str, rate: int, pitch: int, amplitude: int = 100,
                   tmpdir: str | None = None) -> tuple[np.ndarray, int]: ...


class SynthVoice(Protocol):
    """One speaker of an engine (an MBROLA database, an RHVoice person): what the builder needs."""

    db: str      # the speaker id
    sex: str
    lang: str

    @property
    def has_english(self) -> bool: ...

    def engine_voice(self, english: bool) -> str: ...

    def sec_per_word(self, rate: int) -> float: ...

    def failure_hint(self) -> str: ...


def synth_utterance(espeak: Engine, voice: SynthVoice, rng: np.random.Generator, cfg: SynthConfig,
                    tmpdir: str | None = None, sec_per_word: float | None = None) -> tuple[np.ndarray, str]:
    """One clean utterance of ``cfg.min_dur``-``cfg.max_dur`` s; returns (16 kHz waveform, text).

    The word count is re-estimated from the duration obtained until it fits (at most 6 tries);
    a still-too-long result is cut at ``max_dur``. Raises RuntimeError when nothing fits. A voice with
    an English variant speaks English text with probability ``cfg.p_english``. ``rate`` and ``pitch``
    are drawn in the engine's own units (``cfg.rate_range``, ``cfg.pitch_range``).
    """
    english = voice.has_english and rng.random() < cfg.p_english
    lang = "en" if english else voice.lang
    espeak_voice = voice.engine_voice(english)
    rate = int(rng.integers(cfg.rate_range[0], cfg.rate_range[1] + 1))
    pitch = int(rng.integers(cfg.pitch_range[0], cfg.pitch_range[1] + 1))
    target = float(rng.uniform(cfg.min_dur + 0.3, cfg.max_dur - 0.5))
    spw = sec_per_word or voice.sec_per_word(rate)
    n_words = max(1, int(round(target / spw)))
    wave = np.zeros(0, dtype=np.float32)
    text = ""
    for _ in range(6):
        text = make_text(lang, n_words, rng)
        raw, sr = espeak.synthesize(text, espeak_voice, rate, pitch, amplitude=60, tmpdir=tmpdir)
        wave = trim_silence(to_16k(raw, sr), SAMPLE_RATE)
        dur = len(wave) / SAMPLE_RATE
        if cfg.min_dur <= dur <= cfg.max_dur:
            return wave, text
        if dur <= 0:
            n_words *= 2
            continue
        new = max(1, int(round(n_words * target / dur)))
        n_words = new if new != n_words else n_words + (1 if dur < cfg.min_dur else -1)
        n_words = max(1, n_words)
    if len(wave) / SAMPLE_RATE > cfg.max_dur:
        return wave[:int(cfg.max_dur * SAMPLE_RATE)], text
    raise RuntimeError(f"voice {voice.db}: could not synthesize {cfg.min_dur}-{cfg.max_dur} s "
                       f"(last {len(wave) / SAMPLE_RATE:.2f} s for {text!r})")


def _synth_speaker(args: tuple) -> list[tuple[str, str, float, str]]:
    espeak, voice, seed, cfg, clean_dir = args
    rng = np.random.default_rng([seed, zlib.crc32(voice.db.encode()), 0, 9])
    n_utts = int(rng.integers(cfg.min_utts, cfg.max_utts + 1))
    rows = []
    spw_hist: list[float] = []
    with tempfile.TemporaryDirectory(prefix="dmha-synth-") as tmpdir:
        for i in range(1, n_utts + 1):
            r = utt_rng(seed, voice.db, i, 0)
            # The voice's measured seconds per word of earlier utterances speeds up the fit.
            spw = float(np.median(spw_hist)) if spw_hist else None
            try:
                wave, text = synth_utterance(espeak, voice, r, cfg, tmpdir, spw)
            except RuntimeError as e:  # one odd text: skip it (the index stays unused)
                log.warning("%s: utterance %d skipped: %s", voice.db, i, e)
                continue
            n_words = len(text.split())
            spw_hist.append(len(wave) / SAMPLE_RATE / n_words)
            uid = utt_id(voice.db, i)
            path = clean_dir / voice.db / f"{uid}.wav"
            write_wav(path, wave)
            rows.append((uid, str(path), len(wave) / SAMPLE_RATE, text))
    if len(rows) < max(2, n_utts // 2):
        raise UserError(f"voice {voice.db}: only {len(rows)} of {n_utts} utterances could be synthesized "
                        f"{voice.failure_hint()}")
    return rows


# --- pass 2: augmentation ------------------------------------------------------------------------

def augment_utterance(wave: np.ndarray, rng: np.random.Generator, cfg: SynthConfig,
                      babble_pool: Sequence[str]) -> tuple[np.ndarray, str]:
    """Apply a random chain (reverb, telephone band, noise, level); returns (waveform, description)."""
    desc = []
    y = wave.astype(np.float32)
    if rng.random() < cfg.p_reverb:
        rt60 = float(rng.uniform(*cfg.rt60_range))
        drr = float(rng.uniform(-2.0, 8.0))
        y = augment.reverberate(y, augment.make_rir(SAMPLE_RATE, rt60, rng, drr_db=drr))
        desc.append(f"reverb:rt60={rt60:.2f},drr={drr:.1f}")
    if rng.random() < cfg.p_telephone:
        y = augment.telephone_band(y, SAMPLE_RATE)
        desc.append("telephone")
    if rng.random() < cfg.p_noise:
        snr = float(rng.uniform(*cfg.snr_range))
        kinds = list(augment.NOISE_KINDS) if len(babble_pool) >= 3 else list(augment.NOISE_KINDS[:3])
        kind = str(rng.choice(kinds))
        if kind == "babble":
            picks = rng.choice(len(babble_pool), size=int(rng.integers(3, 6)) if len(babble_pool) >= 5 else 3,
                               replace=False)
            sources = [sf.read(babble_pool[k], dtype="float32")[0] for k in sorted(picks)]
            noise = augment.babble(len(y), sources, rng)
        else:
            noise = augment.coloured_noise(len(y), kind, rng)
        y = augment.mix_at_snr(y, noise, snr)
        desc.append(f"noise:{kind},snr={snr:.1f}")
    level = float(rng.uniform(*cfg.level_range))
    y = augment.set_level(y, level)
    return y, ";".join(desc) if desc else "clean"


def _augment_speaker(args: tuple) -> list[tuple[str, str, float, str]]:
    spk, utts, seed, cfg, wav_dir, pool = args  # utts: [(uid, clean_path)]; pool: other speakers' clean paths
    rows = []
    for uid, clean_path in utts:
        index = int(uid.rsplit("-", 1)[1])
        wave, _ = sf.read(clean_path, dtype="float32")
        y, desc = augment_utterance(wave, utt_rng(seed, spk, index, 1), cfg, pool)
        path = wav_dir / spk / f"{uid}.wav"
        write_wav(path, y)
        rows.append((uid, str(path), len(y) / SAMPLE_RATE, desc))
    return rows


# --- the whole build -----------------------------------------------------------------------------

def pool_map(fn, tasks: list, nj: int, what: str) -> list:
    """Run ``fn`` over ``tasks`` in ``nj`` processes (results in task order), logging progress."""
    out = []
    if nj <= 1 or len(tasks) <= 1:
        for k, t in enumerate(tasks, 1):
            out.append(fn(t))
            log.info("%s: %d/%d speakers", what, k, len(tasks))
        return out
    ctx = mp.get_context("spawn")
    with ctx.Pool(min(nj, len(tasks))) as pool:
        for k, res in enumerate(pool.imap(fn, tasks), 1):
            out.append(res)
            if k % 10 == 0 or k == len(tasks):
                log.info("%s: %d/%d speakers", what, k, len(tasks))
    return out


def write_set(dest: Path, utt2wav: dict[str, str], utt2spk: dict[str, str], utt2dur: dict[str, float],
              spk2gender: dict[str, str], trials: Trials | None) -> None:
    """Write one Kaldi data dir (keys C-sorted, every file atomic)."""
    dest.mkdir(parents=True, exist_ok=True)
    write_kv(dest / "wav.scp", utt2wav)
    write_kv(dest / "utt2spk", utt2spk)
    spk2utt: dict[str, list[str]] = {}
    for u in sorted(utt2spk, key=lambda s: s.encode()):
        spk2utt.setdefault(utt2spk[u], []).append(u)
    write_kv(dest / "spk2utt", spk2utt)
    write_kv(dest / "utt2dur", {u: f"{d:.3f}" for u, d in utt2dur.items()})
    write_kv(dest / "spk2gender", spk2gender)
    if trials is not None:
        write_trials(dest / "trials", trials)


Rows = list[tuple[str, str, float, str]]   # per speaker: (uid, wav path, duration s, text or description)


def synthesize_voices(engine: Engine, voices: Sequence[SynthVoice], seed: int, nj: int, cfg: SynthConfig,
                      clean_dir: Path, what: str = "synthesis") -> dict[str, Rows]:
    """Pass 1 for every voice (one task per voice): speaker id -> rows (uid, clean wav, dur, text)."""
    by_db = {v.db: v for v in voices}
    tasks = [(engine, by_db[db], seed, cfg, clean_dir) for db in sorted(by_db)]
    return dict(zip(sorted(by_db), pool_map(_synth_speaker, tasks, nj, what)))


def augment_speakers(clean: dict[str, Rows], speakers: Sequence[str], pools: dict[str, list[str]], seed: int,
                     nj: int, cfg: SynthConfig, wav_dir: Path) -> dict[str, Rows]:
    """Pass 2 for ``speakers``: speaker id -> rows (uid, wav, dur, augmentation description).

    ``pools[spk]``: the clean wavs babble noise may draw from (other speakers of the same split only).
    """
    tasks = [(spk, [(uid, p) for uid, p, _, _ in clean[spk]], seed, cfg, wav_dir, pools[spk])
             for spk in speakers]
    rows = pool_map(_augment_speaker, tasks, nj, "augmentation")
    return {t[0]: r for t, r in zip(tasks, rows)}


def build_synthetic(espeak: Engine, voices: list[Voice], split: dict[str, list[str]], data_dir: Path,
                    audio_dir: Path, seed: int, nj: int, cfg: SynthConfig, set_names: dict[str, str],
                    nontarget_ratio: float = 10.0, min_trials: int = 20000) -> dict[str, dict]:
    """Synthesize, augment and write one data dir per split; returns per-set figures."""
    by_db = {v.db: v for v in voices}
    clean_dir, wav_dir = audio_dir / "clean", audio_dir / "wav"
    clean = synthesize_voices(espeak, voices, seed, nj, cfg, clean_dir)
    write_kv(audio_dir / "utt2text", {uid: text for rows in clean.values() for uid, _, _, text in rows})

    order = [spk for spks in split.values() for spk in spks]
    pools = {spk: [p for other in spks if other != spk for _, p, _, _ in clean[other]]
             for spks in split.values() for spk in spks}
    final = augment_speakers(clean, order, pools, seed, nj, cfg, wav_dir)
    write_kv(audio_dir / "utt2aug", {uid: d for rows in final.values() for uid, _, _, d in rows})

    stats = {}
    for part, spks in split.items():
        if not spks:
            continue
        name = set_names[part]
        utt2wav = {uid: p for s in spks for uid, p, _, _ in final[s]}
        utt2spk = {uid: s for s in spks for uid, _, _, _ in final[s]}
        utt2dur = {uid: d for s in spks for uid, _, d, _ in final[s]}
        trials = None
        if part in ("val", "test"):
            trials = make_trials(utt2spk, nontarget_ratio, min_trials=min_trials, seed=seed)
        write_set(data_dir / name, utt2wav, utt2spk, utt2dur, {s: by_db[s].sex for s in spks}, trials)
        stats[name] = summarize(utt2spk, utt2dur, trials)
    return stats


def summarize(utt2spk: dict[str, str], utt2dur: dict[str, float], trials: Trials | None) -> dict:
    st = {"speakers": len(set(utt2spk.values())), "utterances": len(utt2spk),
          "hours": sum(utt2dur.values()) / 3600.0}
    if trials is not None and trials.labels is not None:
        st["target"] = int(trials.labels.sum())
        st["nontarget"] = int((~trials.labels).sum())
    return st
