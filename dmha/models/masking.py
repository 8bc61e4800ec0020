"""Frame masks for variable-length batches.

Every layer that mixes information over time (the 3x3 convolutions, the pooling layers) must ignore
padded frames, so that an utterance gets the same embedding in a padded batch as alone. The helpers
here turn per-utterance lengths into boolean masks and check the lengths once, at the model's entry.
"""

from __future__ import annotations

from typing import Optional

import torch


def check_lengths(lengths: Optional[torch.Tensor], batch: int, max_frames: int) -> Optional[torch.Tensor]:
    """Validate per-utterance frame counts: shape (B,), every value in [1, T].

    An utterance with no valid frame has no defined embedding (softmax over an empty set), so
    lengths of 0 are rejected here instead of turning into NaN later.
    """
    if lengths is None:
        return None
    lengths = torch.as_tensor(lengths)
    if lengths.dim() != 1 or lengths.shape[0] != batch:
        raise ValueError(f"lengths must have shape ({batch},), got {tuple(lengths.shape)}")
    if lengths.dtype.is_floating_point:
        raise ValueError(f"lengths must be an integer tensor, got {lengths.dtype}")
    lo, hi = int(lengths.min()), int(lengths.max())
    if lo < 1 or hi > max_frames:
        raise ValueError(f"every length must be in [1, {max_frames}] (the padded frame count); "
                         f"got min {lo}, max {hi}")
    return lengths


def lengths_to_mask(lengths: Optional[torch.Tensor], max_frames: int,
                    device: Optional[torch.device] = None) -> Optional[torch.Tensor]:
    """(B,) lengths -> (B, T) bool mask, True on valid frames; ``None`` stays ``None`` (no padding)."""
    if lengths is None:
        return None
    lengths = lengths.to(device) if device is not None else lengths
    return torch.arange(max_frames, device=lengths.device)[None, :] < lengths[:, None]


def halve_lengths(lengths: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """Frame counts after a stride-2, ceil-mode max-pool: ceil(T / 2)."""
    if lengths is None:
        return None
    return torch.div(lengths + 1, 2, rounding_mode="floor")
