"""Baseline for bench/bench_train.py: the paper's model computed the way its public reference code does.

Written by us from SPEC.md §2 and the reference's published structure (not copied): it is the
"straightforward" implementation our model is compared against, in speed and in numbers.

What makes it the reference computation (and slower/larger where it differs from dmha.models):

* VGG4L/VGG3L front-end: input viewed as (B, T, 1, F) and transposed to (B, 1, T, F); per block
  conv3x3+ReLU, conv3x3+ReLU, 2x2 ceil-mode max-pool; output transposed to (B, T', C, F') and viewed
  as (B, T', C*F') (channel-major). No masking at all (training uses equal-length crops).
* Multi-head stage 1 as the reference: the frames are viewed as (B*T', K, d_h) "keys" and multiplied
  by the full (d_h, K) query matrix, giving a (B*T', K, K) product of which only the DIAGONAL is used
  (K times the work of the per-head dot products), scaled by 1/sqrt(K) (``d_k = query.size(-1)``);
  softmax over time, weighted sum of the (B, T', K, d_h) "values".
* Stage 2 (DMHA): head logits ``(B, K, d_h) @ (d_h, 1)``, unscaled, softmax over heads, weighted sum.
  The reference's training-only random head masking is left out ("no masking"), so the model is
  deterministic and comparable.
* Single-head attention: ``ht @ att`` unscaled, softmax over time. MHA: stage 1 only, concatenated.
* Dense: fc1 + ReLU; fc2 + ReLU + BatchNorm1d (= embedding); a linear pre-layer.
* AM-Softmax as the reference writes it: class matrix (E, C), explicit norms, ``mm``, a dense
  zeros tensor with the margin scattered in at the labels, cross entropy.

Our model is equal to this one with ``stage1_scale: reference``, ``stage2_scale: false``,
``head_dropout: 0`` and ``dense_variant: reference``; :func:`copy_weights` copies a dmha
``SpeakerNet`` (+ loss head) into it so the two can be checked for equal outputs.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class RefVGG(nn.Module):
    """VGG front-end, reference style: a flat list of conv layers, the loop written out."""

    def __init__(self, channels: list[int], in_dim: int = 80) -> None:
        super().__init__()
        widths = [1, *channels]
        self.convs = nn.ModuleList()
        for a, b in zip(widths[:-1], widths[1:]):
            self.convs.append(nn.Conv2d(a, b, 3, stride=1, padding=1))
            self.convs.append(nn.Conv2d(b, b, 3, stride=1, padding=1))
        self.pool = nn.MaxPool2d(2, stride=2, padding=0, ceil_mode=True)
        freq = in_dim
        for _ in channels:
            freq = math.ceil(freq / 2)
        self.out_dim = channels[-1] * freq

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, f = x.shape
        x = x.view(b, t, 1, f).transpose(1, 2)
        for i in range(0, len(self.convs), 2):
            x = F.relu(self.convs[i](x))
            x = F.relu(self.convs[i + 1](x))
            x = self.pool(x)
        x = x.transpose(1, 2)
        return x.contiguous().view(x.size(0), x.size(1), -1)


def _param(*size: int) -> nn.Parameter:
    p = nn.Parameter(torch.empty(*size))
    nn.init.xavier_normal_(p)
    return p


def inner_key_value_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor
                              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference stage 1: full (B*T, K, K) key x query product, keep its diagonal, softmax over time."""
    d_k = query.size(-1)
    scores = torch.diagonal(torch.matmul(key, query) / math.sqrt(d_k), dim1=-2, dim2=-1)
    scores = scores.reshape(value.size(0), value.size(1), value.size(2))
    p_attn = F.softmax(scores, dim=-2)
    ct = torch.sum(value * p_attn.unsqueeze(-1), dim=1)
    return ct, p_attn


class RefMHA(nn.Module):
    """Stage 1: K heads over d_h slices; output (B, K, d_h)."""

    def __init__(self, encoder_size: int, heads: int) -> None:
        super().__init__()
        assert encoder_size % heads == 0
        self.heads, self.head_size = heads, encoder_size // heads
        self.query = _param(self.head_size, heads)

    def forward(self, ht: torch.Tensor) -> torch.Tensor:
        b = ht.size(0)
        key = ht.reshape(b * ht.size(1), self.heads, self.head_size)
        value = ht.reshape(b, -1, self.heads, self.head_size)
        ct, _ = inner_key_value_attention(self.query, key, value)
        return ct


class RefAttention(nn.Module):
    """Single-head attention, unscaled."""

    def __init__(self, encoder_size: int) -> None:
        super().__init__()
        self.att = _param(encoder_size, 1)

    def forward(self, ht: torch.Tensor) -> torch.Tensor:
        score = torch.matmul(ht, self.att).squeeze(-1)
        score = F.softmax(score, dim=-1).view(ht.size(0), ht.size(1), 1)
        return torch.sum(ht * score, dim=1)


class RefDoubleMHA(nn.Module):
    """DMHA: reference stage 1, then unscaled attention over the K head vectors (no head masking)."""

    def __init__(self, encoder_size: int, heads: int) -> None:
        super().__init__()
        self.mha = RefMHA(encoder_size, heads)
        self.att = _param(encoder_size // heads, 1)

    def forward(self, ht: torch.Tensor) -> torch.Tensor:
        heads = self.mha(ht)                                   # (B, K, d_h)
        score = torch.matmul(heads, self.att).squeeze(-1)      # (B, K)
        score = F.softmax(score, dim=-1).view(heads.size(0), heads.size(1), 1)
        return torch.sum(heads * score, dim=1)


class RefSpeakerNet(nn.Module):
    """Front-end -> pooling -> fc1/fc2/BN embedding -> pre-layer (the input of the loss)."""

    def __init__(self, channels: list[int], pooling: str, heads: int, in_dim: int = 80,
                 embed_dim: int = 400) -> None:
        super().__init__()
        self.front = RefVGG(channels, in_dim)
        d = self.front.out_dim
        if pooling == "dmha":
            self.pooling, pooled = RefDoubleMHA(d, heads), d // heads
        elif pooling == "mha":
            self.pooling, pooled = RefMHA(d, heads), d
        elif pooling == "attention":
            self.pooling, pooled = RefAttention(d), d
        else:
            raise ValueError(f"reference model has no pooling {pooling!r} (attention, mha, dmha)")
        self.pooling_name = pooling
        self.fc1 = nn.Linear(pooled, embed_dim)
        self.fc2 = nn.Linear(embed_dim, embed_dim)
        self.b2 = nn.BatchNorm1d(embed_dim)
        self.pre_layer = nn.Linear(embed_dim, embed_dim)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pooling(self.front(x))
        if self.pooling_name == "mha":
            h = h.reshape(h.size(0), -1)
        h = F.relu(self.fc1(h))
        return self.b2(F.relu(self.fc2(h)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pre_layer(self.embed(x))


class RefAMSoftmax(nn.Module):
    """AM-Softmax with an (E, C) class matrix and a dense scattered margin, as the reference writes it."""

    def __init__(self, embed_dim: int, num_classes: int, margin: float = 0.4, scale: float = 30.0) -> None:
        super().__init__()
        self.W = _param(embed_dim, num_classes)
        self.m, self.s = margin, scale
        self.ce = nn.CrossEntropyLoss()

    def forward(self, x: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x_norm = x / torch.norm(x, p=2, dim=1, keepdim=True).clamp(min=1e-12)
        w_norm = self.W / torch.norm(self.W, p=2, dim=0, keepdim=True).clamp(min=1e-12)
        costh = torch.mm(x_norm, w_norm)
        delt = torch.zeros(costh.size(), device=costh.device).scatter_(1, label.view(-1, 1), self.m)
        logits = self.s * (costh - delt)
        return self.ce(logits, label), logits


def copy_weights(ours: nn.Module, our_loss: nn.Module, ref: RefSpeakerNet, ref_loss: RefAMSoftmax) -> None:
    """Copy a dmha SpeakerNet + AMSoftmax into the reference modules (layouts transposed where needed)."""
    with torch.no_grad():
        convs = [c for blk in ours.frontend.blocks for c in (blk.conv1, blk.conv2)]
        for src, dst in zip(convs, ref.front.convs):
            dst.weight.copy_(src.weight)
            dst.bias.copy_(src.bias)
        name = ref.pooling_name
        if name == "attention":
            ref.pooling.att.copy_(ours.pooling.stage1.query.reshape(-1, 1))
        elif name == "mha":
            ref.pooling.query.copy_(ours.pooling.stage1.query.t())
        else:
            ref.pooling.mha.query.copy_(ours.pooling.stage1.query.t())
            ref.pooling.att.copy_(ours.pooling.head_query)
        ref.fc1.load_state_dict(ours.fc1[0].state_dict())
        ref.fc2.load_state_dict(ours.fc2[0].state_dict())
        ref.b2.load_state_dict(ours.fc2[2].state_dict())
        ref.pre_layer.load_state_dict(ours.pre_layer.state_dict())
        ref_loss.W.copy_(our_loss.weight.t())
