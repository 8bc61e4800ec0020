"""Feature settings (:class:`FbankConfig`), apart from :mod:`dmha.features.fbank` so that tools which only
read or compare settings (stage-1 bookkeeping, config resolution) do not pay for importing torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from dmha.common.errors import UserError

NORM_MODES = ("cmn", "cmvn", "none")


@dataclass(frozen=True)
class FbankConfig:
    """Feature settings; the defaults are the paper's. ``norm`` is applied at load time, not stored."""

    sample_rate: int = 16000
    n_fft: int = 512
    win_length: int = 400
    hop_length: int = 160
    n_mels: int = 80
    preemphasis: float = 0.97
    fmin: float = 0.0
    fmax: float | None = None  # None: sample_rate / 2
    log_floor: float = 1.0
    norm: str = "cmn"

    def __post_init__(self) -> None:
        if self.norm not in NORM_MODES:
            raise UserError(f"features.norm '{self.norm}' is not one of {', '.join(NORM_MODES)}")
        if not 0 < self.win_length <= self.n_fft:
            raise UserError(f"features: win_length {self.win_length} must be in 1..n_fft ({self.n_fft})")
        if self.hop_length <= 0 or self.n_mels <= 0 or self.sample_rate <= 0:
            raise UserError("features: sample_rate, hop_length and n_mels must be positive")
        if not 0 <= self.fmin < self.top_freq <= self.sample_rate / 2:
            raise UserError(f"features: need 0 <= fmin < fmax <= sample_rate/2, got {self.fmin}..{self.fmax}")

    @property
    def top_freq(self) -> float:
        """Upper edge of the mel filterbank in Hz."""
        return float(self.fmax) if self.fmax is not None else self.sample_rate / 2

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> FbankConfig:
        """Build from a YAML ``features:`` section; unknown keys are an error naming them."""
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UserError(f"features: unknown key(s) {', '.join(unknown)}; "
                            f"known: {', '.join(sorted(known))}")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def num_frames(self, num_samples: int) -> int:
        """Frames of a signal of ``num_samples`` samples (0 when shorter than one frame)."""
        return 0 if num_samples < self.n_fft else 1 + (num_samples - self.n_fft) // self.hop_length


def settings_differences(stored: dict[str, Any], cfg: FbankConfig) -> list[str]:
    """``key=stored (expected: wanted)`` for each setting in which features stored with ``stored`` (a data
    dir's ``fbank.yaml``) differ from ``cfg``; empty when they match.

    Why: a model sees features only through these settings, so features computed with another ``fmax``
    or ``n_mels`` than its config train or embed without any error and silently cost accuracy.
    ``norm`` is applied at load time and ``storage`` (float32 or Kaldi compressed) is read the same way,
    so neither is compared; keys an older stamp lacks take their defaults.
    """
    theirs = FbankConfig.from_dict({k: v for k, v in stored.items() if k not in ("norm", "storage")})
    mine, theirs_d = cfg.to_dict(), theirs.to_dict()
    return [f"{k}={theirs_d[k]} (expected {mine[k]})" for k in sorted(mine)
            if k != "norm" and theirs_d[k] != mine[k]]
