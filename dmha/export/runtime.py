"""Embed audio with an exported dmha model on onnxruntime, without torch.

Why this shape: a product that ships a speaker model wants onnxruntime, numpy and soundfile, not torch.
This module imports only those (and torch-free parts of dmha): audio is read with
:func:`dmha.features.audio.load_audio`, features are :func:`dmha.features.melbank.logmel_numpy` (the
numpy form of the one log-mel recipe, with the settings stored in the model), and the graph itself
does the per-utterance CMN and the model (:mod:`dmha.export.onnx_export`). Batches are grouped and
padded as in stage 4 (:func:`dmha.embed.batching.length_batches`), and the graph masks padded frames,
so an utterance gets the same embedding whatever batch it is in.

    from dmha.export.runtime import OnnxSpeakerModel
    m = OnnxSpeakerModel("exp/mini_dmha/onnx/model.onnx")
    e = m.embed("a.wav"); s = m.score("a.wav", "b.wav")
    v = m.verify("a.wav", "b.wav")      # v.same, v.score, v.llr: the decision of dmha.load_model(exp).verify
    v3 = m.verify(["a1.wav", "a2.wav", "a3.wav"], "b.wav")   # one speaker enrolled with 3 recordings
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Union

import numpy as np

from dmha.common.errors import UserError
from dmha.embed.batching import length_batches
from dmha.export import metadata as meta
from dmha.features.config import FbankConfig, settings_differences
from dmha.scoring.backend import Backend, enrolment_items, pair_score
from dmha.scoring.calibration import Calibration
from dmha.scoring.decision import Verification, decide

Audio = Union[str, Path, np.ndarray]


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else type(e).__name__


def _providers(device: str) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in available:
            raise UserError(f"--device {device}: this onnxruntime has no CUDA provider (install "
                            "onnxruntime-gpu); use --device cpu")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device != "auto":
        raise UserError(f"--device {device!r}: expected auto, cpu, cuda or cuda:N")
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


def _read_calibration(text: str | None, path: Path) -> Calibration | None:
    if not text:
        return None
    try:
        d = json.loads(text)
        return Calibration(float(d["scale"]), float(d["offset"]), {"source": str(path)})
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"{path}: unreadable calibration in the model's metadata ({e}); "
                        "re-export it") from None


class OnnxSpeakerModel:
    """An exported dmha model (``model.onnx`` or ``model.int8.onnx``) ready for inference."""

    def __init__(self, path: str | Path, *, num_threads: int = 0, device: str = "cpu",
                 batch_frames: int = 2000, batch_size: int = 64) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"{self.path}: ONNX model not found; export one with "
                            "steps/export_onnx.sh <exp-dir>")
        try:
            import onnxruntime as ort
        except ImportError:
            raise UserError("onnxruntime is not installed; pip install onnxruntime (or dmha[onnx])") from None
        opts = ort.SessionOptions()
        if num_threads > 0:
            opts.intra_op_num_threads = num_threads
            opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=_providers(device))
        except UserError:
            raise
        except Exception as e:  # onnxruntime raises several types for unreadable / invalid files
            raise UserError(f"{self.path}: not a usable ONNX model ({_first_line(e)}); re-export it with "
                            "steps/export_onnx.sh") from None
        props = self.session.get_modelmeta().custom_metadata_map
        if props.get(meta.FORMAT) != meta.FORMAT_VERSION or meta.FEATURES not in props:
            raise UserError(f"{self.path}: no dmha settings (format {meta.FORMAT_VERSION}) in the model's "
                            "metadata; export it with steps/export_onnx.sh")
        self.features_config = FbankConfig.from_dict(json.loads(props[meta.FEATURES]))
        self.embed_dim = int(props[meta.EMBED_DIM])
        self.threshold = float(props[meta.THRESHOLD]) if props.get(meta.THRESHOLD) else None
        self.quantized = props.get(meta.QUANTIZED, "none")
        # The scoring back-end exported with the weights (mean + LDA [+ PLDA]), applied by score() / verify()
        self.backend = (Backend.from_text(props[meta.BACKEND], str(self.path))
                        if props.get(meta.BACKEND) else None)
        # score -> LLR of the exp's calibration.yaml, so verify() decides as dmha.load_model(exp) does
        self.calibration = _read_calibration(props.get(meta.CALIBRATION), self.path)
        self.metadata = dict(props)
        self.batch_frames, self.batch_size = int(batch_frames), int(batch_size)

    @property
    def sample_rate(self) -> int:
        return int(self.features_config.sample_rate)

    def check_features_config(self, raw_settings: dict, where: str) -> None:
        """UserError naming ``where`` when features stored with ``raw_settings`` (a data dir's fbank.yaml)
        were computed otherwise than this model's features (``norm`` is applied later and not compared)."""
        diff = settings_differences(raw_settings, self.features_config)
        if diff:
            raise UserError(f"{where}: features computed with {', '.join(diff)}; {self.path} was exported "
                            "for other features: recompute them (steps/make_fbank.sh with the exp's "
                            "config) or use a model trained on these")

    def features(self, audio: Audio, sr: int | None = None, name: str | None = None) -> np.ndarray:
        """Raw (T, n_mels) log-mels of a wav path / wav.scp entry, or of samples at rate ``sr``
        (None = the model's rate). Audio at another rate than the model's is an error (resample it
        first: this runtime carries no resampler)."""
        from dmha.features.audio import load_audio
        from dmha.features.melbank import logmel_numpy

        cfg = self.features_config
        label = name or (str(audio) if isinstance(audio, (str, Path)) else "waveform")
        if isinstance(audio, (str, Path)):
            wave, rate = load_audio(str(audio), None, name=label)
        else:
            wave = np.asarray(audio)
            if wave.ndim != 1:
                raise UserError(f"{label}: expected a 1-D (mono) waveform, got shape {wave.shape}")
            if np.issubdtype(wave.dtype, np.integer):
                wave = wave.astype(np.float32) / 32768.0  # int16-style PCM -> [-1, 1]
            wave = wave.astype(np.float32)
            if not np.isfinite(wave).all():
                raise UserError(f"{label}: the waveform has NaN/Inf samples")
            rate = cfg.sample_rate if sr is None else int(sr)
        if rate != cfg.sample_rate:
            raise UserError(f"{label}: audio at {rate} Hz, the model expects {cfg.sample_rate} Hz; "
                            f"resample it first (e.g. sox in.wav -r {cfg.sample_rate} out.wav)")
        if cfg.num_frames(len(wave)) < 1:
            raise UserError(f"{label}: {len(wave)} samples is shorter than one frame ({cfg.n_fft} samples "
                            f"at {cfg.sample_rate} Hz)")
        return logmel_numpy(wave, cfg)

    def embed_features(self, feats: Sequence[np.ndarray], lengths: Sequence[int] | None = None) -> np.ndarray:
        """Embeddings (N, embed_dim) float32 of raw (T_i, n_mels) log-mel matrices, in input order."""
        n_mels = self.features_config.n_mels
        lengths = [int(t) for t in lengths] if lengths is not None else [int(f.shape[0]) for f in feats]
        out = np.zeros((len(feats), self.embed_dim), dtype=np.float32)
        for idx in length_batches(lengths, self.batch_frames, self.batch_size):
            mats = [np.asarray(feats[i], dtype=np.float32) for i in idx]
            for i, m in zip(idx, mats):
                if m.ndim != 2 or m.shape[1] != n_mels or m.shape[0] < 1:
                    raise UserError(f"features of utterance {i} have shape {m.shape}; the model expects "
                                    f"(T >= 1, {n_mels})")
            batch = np.zeros((len(idx), max(m.shape[0] for m in mats), n_mels), dtype=np.float32)
            for j, m in enumerate(mats):
                batch[j, :m.shape[0]] = m
            lens = np.array([m.shape[0] for m in mats], dtype=np.int64)
            out[idx] = self.session.run([meta.OUTPUT], {meta.INPUT_FEATS: batch, meta.INPUT_LENGTHS: lens})[0]
        return out

    def embed(self, audio: Audio, sr: int | None = None) -> np.ndarray:
        """Speaker embedding (embed_dim,) float32 of a wav path or a 1-D waveform."""
        return self.embed_features([self.features(audio, sr)])[0]

    def score(self, a: Audio | Sequence[Audio], b: Audio) -> float:
        """Score of two embeddings or wav paths (cosine, after the exported back-end if any; the PLDA
        log-likelihood ratio with a plda one); ``a`` may be several of one speaker, as in
        :meth:`dmha.api.SpeakerModel.score`."""
        def embedding(x: Audio) -> np.ndarray:
            return self.embed(x) if isinstance(x, (str, Path)) else np.asarray(x, np.float32).reshape(-1)

        return pair_score(np.stack([embedding(x) for x in enrolment_items(a)]), embedding(b), self.backend)

    def llr(self, a: Audio | Sequence[Audio], b: Audio) -> float:
        """Calibrated log-likelihood ratio of :meth:`score` (the exp's calibration, exported with it)."""
        if self.calibration is None:
            raise UserError(f"{self.path}: no calibration in the model (the exp had no calibration.yaml "
                            "for these weights at export)")
        return float(self.calibration.llr(self.score(a, b)))

    def verify(self, a: Audio | Sequence[Audio], b: Audio, threshold: float | None = None,
               p_target: float | None = None) -> Verification:
        """Same speaker? The rule of :meth:`dmha.api.SpeakerModel.verify` (one function for both:
        :func:`dmha.scoring.decision.decide`): ``threshold`` if given, else the Bayes decision on the
        exported calibration's LLR for ``p_target``, else the exported threshold."""
        return decide(self.score(a, b), self.calibration, self.threshold, threshold, p_target,
                      f"{self.path}: no decision threshold or calibration in the model (the exp had "
                      "neither at export); pass --threshold")
