"""Winograd convolutions of the exported float graph (issue 16's float speed).

What is pinned: F(2x2) and F(4x4) equal the direct 3x3 convolution (odd sizes, batches, no bias); which
layers ``auto`` / ``all`` / ``off`` replace (the paper model's 6 wide convolutions, none of the mini
model's); an export with Winograd layers gives torch's embeddings on padded batches and the alone-
embedding of a padded utterance, keeps the file the size of the 3x3 weights (onnxruntime folds the
transformed weights at load), records the layers in its metadata, and its int8 model is quantised from
the direct convolutions.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from dmha.common.errors import UserError
from dmha.export import metadata as meta
from dmha.export.onnx_export import EmbeddingGraph, export_onnx
from dmha.export.winograd import WinogradConv3x3, winograd_tiles, with_winograd
from dmha.models import build_model

sys.path.insert(0, str(Path(__file__).parent))
from conftest import REPO  # noqa: E402
from extract_fixtures import cosine_rows, make_feats_data_dir, make_tiny_exp  # noqa: E402

LENGTHS = [37, 120, 301, 64, 18, 250, 97, 5]


@pytest.mark.parametrize("tile", [2, 4])
@pytest.mark.parametrize("shape", [(1, 3, 5, 80), (2, 16, 37, 11), (3, 8, 4, 4), (2, 5, 1, 7)])
@pytest.mark.parametrize("bias", [True, False])
def test_winograd_equals_the_direct_convolution(tile, shape, bias):
    torch.manual_seed(0)
    b, c, h, w = shape
    conv = nn.Conv2d(c, 6, 3, padding=1, bias=bias).eval()
    x = torch.randn(b, c, h, w)
    with torch.no_grad():
        ref, got = conv(x), WinogradConv3x3(conv, tile)(x)
    assert got.shape == ref.shape
    assert float((got - ref).norm() / ref.norm()) < 2e-6


def test_winograd_refuses_other_convolutions():
    with pytest.raises(ValueError, match="not a plain 3x3"):
        WinogradConv3x3(nn.Conv2d(4, 4, 3, padding=1, stride=2))
    with pytest.raises(ValueError, match="tile must be one of"):
        WinogradConv3x3(nn.Conv2d(4, 4, 3, padding=1), tile=3)
    with pytest.raises(ValueError, match="winograd mode"):
        winograd_tiles(nn.Conv2d(4, 4, 3, padding=1), "fast")


def _model(conf: str) -> nn.Module:
    return build_model(yaml.safe_load(open(REPO / conf))["model"], 10)


def test_auto_picks_the_wide_layers_of_the_paper_model_and_none_of_the_mini_model():
    paper = _model("egs/voxceleb/conf/dmha_k32.yaml")  # VGG4L 128-256-512-1024
    tiles = winograd_tiles(paper, "auto")
    assert tiles == {"frontend.blocks.1.conv1": 4, "frontend.blocks.1.conv2": 4,
                     "frontend.blocks.2.conv1": 4, "frontend.blocks.2.conv2": 4,
                     "frontend.blocks.3.conv1": 2, "frontend.blocks.3.conv2": 2}
    assert winograd_tiles(paper, "off") == {}
    everything = winograd_tiles(paper, "all")  # all but the 1-channel input convolution
    assert len(everything) == 7 and "frontend.blocks.0.conv1" not in everything
    assert winograd_tiles(_model("egs/mini/conf/dmha.yaml"), "auto") == {}


def test_with_winograd_leaves_the_model_alone():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1)).eval()
    tiles = {"0": 4, "2": 2}
    copy = with_winograd(model, tiles)
    assert isinstance(copy[0], WinogradConv3x3) and copy[2].tile == 2
    assert isinstance(model[0], nn.Conv2d) and isinstance(model[2], nn.Conv2d)
    x = torch.randn(2, 3, 9, 13)
    with torch.no_grad():
        torch.testing.assert_close(copy(x), model(x), rtol=0, atol=2e-6)


@pytest.fixture(scope="module")
def wide_exp(tmp_path_factory):
    """A small exp whose front-end is wide enough for winograd 'all' to matter, with calibration data."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("wino")
    exp = make_tiny_exp(root / "exp", channels=[8, 16, 32, 32])
    return exp, make_feats_data_dir(root / "data", LENGTHS)


def test_winograd_export_gives_torch_embeddings_and_padding_invariance(wide_exp, tmp_path):
    from dmha.embed.xvectors import embed_utterances
    from dmha.experiment import load_exp
    from dmha.export.runtime import OnnxSpeakerModel

    exp, data = wide_exp
    direct = export_onnx(exp, winograd="off", out_dir=tmp_path / "direct")[0]
    wino, q = export_onnx(exp, winograd="all", quantize="int8", calib_data=data, out_dir=tmp_path / "wino")
    model = OnnxSpeakerModel(wino, num_threads=1, batch_frames=100000)
    tiles = winograd_tiles(EmbeddingGraph(load_exp(exp, "cpu").model, "cmn"), "all")
    assert len(tiles) == 7
    assert model.metadata[meta.WINOGRAD] and len(json.loads(model.metadata[meta.WINOGRAD])) == 7
    rng = np.random.default_rng(1)
    feats = [(rng.normal(8, 2, size=(t, 80))).astype(np.float32) for t in LENGTHS]
    got = model.embed_features(feats)  # one padded batch
    e = load_exp(exp, "cpu")
    ref = embed_utterances(e.model, feats, norm=e.norm)
    assert cosine_rows(got, ref).min() >= 0.99999
    alone = np.stack([model.embed_features([f])[0] for f in feats])
    assert cosine_rows(got, alone).min() >= 0.999999
    # the transformed weights are computed in the graph, not stored: about the direct file's size
    assert wino.stat().st_size < 1.2 * direct.stat().st_size

    import onnx

    ops = {n.op_type for n in onnx.load(str(wino)).graph.node}
    assert {"ConvTranspose", "MatMul"} <= ops
    q_model = onnx.load(str(q))
    assert "ConvTranspose" not in {n.op_type for n in q_model.graph.node}  # int8 from direct convolutions
    assert {p.key: p.value for p in q_model.metadata_props}[meta.WINOGRAD] == ""


def test_winograd_exports_at_the_lowest_opset(wide_exp, tmp_path):
    from dmha.export.runtime import OnnxSpeakerModel

    exp, _ = wide_exp
    path = export_onnx(exp, winograd="all", opset=14, out_dir=tmp_path / "o14")[0]  # checked against torch
    feats = [np.random.default_rng(3).normal(8, 2, size=(t, 80)).astype(np.float32) for t in (9, 40)]
    assert OnnxSpeakerModel(path).embed_features(feats).shape == (2, 400)


def test_bad_winograd_mode_is_one_line_and_writes_nothing(wide_exp, tmp_path):
    exp, _ = wide_exp
    with pytest.raises(UserError, match="--winograd 'fast': expected one of auto, off, all"):
        export_onnx(exp, winograd="fast", out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()
