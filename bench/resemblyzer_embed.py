"""Embed a data dir with the peer model Resemblyzer (GE2E, 256-d) into <emb-dir>/xvector.{ark,scp}.

Why: bench/quality.sh compares our systems with an independent, pre-trained speaker encoder on the
SAME trials, scored by the SAME code (steps/score.sh -> dmha.scoring.metrics), so the only difference is the
embeddings. Resemblyzer is a bench-only dependency (bench/requirements.txt; its weights ship inside
the wheel, nothing is downloaded).

Audio is read with dmha.features.audio.load_audio (wav.scp paths or pipes, resampled to 16 kHz), then
Resemblyzer's own preprocess_wav (volume normalisation, VAD trimming) and
VoiceEncoder.embed_utterance. The ark and a temporary scp are written with kaldiio and the scp is
renamed into place last, so a killed run never leaves an xvector.scp that looks complete.

    python bench/resemblyzer_embed.py data/mini_test exp/resemblyzer/embeddings/mini_test
    steps/score.sh data/mini_test/trials exp/resemblyzer/embeddings/mini_test \
        exp/resemblyzer/scores/mini_test.score
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dmha.common.errors import UserError  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data_dir", help="Kaldi data dir with wav.scp")
    p.add_argument("emb_dir", help="output dir: xvector.ark, xvector.scp")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1; 0: torch's default). Resemblyzer's LSTM on torch's "
                        "default 2 threads took 10 s per utterance on a loaded 2-core machine, 0.12 s "
                        "on 1 thread")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    data_dir, emb_dir = Path(args.data_dir), Path(args.emb_dir)
    wav_scp = data_dir / "wav.scp"
    if not wav_scp.is_file():
        raise UserError(f"{wav_scp}: not found; give a Kaldi data dir with a wav.scp")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pkg_resources deprecation chatter of webrtcvad
            from resemblyzer import VoiceEncoder, preprocess_wav
    except ImportError as e:
        raise UserError(f"resemblyzer is not installed ({e}); run: pip install --no-deps -r "
                        "bench/requirements.txt") from None
    import kaldiio
    import torch

    from dmha.common.fileio import read_kv
    from dmha.features.audio import load_audio

    if args.threads:
        torch.set_num_threads(args.threads)
    entries = read_kv(wav_scp)
    encoder = VoiceEncoder("cpu", verbose=False)
    emb_dir.mkdir(parents=True, exist_ok=True)
    ark = (emb_dir / "xvector.ark").resolve()
    scp = emb_dir / "xvector.scp"
    scp.unlink(missing_ok=True)  # the old index must not point into the ark being rewritten
    for stale in emb_dir.glob(".xvector.scp.*.tmp"):  # left by a run killed with SIGKILL
        stale.unlink(missing_ok=True)
    # SIGTERM (kill, job schedulers) becomes SystemExit, so the temporary index is removed below
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp_scp = emb_dir / f".xvector.scp.{os.getpid()}.tmp"
    t0 = time.time()
    try:
        with kaldiio.WriteHelper(f"ark,scp:{ark},{tmp_scp}") as writer:
            for utt in sorted(entries, key=lambda k: k.encode("utf-8")):
                wave, sr = load_audio(entries[utt], 16000, name=utt)
                wav = preprocess_wav(wave, source_sr=sr)
                if wav.size == 0:  # VAD removed everything: embed the untrimmed audio instead
                    wav = wave
                emb = encoder.embed_utterance(wav)
                if not np.all(np.isfinite(emb)):
                    raise UserError(f"{wav_scp}: non-finite Resemblyzer embedding for '{utt}'")
                writer(utt, np.asarray(emb, dtype=np.float32))
        os.replace(tmp_scp, scp)
    except BaseException:
        tmp_scp.unlink(missing_ok=True)
        raise
    print(f"resemblyzer_embed: {len(entries)} utterances of {data_dir} -> {scp} "
          f"({time.time() - t0:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    from dmha.bin._cli import run_main

    run_main(main)
