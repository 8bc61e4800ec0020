"""dmha models: VGG front-end, pooling layers (registry), dense layers, 400-d speaker embedding.

Public API::

    from dmha.models import build_model, count_parameters
    model = build_model(cfg["model"], num_classes)   # SpeakerNet
    emb = model.embed(feats, lengths)   # (B, T, F) CMN'd log-mels, (B,) valid frames -> (B, embed_dim)
    out = model(feats, lengths)         # pre-layer output (B, embed_dim), input of dmha.models.losses
    model.embed_dim, model.parameter_counts()

``num_classes`` is accepted for symmetry with ``dmha.models.losses.build_loss`` (the speaker classifier's
weight matrix lives in the loss, not in the model), and checked to be >= 1.

YAML schema, section ``model:`` (all keys optional; defaults = the paper's best system)::

    model:
      frontend: vgg          # vgg (widths from `channels`, default VGG4L) | vgg4l | vgg3l
      channels: [128, 256, 512, 1024]  # one width per block; 4 = VGG4L, 3 = VGG3L (256, 512, 1024)
      in_dim: 80             # mel bins of the input features
      pooling: dmha          # attention | mha | dmha | stats
      heads: 32              # K for mha/dmha; must divide D = channels[-1] * ceil(in_dim / 2^blocks)
      stage1_scale: paper    # paper: 1/sqrt(d_h) | reference: 1/sqrt(K)   (mha, dmha)
      stage2_scale: true     # dmha: head logits / sqrt(d_h); false = reference (unscaled)
      head_dropout: 0.0      # dmha, training only: drop each (sample, head) with prob p (ref: 1/3);
                             # at least one head per sample is always kept
      embed_dim: 400         # embedding and pre-layer size
      dense_variant: reference  # reference: fc1+ReLU, fc2+ReLU+BN | paper: BN+ReLU after both
      channels_last: false   # NHWC conv weights + input: faster with cuDNN and on CPU (oneDNN)

Output sizes: D = channels[-1] * ceil(in_dim / 2^blocks) (5120 for the paper); pooled dim D for
attention/mha, D/K for dmha (160 at K = 32), 2D for stats. Paper model (VGG4L, DMHA K = 32, 5994
speakers): 18.7 M CNN + 0.39 M pooling/dense + 2.4 M classifier (in the loss) = 21.5 M parameters.
"""

from __future__ import annotations

from typing import Optional, Union

from dmha.common.errors import UserError
from dmha.models.config import ModelConfig
from dmha.models.pooling import POOLINGS, build_pooling, head_dropout_keep
from dmha.models.speaker_net import SpeakerNet, count_parameters

__all__ = ["ModelConfig", "SpeakerNet", "build_model", "count_parameters", "POOLINGS", "build_pooling",
           "head_dropout_keep"]


def build_model(model_cfg: Optional[Union[dict, ModelConfig]], num_classes: int) -> SpeakerNet:
    """Build the :class:`SpeakerNet` described by the ``model:`` config section (dict or ModelConfig)."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise UserError(f"num_classes must be a positive integer (number of training speakers), "
                        f"got {num_classes!r}; check the speaker list of the training data")
    cfg = model_cfg if isinstance(model_cfg, ModelConfig) else ModelConfig.from_dict(model_cfg)
    return SpeakerNet(cfg)
