"""Tests of dmha.models.losses: AM-Softmax and AAM against a numpy hand computation, config checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dmha.common.errors import UserError
from dmha.models.losses import AAMSoftmax, AMSoftmax, build_loss

torch.set_num_threads(1)


def _numpy_loss(x, w, labels, s, m, kind):
    """Cross entropy of margined cosine logits, written out in numpy (float64)."""
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    wn = w / np.linalg.norm(w, axis=1, keepdims=True)
    cos = xn @ wn.T
    logits = s * cos.copy()
    rows = np.arange(len(labels))
    if kind == "amsoftmax":
        logits[rows, labels] = s * (cos[rows, labels] - m)
    else:
        theta = np.arccos(np.clip(cos[rows, labels], -1, 1))
        fallback = cos[rows, labels] - m * math.sin(math.pi - m)  # theta + m past pi
        target = np.where(theta + m <= math.pi, np.cos(theta + m), fallback)
        logits[rows, labels] = s * target
    mx = logits.max(1, keepdims=True)
    logsum = np.log(np.exp(logits - mx).sum(1)) + mx[:, 0]
    return float(np.mean(logsum - logits[rows, labels])), cos


@pytest.mark.parametrize("kind,margin", [("amsoftmax", 0.4), ("aam", 0.2), ("aam", 0.5)])
def test_loss_matches_numpy(kind, margin):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 12))
    w = rng.normal(size=(5, 12))
    labels = np.array([0, 1, 2, 3, 4, 0])
    x[5] = -w[0]  # theta = pi for the target: exercises the AAM fallback branch
    loss_fn = build_loss({"type": kind, "scale": 30, "margin": margin}, 12, 5)
    with torch.no_grad():
        loss_fn.weight.copy_(torch.from_numpy(w))
    loss, cos = loss_fn(torch.from_numpy(x).float(), torch.from_numpy(labels))
    want_loss, want_cos = _numpy_loss(x, w, labels, 30.0, margin, kind)
    np.testing.assert_allclose(cos.numpy(), want_cos, atol=1e-5)
    assert loss.item() == pytest.approx(want_loss, rel=1e-5)


def test_defaults_and_types():
    am = build_loss(None, 400, 10)
    assert isinstance(am, AMSoftmax) and am.scale == 30 and am.margin == 0.4
    assert am.weight.shape == (10, 400)
    aam = build_loss({"type": "aam"}, 400, 10)
    assert isinstance(aam, AAMSoftmax) and aam.margin == 0.2


def test_accuracy_uses_unmargined_cosine():
    """Cosines returned are margin-free: a margin changes the loss, never the returned cosines."""
    torch.manual_seed(0)
    x, labels = torch.randn(8, 16), torch.randint(0, 4, (8,))
    a = build_loss({"margin": 0.0}, 16, 4)
    b = build_loss({"margin": 0.4}, 16, 4)
    b.load_state_dict(a.state_dict())
    la, ca = a(x, labels)
    lb, cb = b(x, labels)
    assert torch.equal(ca, cb)
    assert lb.item() > la.item()
    assert ca.abs().max() <= 1.0 + 1e-6


def test_gradients_reach_inputs_and_weights():
    x = torch.randn(4, 8, requires_grad=True)
    loss_fn = build_loss({"type": "aam"}, 8, 3)
    loss, _ = loss_fn(x, torch.tensor([0, 1, 2, 0]))
    loss.backward()
    assert x.grad.abs().sum() > 0 and loss_fn.weight.grad.abs().sum() > 0


def test_float32_under_bf16_autocast():
    x = torch.randn(4, 8)
    loss_fn = build_loss({}, 8, 3)
    want, _ = loss_fn(x, torch.tensor([0, 1, 2, 0]))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, cos = loss_fn(x.bfloat16(), torch.tensor([0, 1, 2, 0]))
    assert cos.dtype == torch.float32 and got.dtype == torch.float32
    assert got.item() == pytest.approx(want.item(), rel=2e-2)


@pytest.mark.parametrize("cfg,match", [({"type": "softmax"}, "type"), ({"scale": 0}, "scale"),
                                       ({"margin": -0.1}, "margin"), ({"marign": 0.2}, "unknown key"),
                                       ({"type": "aam", "margin": 2.0}, "margin")])
def test_bad_config(cfg, match):
    with pytest.raises(UserError, match=match):
        build_loss(cfg, 8, 3)
