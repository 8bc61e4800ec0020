"""Margin softmax losses for speaker classification: AM-Softmax (CosFace) and AAM (ArcFace).

Both L2-normalise the pre-layer outputs and the class weight matrix W (num_classes x embed_dim; the
"classifier" of the parameter count, 2.4 M at 5994 speakers), so the logits are cosines.

  * ``amsoftmax``: logits = s * (cos(theta) - m * onehot)           (paper: s = 30, m = 0.4)
  * ``aam``:       logits = s * cos(theta + m * onehot)               (default s = 30, m = 0.2)
    with the usual ArcFace fallback cos(theta) - m * sin(pi - m) where theta + m would pass pi, so
    the target logit stays monotonic in theta.

``forward(x, labels)`` returns ``(loss, cosine)``: the mean cross entropy of the margined logits, and
the unmargined, unscaled cosines (B, num_classes) whose argmax is the training accuracy.

The computation runs in float32 with autocast disabled: cosines near +-1 and the margin need more
precision than bf16 gives.

YAML schema, section ``loss:``::

    loss:
      type: amsoftmax   # amsoftmax | aam
      scale: 30         # s
      margin: 0.4       # m (default 0.4 for amsoftmax, 0.2 for aam)
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn
from torch.nn import functional as F

from dmha.common.errors import UserError

DEFAULT_MARGIN = {"amsoftmax": 0.4, "aam": 0.2}


class _MarginSoftmax(nn.Module):
    """Shared part: the normalised class weights and the cosine computation."""

    def __init__(self, embed_dim: int, num_classes: int, scale: float, margin: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, embed_dim))
        nn.init.xavier_normal_(self.weight)
        self.scale, self.margin = float(scale), float(margin)
        self.num_classes = num_classes

    def cosine(self, x: torch.Tensor) -> torch.Tensor:
        """(B, E) -> (B, num_classes) cosines between the inputs and each class weight, float32."""
        return F.linear(F.normalize(x.float(), dim=1), F.normalize(self.weight.float(), dim=1))

    def margined_logits(self, cos: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(device_type=x.device.type, enabled=False):
            cos = self.cosine(x)
            onehot = F.one_hot(labels.long(), self.num_classes).to(cos.dtype)
            loss = F.cross_entropy(self.margined_logits(cos, onehot), labels.long())
        return loss, cos.detach()


class AMSoftmax(_MarginSoftmax):
    """Additive margin softmax (CosFace): s * (cos - m) for the target class, s * cos otherwise."""

    def margined_logits(self, cos: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        return self.scale * (cos - self.margin * onehot)


class AAMSoftmax(_MarginSoftmax):
    """Additive angular margin (ArcFace): s * cos(theta + m) for the target class."""

    def margined_logits(self, cos: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        m = self.margin
        sin = torch.sqrt((1.0 - cos * cos).clamp(min=0.0, max=1.0))
        phi = cos * math.cos(m) - sin * math.sin(m)
        # theta + m > pi (cos < cos(pi - m)): use a linear extension so the logit keeps falling.
        phi = torch.where(cos > math.cos(math.pi - m), phi, cos - m * math.sin(math.pi - m))
        return self.scale * torch.where(onehot.bool(), phi, cos)


LOSSES = {"amsoftmax": AMSoftmax, "aam": AAMSoftmax}


def build_loss(loss_cfg: Optional[dict], embed_dim: int, num_classes: int) -> nn.Module:
    """Build the loss of the ``loss:`` config section; it owns the num_classes x embed_dim classifier."""
    cfg = dict(loss_cfg or {})
    unknown = sorted(set(cfg) - {"type", "scale", "margin"})
    if unknown:
        raise UserError(f"config section 'loss': unknown key(s) {unknown}; "
                        "known keys: ['margin', 'scale', 'type']")
    kind = cfg.get("type", "amsoftmax")
    if kind not in LOSSES:
        raise UserError(f"config section 'loss': type={kind!r} is invalid; expected one of {sorted(LOSSES)}")
    scale = cfg.get("scale", 30.0)
    margin = cfg.get("margin", DEFAULT_MARGIN[kind])
    for key, v in (("scale", scale), ("margin", margin)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or (key == "scale" and v == 0):
            raise UserError(f"config section 'loss': {key}={v!r} is invalid; expected a "
                            f"{'positive' if key == 'scale' else 'non-negative'} number")
    if kind == "aam" and margin >= math.pi / 2:
        raise UserError(f"config section 'loss': margin={margin} is too large for aam; use a value below 1.5")
    if num_classes < 1 or embed_dim < 1:
        raise UserError(f"build_loss: need num_classes >= 1 and embed_dim >= 1, "
                        f"got {num_classes}, {embed_dim}")
    return LOSSES[kind](embed_dim, num_classes, scale, margin)
