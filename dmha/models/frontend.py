"""VGG convolutional front-end (VGG4L / VGG3L of the paper), mask-aware.

Each block is [conv 3x3 pad 1 + ReLU, conv 3x3 pad 1 + ReLU, max-pool 2x2 stride 2 ceil_mode], with no
BatchNorm (as in the paper). Input (B, T, F) log-mel frames; output (B, ceil(T / 2^L), C_L * F_L)
frame vectors, flattened channel-major (index c * F_L + f), as the reference implementation does.

Why the masking: a 3x3 convolution lets padded frames (non-zero after the first conv + ReLU because of
the bias) leak into the last valid frames. Re-zeroing the padded frames after every conv + ReLU makes
a padded utterance see exactly the zero padding it sees alone. The ceil-mode max-pool is then exact
too: ReLU outputs are >= 0, so a window that reaches into zeroed padding keeps its maximum. The valid
length shrinks to ceil(T / 2) with each pooling.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import nn

from dmha.models.masking import halve_lengths, lengths_to_mask


class VGGBlock(nn.Module):
    """[conv3x3 + ReLU] x 2 + 2x2 ceil-mode max-pool, re-zeroing padded frames after each ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True)

    def forward(self, x: torch.Tensor, lengths: Optional[torch.Tensor]) -> tuple[torch.Tensor,
                                                                                 Optional[torch.Tensor]]:
        """x: (B, C, T, F); lengths (B,) or None. Returns the pooled map and the halved lengths."""
        mask = _time_mask(lengths, x)
        x = torch.relu(self.conv1(x))
        if mask is not None:
            x = x * mask
        x = torch.relu(self.conv2(x))
        if mask is not None:
            x = x * mask
        return self.pool(x), halve_lengths(lengths)


def _time_mask(lengths: Optional[torch.Tensor], x: torch.Tensor) -> Optional[torch.Tensor]:
    """(B, 1, T, 1) multiplicative mask in x's dtype, or None when nothing is padded."""
    if lengths is None:
        return None
    return lengths_to_mask(lengths, x.shape[2], x.device)[:, None, :, None].to(x.dtype)


class VGGFrontend(nn.Module):
    """Stack of :class:`VGGBlock` with the given channel widths (4 widths = VGG4L, 3 = VGG3L)."""

    def __init__(self, channels: Sequence[int], in_dim: int = 80, channels_last: bool = False) -> None:
        super().__init__()
        if not channels or any(int(c) < 1 for c in channels):
            raise ValueError(f"channels must be a non-empty list of positive widths, got {channels}")
        widths = [1, *[int(c) for c in channels]]
        self.blocks = nn.ModuleList(VGGBlock(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.in_dim = in_dim
        self.freq_out = in_dim
        for _ in channels:
            self.freq_out = math.ceil(self.freq_out / 2)
        self.out_channels = widths[-1]
        # NHWC (channels-last) conv weights make cuDNN use its tensor-core kernels and oneDNN (CPU) its
        # blocked NHWC kernels: bench/bench_train.py measured a training step of the mini model 1.5x
        # faster on CPU (paper model ~1.06x), same results to float rounding. The weights' layout is
        # what selects the kernels (a 1-channel input is ambiguous), and .to(device) / load_state_dict
        # keep it; the gradients and Adam states follow the weights' layout.
        self.channels_last = channels_last
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def get_out_dim(self) -> int:
        """Size D of each output frame vector: last width x pooled frequency bins (5120 for the paper)."""
        return self.out_channels * self.freq_out

    def forward(self, feats: torch.Tensor, lengths: Optional[torch.Tensor] = None
                ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """feats (B, T, F) -> frames (B, T', D) and their lengths (B,) (None when lengths is None)."""
        if feats.dim() != 3 or feats.shape[2] != self.in_dim:
            raise ValueError(f"expected features (B, T, {self.in_dim}), got {tuple(feats.shape)}")
        x = feats.unsqueeze(1)
        mask = _time_mask(lengths, x)
        if mask is not None:  # padded input frames must be zero, whatever the collate put there
            x = x * mask
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        for block in self.blocks:
            x, lengths = block(x, lengths)
        b, c, t, f = x.shape
        return x.permute(0, 2, 1, 3).reshape(b, t, c * f), lengths
