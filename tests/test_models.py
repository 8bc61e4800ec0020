"""Tests of dmha.models: shapes, pooling maths, padding invariance, head dropout, sizes, training."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from dmha.common.errors import UserError
from dmha.models import (
    POOLINGS,
    ModelConfig,
    build_model,
    build_pooling,
    count_parameters,
    head_dropout_keep,
)
from dmha.models.losses import build_loss

torch.set_num_threads(1)

TINY = [8, 16, 16, 32]  # D = 32 * ceil(80 / 16) = 160, divisible by K = 1, 8, 16, 32
D_TINY = 160


def tiny(pooling: str, heads: int = 8, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model({"channels": TINY, "pooling": pooling, "heads": heads, **kw}, num_classes=5)


# ---------------------------------------------------------------- shapes and output sizes

@pytest.mark.parametrize("name", sorted(POOLINGS))
@pytest.mark.parametrize("heads", [1, 8, 16, 32])
def test_pooling_shapes_and_out_dims(name, heads):
    pool = build_pooling(name, D_TINY, heads=heads)
    expected = {"attention": D_TINY, "mha": D_TINY, "dmha": D_TINY // heads, "stats": 2 * D_TINY}[name]
    assert pool.get_out_dim() == expected
    h = torch.randn(3, 7, D_TINY)
    mask = torch.arange(7)[None] < torch.tensor([7, 3, 1])[:, None]
    out = pool(h, mask)
    assert out.shape == (3, expected)
    assert torch.isfinite(out).all()


def test_paper_out_dims():
    """DMHA pooled sizes of the paper's table: 640 / 320 / 160 for K = 8 / 16 / 32 with D = 5120."""
    for k, d in ((8, 640), (16, 320), (32, 160)):
        assert build_pooling("dmha", 5120, heads=k).get_out_dim() == d
    assert build_pooling("mha", 5120, heads=32).get_out_dim() == 5120


@pytest.mark.parametrize("pooling,heads", [("attention", 1), ("mha", 16), ("dmha", 1), ("dmha", 32),
                                           ("stats", 1)])
def test_model_shapes(pooling, heads):
    model = tiny(pooling, heads)
    feats = torch.randn(2, 45, 80)
    assert model.embed(feats).shape == (2, 400)
    assert model(feats, torch.tensor([45, 20])).shape == (2, 400)
    assert model.embed_dim == 400


def test_frontend_output_layout():
    """(B, T, 80) -> (B, ceil(T/16), C*5), flattened channel-major (index c*5 + f); VGG3L: 3 pools."""
    model = tiny("attention")
    fe = model.frontend
    feats = torch.randn(2, 50, 80)
    frames, lengths = fe(feats, torch.tensor([50, 33]))
    assert frames.shape == (2, math.ceil(50 / 16), 32 * 5)
    assert lengths.tolist() == [4, 3]  # ceil(ceil(ceil(ceil(33/2)/2)/2)/2) = 3
    x = feats.unsqueeze(1)
    for block in fe.blocks:  # no padding here: lengths None gives the plain CNN
        x, _ = block(x, None)
    plain, _ = fe(feats)
    assert torch.allclose(plain[1, 2, 3 * 5 + 4], x[1, 3, 2, 4])
    vgg3 = build_model({"frontend": "vgg3l", "channels": [8, 16, 32], "pooling": "stats"}, 5)
    assert vgg3.frontend.get_out_dim() == 32 * 10
    assert vgg3.frontend(torch.randn(1, 17, 80))[0].shape == (1, 3, 320)


# ---------------------------------------------------------------- pooling maths against a loop

def _naive_stage1(h, query, scale, valid):
    """Per-head softmax attention written as plain loops over heads (valid frames only)."""
    k, d_h = query.shape
    heads = []
    for j in range(k):
        hj = h[:valid, j * d_h:(j + 1) * d_h]
        w = torch.softmax(hj @ query[j] * scale, dim=0)
        heads.append(w @ hj)
    return torch.stack(heads)  # (K, d_h)


@pytest.mark.parametrize("stage1_scale", ["paper", "reference"])
@pytest.mark.parametrize("stage2_scale", [True, False])
def test_dmha_matches_definition(stage1_scale, stage2_scale):
    torch.manual_seed(1)
    k, d = 4, 24
    pool = build_pooling("dmha", d, heads=k, stage1_scale=stage1_scale, stage2_scale=stage2_scale).double()
    mha = build_pooling("mha", d, heads=k, stage1_scale=stage1_scale).double()
    mha.load_state_dict({"stage1.query": pool.stage1.query.detach()})
    h = torch.randn(2, 9, d, dtype=torch.float64)
    lengths = [9, 4]
    mask = torch.arange(9)[None] < torch.tensor(lengths)[:, None]
    s1 = 1 / math.sqrt(d // k) if stage1_scale == "paper" else 1 / math.sqrt(k)
    s2 = 1 / math.sqrt(d // k) if stage2_scale else 1.0
    got, got_mha = pool(h, mask), mha(h, mask)
    for b, n in enumerate(lengths):
        c = _naive_stage1(h[b], pool.stage1.query.detach(), s1, n)
        w2 = torch.softmax(c @ pool.head_query.detach()[:, 0] * s2, dim=0)
        assert torch.allclose(got[b], w2 @ c, atol=1e-12)
        assert torch.allclose(got_mha[b], c.reshape(-1), atol=1e-12)


def test_attention_and_stats_match_definition():
    torch.manual_seed(2)
    h = torch.randn(2, 6, 10, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0]], dtype=torch.bool)
    att = build_pooling("attention", 10).double()
    u = att.stage1.query.detach()[0]
    st = build_pooling("stats", 10)
    for b, n in enumerate((6, 2)):
        w = torch.softmax(h[b, :n] @ u, dim=0)  # unscaled, as in the paper
        assert torch.allclose(att(h, mask)[b], w @ h[b, :n])
        ref = np.concatenate([h[b, :n].numpy().mean(0), h[b, :n].numpy().std(0)])
        np.testing.assert_allclose(st(h, mask)[b].numpy(), ref, atol=1e-6)


def test_queries_are_xavier_normal():
    torch.manual_seed(3)
    pool = build_pooling("dmha", 5120, heads=8)
    std = pool.stage1.query.std().item()
    assert abs(std - math.sqrt(2 / (8 + 640))) < 0.1 * std


# ---------------------------------------------------------------- padding invariance

@pytest.mark.parametrize("pooling,heads", [("attention", 1), ("mha", 8), ("dmha", 8), ("dmha", 32),
                                           ("stats", 1)])
def test_padded_batch_equals_single(pooling, heads):
    """Each utterance of a padded batch gets the embedding it gets alone (eval, float32)."""
    model = tiny(pooling, heads).eval()
    lengths = [83, 67, 50, 17, 1]  # none a multiple of 16 except none; 1 frame works too
    torch.manual_seed(4)
    utts = [torch.randn(n, 80) for n in lengths]
    batch = torch.full((len(utts), max(lengths), 80), 7.0)  # garbage in the padding on purpose
    for i, u in enumerate(utts):
        batch[i, :len(u)] = u
    with torch.no_grad():
        together = model.embed(batch, torch.tensor(lengths))
        alone = torch.cat([model.embed(u[None]) for u in utts])
        unmasked = model.embed(batch)  # ignoring the lengths must change the short utterances
    assert torch.allclose(together, alone, rtol=0, atol=1e-5), (together - alone).abs().max()
    assert not torch.allclose(unmasked[1:], alone[1:], rtol=0, atol=1e-3)


def test_channels_last_same_embeddings_and_weights_layout():
    """channels_last (NHWC conv weights, also on CPU) changes only the layout, not the function.

    Same seed, same weights: equal embeddings (float rounding) on a padded batch, and the state dict
    loads across both layouts, so checkpoints do not depend on the setting.
    """
    plain, nhwc = tiny("dmha", 8).eval(), tiny("dmha", 8, channels_last=True).eval()
    conv = nhwc.frontend.blocks[0].conv2.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    torch.manual_seed(5)
    feats, lengths = torch.randn(3, 70, 80), torch.tensor([70, 41, 9])
    with torch.no_grad():
        a, b = plain.embed(feats, lengths), nhwc.embed(feats, lengths)
        assert torch.allclose(a, b, rtol=0, atol=1e-5), (a - b).abs().max()
        torch.manual_seed(1)
        other = build_model({"channels": TINY, "pooling": "dmha", "heads": 8}, num_classes=5).eval()
        nhwc.load_state_dict(other.state_dict())  # plain-layout checkpoint into the NHWC model
        assert conv.is_contiguous(memory_format=torch.channels_last)
        c, d = other.embed(feats, lengths), nhwc.embed(feats, lengths)
        assert not torch.allclose(a, c, atol=1e-3) and torch.allclose(c, d, rtol=0, atol=1e-5)


def test_bad_lengths_rejected():
    model = tiny("dmha")
    feats = torch.randn(2, 30, 80)
    for bad in (torch.tensor([30, 0]), torch.tensor([31, 5]), torch.tensor([30])):
        with pytest.raises(ValueError):
            model.embed(feats, bad)


# ---------------------------------------------------------------- head dropout

def test_head_dropout_never_nan_and_keeps_one_head():
    torch.manual_seed(5)
    k = 8
    pool = build_pooling("dmha", 64, heads=k, head_dropout=0.99).train()
    h = torch.randn(512, 5, 64)
    exactly_one = 0
    for _ in range(20):
        out, _, w2 = pool.weights(h)
        assert torch.isfinite(out).all()
        kept = (w2 > 0).sum(dim=1)
        assert (kept >= 1).all()
        exactly_one += int((kept == 1).sum())
    # P(exactly one kept) = P(all dropped, one rescued) + P(one survives) = 0.99^8 + 8*0.01*0.99^7 ~ 0.997
    assert exactly_one / (20 * 512) > 0.98
    pool.eval()
    _, _, w2 = pool.weights(h)
    assert (w2 > 0).all()  # no dropout at inference


def test_head_dropout_keep_statistics():
    g = torch.Generator().manual_seed(6)
    keep = head_dropout_keep(20000, 8, 0.5, torch.device("cpu"), generator=g)
    assert keep.any(dim=1).all()
    # dropped fraction: p, minus the rescued all-dropped rows (prob 0.5^8, one head each)
    expected = 0.5 - 0.5 ** 8 / 8
    assert abs((~keep).float().mean().item() - expected) < 0.01
    # rescued heads are uniform over heads: each column is kept equally often
    assert keep.float().mean(0).std().item() < 0.01
    ones = head_dropout_keep(20000, 4, 0.999999, torch.device("cpu"), generator=g)
    assert (ones.sum(dim=1) == 1).all()


def test_head_dropout_full_model_trains_without_nan():
    model = tiny("dmha", heads=32, head_dropout=0.99).train()
    out = model(torch.randn(4, 40, 80), torch.tensor([40, 33, 20, 5]))
    out.sum().backward()
    assert torch.isfinite(out).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


# ---------------------------------------------------------------- config, sizes

def test_config_errors_are_user_errors():
    with pytest.raises(UserError, match="unknown key"):
        build_model({"pooling": "dmha", "head": 8}, 5)
    with pytest.raises(UserError, match="pooling"):
        build_model({"pooling": "xvector"}, 5)
    with pytest.raises(UserError, match="heads"):
        build_model({"channels": TINY, "heads": 7}, 5)
    with pytest.raises(UserError, match="head_dropout"):
        build_model({"channels": TINY, "pooling": "mha", "head_dropout": 0.3}, 5)
    with pytest.raises(UserError, match="channels"):
        build_model({"frontend": "vgg3l", "channels": TINY}, 5)


def test_config_round_trip():
    cfg = ModelConfig.from_dict({"channels": TINY, "pooling": "mha", "heads": 16})
    again = ModelConfig.from_dict(cfg.to_dict())
    assert again == cfg
    assert ModelConfig().to_dict()["channels"] == [128, 256, 512, 1024]


def test_paper_model_size():
    """Paper config (VGG4L, DMHA K=32, 5994 speakers): ~21.5 M parameters, CNN 18.7 M, classifier 2.4 M."""
    model = build_model({"pooling": "dmha", "heads": 32}, 5994)
    loss = build_loss({"type": "amsoftmax"}, model.embed_dim, 5994)
    counts = model.parameter_counts()
    total = counts["total"] + count_parameters(loss)
    assert abs(total - 21.5e6) / 21.5e6 < 0.02
    assert abs(counts["frontend"] - 18.7e6) / 18.7e6 < 0.01
    assert count_parameters(loss) == 5994 * 400
    assert model.pooling.get_out_dim() == 160
    with torch.no_grad():  # one tiny forward pass (20 frames) is cheap even at paper width
        assert model.eval().embed(torch.randn(1, 20, 80)).shape == (1, 400)


def test_dense_variants():
    ref, paper = tiny("dmha"), tiny("dmha", dense_variant="paper")
    bns = [m for m in paper.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert len(bns) == 2 and len([m for m in ref.modules() if isinstance(m, torch.nn.BatchNorm1d)]) == 1
    emb = paper.eval().embed(torch.randn(2, 30, 80))
    assert (emb >= 0).all()  # paper variant ends in ReLU
    assert tiny("stats", embed_dim=64).embed(torch.randn(3, 30, 80)).shape == (3, 64)


# ---------------------------------------------------------------- it learns

def test_tiny_model_learns_toy_problem():
    """Four 'speakers' whose features differ by a per-class mel profile: Adam lowers the loss."""
    torch.manual_seed(7)
    model = build_model({"channels": [4, 8, 8, 16], "pooling": "dmha", "heads": 4, "embed_dim": 32}, 4)
    loss_fn = build_loss({"type": "amsoftmax"}, 32, 4)
    profiles = torch.randn(4, 80)
    labels = torch.arange(4).repeat(4)
    feats = profiles[labels][:, None, :] + 0.5 * torch.randn(16, 40, 80)
    lengths = torch.randint(20, 41, (16,))
    params = list(model.parameters()) + list(loss_fn.parameters())
    opt = torch.optim.Adam(params, lr=3e-3)
    losses = []
    for _ in range(25):
        opt.zero_grad()
        loss, cos = loss_fn(model(feats, lengths), labels)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
    assert (cos.argmax(1) == labels).float().mean() > 0.5


def test_recipe_configs_build():
    """Every recipe config's model:/loss: sections are valid (a typo fails here, not mid-recipe)."""
    confs = sorted(Path(__file__).resolve().parents[1].glob("egs/*/conf/*.yaml"))
    checked = 0
    for path in confs:
        cfg = yaml.safe_load(path.read_text()) or {}
        if "model" not in cfg:
            continue
        model = build_model(cfg["model"], 50)
        build_loss(cfg.get("loss"), model.embed_dim, 50)
        checked += 1
    assert checked >= 4, [str(p) for p in confs]
