"""Winograd F(m x m, 3 x 3) convolutions for the exported float graph.

Why: onnxruntime's float 3x3 convolution (MLAS, direct NCHWc kernels) runs the paper model only ~1.1-1.3x
faster than torch's (oneDNN) on one thread, and both already sit near the core's fp32 peak; the only way
to do much better in float is fewer multiplications. Winograd's minimal filtering algorithm computes an
m x m output tile of a 3x3 convolution from an (m + 2)^2 input tile with (m + 2)^2 products per channel
pair instead of 9 m^2: 2.25x fewer for F(2x2, 3x3), 4x fewer for F(4x4, 3x3) (Lavin & Gray, "Fast
Algorithms for Convolutional Neural Networks", CVPR 2016). cuDNN, oneDNN, XNNPACK and OpenVINO use it
internally; onnxruntime's CPU provider does not, so the export writes it into the graph as plain ONNX ops:

    input transform   Conv with the (m + 2)^2 fixed kernels B^T (.) B, stride m, on each channel alone
    products          one batched MatMul: for every tile position, (C_out x C_in) @ (C_in x tiles)
    output transform  ConvTranspose with the fixed kernels A^T (.) A, stride m (no overlap)

The transformed weights U = G w G^T are computed in the graph from the stored 3x3 weights (torch's
exporter leaves that computation in the graph), so the .onnx file keeps its size; onnxruntime folds them
into constants when it loads the model, which costs load time and memory: (m + 2)^2 / 9 times the
layer's weights, 4x for F(4x4) (paper model: load 1.2 s instead of 0.3 s, resident 380 MB instead of
211 MB, 840 MB instead of 343 MB at the peak while loading). Results equal the direct convolution to
float rounding (relative error ~1e-6 for F(4x4), checked against torch at every export).

Where it pays (bench/bench_onnx.py, one thread): layers with many channels, where the products
dominate the transforms' memory traffic. With 16-128 channels (the mini model) the transforms cost more
than they save, so ``auto`` leaves such layers alone; see :func:`winograd_tiles`.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

WINOGRAD_MODES = ("auto", "off", "all")

# Lavin & Gray's F(2, 3) and F(4, 3) (interpolation points 0, +-1, +-2, infinity): data transform B^T,
# filter transform G, output transform A^T.
_MATRICES = {
    2: {"BT": [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
        "G": [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]],
        "AT": [[1, 1, 1, 0], [0, 1, -1, -1]]},
    4: {"BT": [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
               [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]],
        "G": [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6],
              [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]],
        "AT": [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]},
}
TILES = tuple(_MATRICES)

#: ``auto``: layers with at least this many input and output channels get a Winograd tile ...
AUTO_MIN_IN_CHANNELS = 128
AUTO_MIN_OUT_CHANNELS = 256
#: ... F(4x4) unless C_in x C_out reaches this, where the 4x weight expansion (151 MB for a 1024 x 1024
#: layer) costs more memory reading than the products it saves on short inputs: F(2x2) there.
AUTO_SMALL_TILE_FROM = 512 * 1024


def is_plain_3x3(conv: nn.Module) -> bool:
    """A 3x3, stride-1, padding-1, undilated, ungrouped 2-D convolution (what this module replaces)."""
    return (isinstance(conv, nn.Conv2d) and tuple(conv.kernel_size) == (3, 3) and tuple(conv.stride) == (1, 1)
            and tuple(conv.padding) == (1, 1) and tuple(conv.dilation) == (1, 1) and conv.groups == 1
            and conv.padding_mode == "zeros")


class WinogradConv3x3(nn.Module):
    """The convolution ``conv`` (see :func:`is_plain_3x3`) computed as Winograd F(m x m, 3 x 3).

    Input and output are NCHW as for ``conv``; any height and width (tiles past the edge see zeros and
    are cropped). Traced by ``torch.onnx.export`` into Pad, Conv, MatMul, ConvTranspose and shape ops.
    """

    def __init__(self, conv: nn.Conv2d, tile: int = 4) -> None:
        super().__init__()
        if tile not in _MATRICES:
            raise ValueError(f"Winograd tile must be one of {TILES}, got {tile}")
        if not is_plain_3x3(conv):
            raise ValueError(f"not a plain 3x3 convolution: {conv}")
        mats = {k: torch.tensor(v, dtype=torch.float64) for k, v in _MATRICES[tile].items()}
        self.tile, self.span = tile, tile + 2
        # kernels[p * span + q] = outer(B^T[p], B^T[q]): the (p, q) element of B^T d B for a span x span d
        self.register_buffer("data_kernels", torch.einsum("pi,qj->pqij", mats["BT"], mats["BT"])
                             .reshape(self.span ** 2, 1, self.span, self.span).float())
        # out_kernels[p * span + q] = outer(A^T[:, p], A^T[:, q]): how product (p, q) spreads over the tile
        self.register_buffer("out_kernels", torch.einsum("ap,bq->pqab", mats["AT"], mats["AT"])
                             .reshape(self.span ** 2, 1, tile, tile).float())
        self.register_buffer("filter_transform", mats["G"].float())
        self.weight = nn.Parameter(conv.weight.detach().clone().contiguous(), requires_grad=False)
        bias = conv.bias.detach().clone() if conv.bias is not None else torch.zeros(conv.out_channels)
        self.bias = nn.Parameter(bias.reshape(1, -1, 1, 1), requires_grad=False)

    def transformed_weights(self) -> torch.Tensor:
        """U = G w G^T as (span^2, 1, C_out, C_in): one weight matrix per tile position."""
        g = self.filter_transform
        u = torch.matmul(torch.matmul(g, self.weight), g.t())  # (C_out, C_in, span, span)
        c_out, c_in = u.shape[0], u.shape[1]
        return u.permute(2, 3, 0, 1).reshape(self.span ** 2, 1, c_out, c_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        m, span = self.tile, self.span
        n_h, n_w = (h + m - 1) // m, (w + m - 1) // m
        # The conv's zero padding of 1, plus zeros up to whole tiles.
        d = F.pad(x, (1, m * n_w + 1 - w, 1, m * n_h + 1 - h)).reshape(b * c, 1, m * n_h + 2, m * n_w + 2)
        v = F.conv2d(d, self.data_kernels, stride=m)                       # (B*C, span^2, n_h, n_w)
        v = v.reshape(b, c, span * span, n_h * n_w).permute(2, 0, 1, 3)     # (span^2, B, C_in, tiles)
        prod = torch.matmul(self.transformed_weights(), v)                  # (span^2, B, C_out, tiles)
        c_out = prod.shape[2]
        prod = prod.permute(1, 2, 0, 3).reshape(b * c_out, span * span, n_h, n_w)
        y = F.conv_transpose2d(prod, self.out_kernels, stride=m).reshape(b, c_out, m * n_h, m * n_w)
        return y[:, :, :h, :w] + self.bias


def winograd_tiles(model: nn.Module, mode: str = "auto") -> dict[str, int]:
    """Which convolutions of ``model`` get which Winograd tile: ``{module name: m}``.

    ``off``: none. ``all``: every plain 3x3 convolution with more than one input channel, F(4x4) (for
    tests, and to try on another CPU). ``auto``: those with >= 128 input and >= 256 output channels,
    F(4x4), or F(2x2) from 512 x 1024 channels on. For the paper model (VGG4L 128-1024) that is 6 of its 8
    convolutions (not the 1- and 128-channel ones of the first block); for the mini model none. Why:
    measured per layer and on the whole paper model on one thread of an Intel Xeon (README, Deployment).
    """
    if mode not in WINOGRAD_MODES:
        raise ValueError(f"winograd mode must be one of {', '.join(WINOGRAD_MODES)}, got {mode!r}")
    tiles: dict[str, int] = {}
    if mode == "off":
        return tiles
    for name, mod in model.named_modules():
        if not is_plain_3x3(mod) or mod.in_channels < 2:
            continue
        if mode == "all":
            tiles[name] = 4
        elif mod.in_channels >= AUTO_MIN_IN_CHANNELS and mod.out_channels >= AUTO_MIN_OUT_CHANNELS:
            tiles[name] = 2 if mod.in_channels * mod.out_channels >= AUTO_SMALL_TILE_FROM else 4
    return tiles


def with_winograd(model: nn.Module, tiles: dict[str, int]) -> nn.Module:
    """A copy of ``model`` with the convolutions named in ``tiles`` computed by :class:`WinogradConv3x3`
    (``model`` itself is unchanged)."""
    if not tiles:
        return model
    out = copy.deepcopy(model)
    for name, tile in tiles.items():
        parent_name, _, attr = name.rpartition(".")
        parent = out.get_submodule(parent_name) if parent_name else out
        setattr(parent, attr, WinogradConv3x3(getattr(parent, attr), tile))
    return out.eval()
