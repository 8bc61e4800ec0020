"""Python API: load a trained experiment, embed audio, compare two recordings.

    import dmha
    model = dmha.load_model("exp/mini_dmha")            # device="auto": CUDA if available, else CPU
    e = model.embed("a.wav")                             # np.ndarray (400,), float32
    e2 = model.embed(samples, sr=8000)                   # a 1-D float array in [-1, 1] (resampled)
    s = model.score("a.wav", "b.wav")                    # cosine similarity, embeddings or wav paths
    s3 = model.score(["a1.wav", "a2.wav"], "b.wav")      # a speaker enrolled with several recordings
    v = model.verify("a.wav", "b.wav")                   # v.same, v.score (cosine), v.llr, v.threshold
    llr = model.llr("a.wav", "b.wav")                    # calibrated log-likelihood ratio

Why this shape: the embedding of a file must equal the one stage 4 writes for the same file, so the
audio goes through the same reader (:func:`dmha.features.audio.load_audio`, resampled to the exp's rate), the
ONE feature implementation (:func:`dmha.features.fbank.compute_fbank` with ``<exp>/config.yaml``'s
``features:``, CMN/CMVN as configured) and the same batched embedding code
(:func:`dmha.embed.xvectors.embed_utterances`, with the same optional length cap).

``threshold`` is the EER operating point of the validation trials scored with the best model, read
from ``<exp>/threshold.yaml`` (written by ``steps/compute_threshold.sh``, run.sh stage 4); it is None
when that file is missing or belongs to an older model. ``calibration`` (``<exp>/calibration.yaml``,
written by the same step from the same trials) maps the cosine to a log-likelihood ratio; when present,
:meth:`SpeakerModel.verify` decides with the Bayes threshold of a target prior (``p_target``, default
0.01 as in the DCF: accept when ``llr >= log((1 - p_target) / p_target)``), so no cosine threshold has
to be guessed; without it, verify falls back to the EER threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Union

import numpy as np
import torch

from dmha.common.errors import UserError
from dmha.experiment import BEST_MODEL, TrainedExp, load_exp
from dmha.scoring.backend import Backend, enrolment_items, pair_score
from dmha.scoring.calibration import Calibration
from dmha.scoring.decision import Verification, decide

Audio = Union[str, Path, np.ndarray]


class SpeakerModel:
    """A trained dmha model ready for inference (see the module docstring)."""

    def __init__(self, exp: TrainedExp, max_chunk_frames: int = 0, batch_frames: int = 0) -> None:
        self.exp = exp
        self.max_chunk_frames = int(max_chunk_frames)
        self.batch_frames = int(batch_frames)

    @property
    def threshold(self) -> float | None:
        """Cosine decision threshold (>= means same speaker), or None if not computed for this model."""
        return self.exp.threshold

    @property
    def calibration(self) -> Calibration | None:
        """Cosine -> log-likelihood-ratio map of this model, or None if not fitted for it."""
        return self.exp.calibration

    @property
    def embed_dim(self) -> int:
        return int(self.exp.model.embed_dim)

    @property
    def sample_rate(self) -> int:
        return int(self.exp.features.sample_rate)

    def features(self, audio: Audio, sr: int | None = None) -> torch.Tensor:
        """Raw (T, n_mels) log-mels of a wav path / wav.scp entry, or of samples at rate ``sr``."""
        from dmha.features.audio import load_audio, resample
        from dmha.features.fbank import compute_fbank

        cfg = self.exp.features
        if isinstance(audio, (str, Path)):
            wave, _ = load_audio(str(audio), cfg.sample_rate)
        else:
            wave = np.asarray(audio)
            if wave.ndim == 2 and 1 in wave.shape:
                wave = wave.reshape(-1)
            if wave.ndim != 1:
                raise UserError(f"embed() takes a 1-D (mono) waveform, got shape {wave.shape}")
            if np.issubdtype(wave.dtype, np.integer):
                wave = wave.astype(np.float32) / 32768.0  # int16-style PCM -> [-1, 1]
            wave = wave.astype(np.float32)
            if not np.isfinite(wave).all():
                raise UserError("embed(): the waveform has NaN/Inf samples")
            if sr is not None and int(sr) != cfg.sample_rate:
                wave = resample(wave, int(sr), cfg.sample_rate)
        if cfg.num_frames(len(wave)) < 1:
            raise UserError(f"{audio if isinstance(audio, (str, Path)) else 'waveform'}: {len(wave)} samples "
                            f"is shorter than one frame ({cfg.n_fft} samples at {cfg.sample_rate} Hz)")
        return compute_fbank(wave, cfg)

    def embed_features(self, feats: list[np.ndarray | torch.Tensor]) -> np.ndarray:
        """Embeddings (N, D) of raw (T_i, n_mels) feature matrices, as stage 4 computes them."""
        from dmha.embed.xvectors import embed_utterances

        return embed_utterances(self.exp.model, feats, device=self.exp.device, norm=self.exp.norm,
                                batch_frames=self.batch_frames, max_chunk_frames=self.max_chunk_frames)

    def embed(self, audio: Audio, sr: int | None = None) -> np.ndarray:
        """Speaker embedding (embed_dim,) float32 of a wav path or a 1-D waveform (``sr``: its rate;
        None = the model's rate)."""
        return self.embed_features([self.features(audio, sr)])[0]

    def _as_embedding(self, x: Audio) -> np.ndarray:
        if isinstance(x, (str, Path)):
            return self.embed(x)
        x = np.asarray(x, dtype=np.float32).reshape(-1)
        if x.shape[0] != self.embed_dim:
            raise UserError(f"score(): expected an embedding of {self.embed_dim} values or a wav path, "
                            f"got {x.shape[0]} values (embed waveforms with embed() first)")
        return x

    @property
    def backend(self) -> Backend | None:
        """The exp's scoring back-end (``<exp>/backend``, mean + LDA [+ PLDA]) if fitted for this model,
        else None."""
        return self.exp.backend

    def score(self, a: Audio | Sequence[Audio], b: Audio) -> float:
        """Score of two embeddings or wav paths: cosine, after the exp's back-end if it has one (the PLDA
        log-likelihood ratio with a plda back-end), as steps/score.sh computes it in stage 5.

        ``a`` may be several recordings/embeddings of one speaker (a list, or an (n, D) array): they
        are enrolled as one model (``steps/score.sh --enroll``; PLDA scores by the count)."""
        enrol = np.stack([self._as_embedding(x) for x in enrolment_items(a)])
        return pair_score(enrol, self._as_embedding(b), self.exp.backend)

    def llr(self, a: Audio | Sequence[Audio], b: Audio) -> float:
        """Calibrated log-likelihood ratio (same vs different speaker) of two embeddings or wav paths."""
        if self.calibration is None:
            raise UserError(f"{self.exp.exp_dir}: no calibration for {self.exp.model_file} "
                            f"(calibration.yaml); run steps/compute_threshold.sh {self.exp.exp_dir} "
                            "<lists-dir>")
        return float(self.calibration.llr(self.score(a, b)))

    def verify(self, a: Audio | Sequence[Audio], b: Audio, threshold: float | None = None,
               p_target: float | None = None) -> Verification:
        """Same speaker? Decision rule, first that applies:

        1. ``threshold`` given: score >= threshold;
        2. a calibration: LLR >= the Bayes threshold of ``p_target`` (default 0.01; unit costs);
        3. the EER threshold of threshold.yaml: score >= it.
        """
        return decide(self.score(a, b), self.calibration, self.threshold, threshold, p_target,
                      f"{self.exp.exp_dir}: no decision threshold (threshold.yaml) or calibration "
                      f"(calibration.yaml) for {self.exp.model_file}; run steps/compute_threshold.sh "
                      f"{self.exp.exp_dir} <lists-dir> or pass a threshold")


def load_model(exp_dir: str | Path, device: str = "auto", max_chunk_frames: int = 0,
               model: str = BEST_MODEL) -> SpeakerModel:
    """Load ``<exp_dir>/best.pt`` (or ``model``, e.g. ``avg_last5.pt``) with the settings of
    ``<exp_dir>/config.yaml`` (see module docstring).

    ``max_chunk_frames``: the optional length cap of stage 4 (0 = none; see :mod:`dmha.embed.xvectors`); use
    the value the embeddings you compare against were extracted with.
    """
    return SpeakerModel(load_exp(exp_dir, device, model=model), max_chunk_frames=max_chunk_frames)
