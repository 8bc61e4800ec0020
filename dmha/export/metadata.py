"""Names of the settings an exported model carries in its ONNX metadata (``metadata_props``).

Why in the model file: a deployed model must not depend on an exp dir beside it, and features computed
with other settings than the model was trained on must be caught, not silently embedded. One model
file is the whole deployment (plus onnxruntime, numpy and soundfile).
"""

from __future__ import annotations

FORMAT = "dmha.format"            # version of this metadata layout
FORMAT_VERSION = "1"
FEATURES = "dmha.features"        # JSON: FbankConfig.to_dict() of config.yaml's features (incl. norm)
MODEL = "dmha.model"              # JSON: the model: section (for information)
EMBED_DIM = "dmha.embed_dim"
CHECKPOINT = "dmha.checkpoint"    # file name of the exported weights (best.pt unless --model)
MODEL_STEP = "dmha.model_step"    # training step of those weights ("" if unknown)
THRESHOLD = "dmha.threshold"      # the exp's threshold.yaml for these weights ("" if none)
QUANTIZED = "dmha.quantized"      # "none" | "int8"
BACKEND = "dmha.backend"          # the exp's scoring back-end for these weights (Backend.to_text; "" if none)
CALIBRATION = "dmha.calibration"  # JSON {"scale", "offset"}: the exp's calibration.yaml for these weights
                                  # and back-end (score -> LLR; "" or absent if none)
WINOGRAD = "dmha.winograd"        # JSON {conv module: tile m}: convolutions computed as Winograd
                                  # F(m x m, 3 x 3) in this graph ("" or absent: all direct). For information.

INPUT_FEATS = "feats"             # (batch, frames, n_mels) float32 RAW log-mels, zero-padded
INPUT_LENGTHS = "lengths"         # (batch,) int64 valid frames per utterance
OUTPUT = "embedding"              # (batch, embed_dim) float32
