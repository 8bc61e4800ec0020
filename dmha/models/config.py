"""The ``model:`` section of a dmha YAML config, parsed into a checked dataclass.

Unknown keys and bad values are user errors (a typo in a config must not silently train the wrong
model), reported as one line naming the key and the accepted values. See :mod:`dmha.models` for the
schema.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Optional

from dmha.common.errors import UserError

FRONTEND_WIDTHS = {"vgg4l": [128, 256, 512, 1024], "vgg3l": [256, 512, 1024]}
FRONTENDS = ("vgg", *FRONTEND_WIDTHS)
POOLING_NAMES = ("attention", "mha", "dmha", "stats")
DENSE_VARIANTS = ("reference", "paper")
STAGE1_SCALES = ("paper", "reference")


@dataclass
class ModelConfig:
    """Model hyper-parameters; defaults are the paper's best system (VGG4L + DMHA, K = 32)."""

    frontend: str = "vgg"
    channels: Optional[list[int]] = None  # None: the width list of the frontend (vgg = vgg4l)
    in_dim: int = 80
    pooling: str = "dmha"
    heads: int = 32
    stage1_scale: str = "paper"
    stage2_scale: bool = True
    head_dropout: float = 0.0
    embed_dim: int = 400
    dense_variant: str = "reference"
    channels_last: bool = False

    @classmethod
    def from_dict(cls, cfg: Optional[dict], where: str = "model") -> ModelConfig:
        """Build from a YAML mapping, rejecting unknown keys and bad values with a UserError."""
        cfg = dict(cfg or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise UserError(f"config section '{where}': unknown key(s) {unknown}; "
                            f"known keys: {sorted(known)}")
        out = cls(**cfg)
        out._check(where)
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (YAML-ready) with the channel list filled in, for exp/<name>/config.yaml."""
        d = asdict(self)
        d["channels"] = self.widths()
        return d

    def widths(self) -> list[int]:
        """The CNN channel widths actually used."""
        if self.channels is not None:
            return [int(c) for c in self.channels]
        return list(FRONTEND_WIDTHS["vgg4l" if self.frontend == "vgg" else self.frontend])

    def _check(self, where: str) -> None:
        def bad(key: str, value: Any, expected: str) -> UserError:
            return UserError(f"config section '{where}': {key}={value!r} is invalid; expected {expected}")

        if self.frontend not in FRONTENDS:
            raise bad("frontend", self.frontend, f"one of {list(FRONTENDS)}")
        ch = self.channels
        if ch is not None:
            if (not isinstance(ch, (list, tuple)) or not ch
                    or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in ch)):
                raise bad("channels", ch, "a non-empty list of positive integers")
            if self.frontend in FRONTEND_WIDTHS and len(ch) != len(FRONTEND_WIDTHS[self.frontend]):
                raise bad("channels", ch, f"{len(FRONTEND_WIDTHS[self.frontend])} widths for {self.frontend}")
        if self.pooling not in POOLING_NAMES:
            raise bad("pooling", self.pooling, f"one of {list(POOLING_NAMES)}")
        if self.stage1_scale not in STAGE1_SCALES:
            raise bad("stage1_scale", self.stage1_scale, f"one of {list(STAGE1_SCALES)}")
        if self.dense_variant not in DENSE_VARIANTS:
            raise bad("dense_variant", self.dense_variant, f"one of {list(DENSE_VARIANTS)}")
        for key in ("stage2_scale", "channels_last"):
            if not isinstance(getattr(self, key), bool):
                raise bad(key, getattr(self, key), "true or false")
        for key in ("in_dim", "heads", "embed_dim"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise bad(key, v, "a positive integer")
        if isinstance(self.head_dropout, bool) or not isinstance(self.head_dropout, (int, float)) \
                or not 0.0 <= self.head_dropout < 1.0:
            raise bad("head_dropout", self.head_dropout, "a number in [0, 1)")
        if self.head_dropout > 0 and self.pooling != "dmha":
            raise bad("head_dropout", self.head_dropout, "0 unless pooling is dmha")
        if self.pooling in ("mha", "dmha"):
            freq = self.in_dim
            for _ in self.widths():
                freq = -(-freq // 2)
            d = self.widths()[-1] * freq
            if d % self.heads:
                raise bad("heads", self.heads, f"a divisor of the frame dimension D = {d}")


def check_bf16_setting(value: Any, where: str = "train.bf16") -> Any:
    """``value`` if it is true, false or "auto" (bf16 autocast, :mod:`dmha.models.precision`); else a
    UserError naming ``where``. Kept here, torch-free, so that dmha.config checks it without torch."""
    if isinstance(value, bool) or value == "auto":
        return value
    raise UserError(f"{where}={value!r}: expected true, false or auto")
