"""The real-speech test set: Asterisk telephone prompts from Debian, 7 professional speakers.

Recorded human speech (8 kHz telephone prompts) tests how a model trained on the synthetic voices does
on real speech. The en-US and es-MX prompts are both read by Allison Smith: one speaker id. Each
speaker keeps at most ``max_utts`` prompts of ``min_dur`` to ``max_dur`` seconds (a seeded random
choice), upsampled to 16 kHz; the prompts are used as recorded (no augmentation).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from dmha.common.errors import UserError
from dmha.corpus.synth import SAMPLE_RATE, to_16k

PACKAGES = ("asterisk-core-sounds-en-wav", "asterisk-core-sounds-es-wav", "asterisk-core-sounds-fr-wav",
            "asterisk-core-sounds-it-wav", "asterisk-core-sounds-ru-wav", "asterisk-prompt-it-menardi-wav",
            "asterisk-prompt-es-co", "asterisk-prompt-fr-armelle")

# speaker id, sex, sound folders (under usr/share/asterisk/sounds), file suffix
SPEAKERS = (
    ("allison", "f", ("en_US_f_Allison", "es_MX_f_Allison"), ".wav"),   # core sounds en + es
    ("armelle", "f", ("fr",), ".gsm"),                                  # asterisk-prompt-fr-armelle
    ("carlo", "m", ("it_IT_m_Carlo",), ".wav"),                         # core sounds it
    ("july", "f", ("es",), ".gsm"),                                     # asterisk-prompt-es-co
    ("june", "f", ("fr_CA_f_June",), ".wav"),                           # core sounds fr
    ("menardi", "f", ("it_IT_f_Menardi",), ".wav"),                     # asterisk-prompt-it-menardi-wav
    ("ruivr", "f", ("ru_RU_f_IvrvoiceRU",), ".wav"),                    # core sounds ru
)


def read_prompt(path: Path) -> tuple[np.ndarray, int]:
    """Read a prompt: wav, or headerless GSM 6.10 at 8 kHz (the .gsm packages)."""
    if path.suffix == ".gsm":
        x, sr = sf.read(path, format="RAW", subtype="GSM610", samplerate=8000, channels=1, dtype="float32")
    else:
        x, sr = sf.read(path, dtype="float32", always_2d=False)
    if x.ndim > 1:
        x = x.mean(axis=1)
    return x, sr


def collect(sounds_root: Path, seed: int, max_utts: int, min_dur: float,
            max_dur: float = 15.0) -> dict[str, list[Path]]:
    """Per speaker: the chosen prompt files (sorted), at most ``max_utts`` of ``min_dur``-``max_dur`` s.

    The few very long prompts (up to 40 s) are left out so that one file does not dominate a speaker.
    """
    out: dict[str, list[Path]] = {}
    for k, (spk, _, folders, suffix) in enumerate(SPEAKERS):
        files: list[Path] = []
        for folder in folders:
            d = sounds_root / folder
            if not d.is_dir():
                raise UserError(f"{d} missing; run local/fetch_debs.sh to fetch {' '.join(PACKAGES)}")
            files += sorted(d.rglob(f"*{suffix}"))
        long_enough = []
        for f in sorted(files):
            if suffix == ".gsm":
                dur = f.stat().st_size / 33 * 160 / 8000.0  # 33-byte frames of 160 samples
            else:
                info = sf.info(f)
                dur = info.frames / info.samplerate
            if min_dur <= dur <= max_dur:
                long_enough.append(f)
        rng = np.random.default_rng([seed, k])
        if len(long_enough) > max_utts:
            keep = np.sort(rng.choice(len(long_enough), size=max_utts, replace=False))
            long_enough = [long_enough[i] for i in keep]
        out[spk] = long_enough
    return out


def convert(files: dict[str, list[Path]], wav_dir: Path, write_wav) -> tuple[dict, dict, dict, dict]:
    """Upsample to 16 kHz wavs ``<wav_dir>/<spk>/<spk>-<nnnn>.wav``.

    Returns the dicts utt2wav, utt2spk, utt2dur and utt2src (the original prompt file).
    """
    utt2wav, utt2spk, utt2dur, utt2src = {}, {}, {}, {}
    for spk, paths in files.items():
        for i, p in enumerate(paths, 1):
            x, sr = read_prompt(p)
            y = to_16k(x, sr)
            uid = f"{spk}-{i:04d}"
            dest = wav_dir / spk / f"{uid}.wav"
            write_wav(dest, y)
            utt2wav[uid] = str(dest)
            utt2spk[uid] = spk
            utt2dur[uid] = len(y) / SAMPLE_RATE
            utt2src[uid] = str(p)
    return utt2wav, utt2spk, utt2dur, utt2src


def sexes() -> dict[str, str]:
    return {spk: sex for spk, sex, _, _ in SPEAKERS}
