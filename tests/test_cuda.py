"""GPU checks of the paper-size model: a few training steps in fp32 and bf16 autocast, channels_last.

Skipped without CUDA; run on a GPU machine with ``python -m pytest -q tests/test_cuda.py``.
"""

from __future__ import annotations

import pytest
import torch

from dmha.models import build_model
from dmha.models.losses import build_loss

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

SPEAKERS = 5994


def _train_steps(dtype, channels_last: bool, steps: int = 6, heads: int = 32, head_dropout: float = 0.0):
    """Overfit one fixed batch (B=16, 350 frames, varied lengths) with Adam; return the losses."""
    torch.manual_seed(0)
    dev = torch.device("cuda")
    model = build_model({"pooling": "dmha", "heads": heads, "channels_last": channels_last,
                         "head_dropout": head_dropout}, SPEAKERS).to(dev).train()
    loss_fn = build_loss({"type": "amsoftmax"}, model.embed_dim, SPEAKERS).to(dev)
    opt = torch.optim.Adam(list(model.parameters()) + list(loss_fn.parameters()), lr=1e-4, weight_decay=1e-3)
    feats = torch.randn(16, 350, 80, device=dev)
    lengths = torch.randint(200, 351, (16,), device=dev)
    lengths[0] = 350
    labels = torch.randint(0, SPEAKERS, (16,), device=dev)
    losses = []
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            out = model(feats, lengths)
            loss, cos = loss_fn(out, labels)
        loss.backward()
        opt.step()
        assert torch.isfinite(loss) and torch.isfinite(cos).all()
        losses.append(loss.item())
    assert all(torch.isfinite(p).all() for p in model.parameters())
    return losses


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
def test_paper_model_trains_on_gpu(dtype, channels_last):
    losses = _train_steps(dtype, channels_last)
    assert losses[-1] < losses[0], losses


def test_head_dropout_on_gpu_never_nan():
    _train_steps(torch.bfloat16, False, steps=3, heads=8, head_dropout=0.99)


def test_gpu_embedding_matches_cpu():
    """The same weights give the same embedding on CPU and GPU (fp32, eval), padded batch included."""
    torch.manual_seed(1)
    model = build_model({"channels": [16, 32, 64, 128], "pooling": "dmha", "heads": 8}, 10).eval()
    feats, lengths = torch.randn(3, 120, 80), torch.tensor([120, 77, 31])
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False  # true fp32
    try:
        with torch.no_grad():
            cpu = model.embed(feats, lengths)
            gpu = model.cuda().embed(feats.cuda(), lengths.cuda()).cpu()
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
    assert torch.allclose(cpu, gpu, atol=1e-4), (cpu - gpu).abs().max()
