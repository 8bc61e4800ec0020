"""Batched whole-utterance embedding: the same embedding whatever the batch, in input order."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dmha.embed.batched import embed_feature_list, length_batches
from dmha.features.fbank import normalize_features
from dmha.models import build_model
from dmha.scoring.cosine import cosine_scores


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = build_model({"channels": [4, 8, 8, 8], "in_dim": 20, "pooling": "dmha", "heads": 2,
                     "embed_dim": 16}, 3)
    # Non-trivial BatchNorm statistics, so eval mode matters.
    m.train()
    with torch.no_grad():
        for _ in range(3):
            m(torch.randn(8, 40, 20) * 3)
    return m


def test_embeddings_do_not_depend_on_batching(model):
    rng = np.random.default_rng(0)
    feats = [rng.normal(5, 2, size=(int(t), 20)).astype(np.float32) for t in rng.integers(17, 120, size=9)]
    batched = embed_feature_list(model, feats, "cpu", max_frames_per_batch=300, batch_size=4)
    alone = embed_feature_list(model, feats, "cpu", max_frames_per_batch=10**6, batch_size=1)
    assert batched.shape == (9, 16) and batched.dtype == np.float32
    np.testing.assert_allclose(batched, alone, rtol=1e-4, atol=1e-5)
    assert model.training  # the caller's mode is restored
    # Order: row i is utterance i, and equals a direct model.embed of the CMN'd utterance.
    model.eval()
    with torch.no_grad():
        direct = model.embed(normalize_features(torch.from_numpy(feats[5]))[None]).numpy()[0]
    model.train()
    np.testing.assert_allclose(batched[5], direct, rtol=1e-4, atol=1e-5)


def test_length_batches_bounds():
    lengths = [5, 100, 30, 30, 70, 500, 1]
    batches = length_batches(lengths, max_frames_per_batch=120, batch_size=3)
    assert sorted(i for b in batches for i in b) == list(range(7))
    for b in batches:
        assert len(b) <= 3
        assert len(b) == 1 or max(lengths[i] for i in b) * len(b) <= 120
    assert batches[0] == [5]  # longest first, alone (over the frame budget)


def test_cosine_scores():
    emb = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0]], dtype=np.float32)
    np.testing.assert_allclose(cosine_scores(emb, np.array([0, 0]), np.array([1, 2])), [1.0, 0.0], atol=1e-6)


class _CountingFeatures:
    """A feature list that counts its reads (stands for ScpFeatures, which reads from disk)."""

    def __init__(self, mats):
        self.mats, self.reads = mats, 0

    def __len__(self):
        return len(self.mats)

    def __getitem__(self, i):
        self.reads += 1
        return self.mats[i]


@pytest.mark.parametrize("cap", [0, 50])
def test_features_read_on_demand_give_the_same_embeddings_reading_each_once(model, cap):
    from dmha.embed.xvectors import embed_utterances

    rng = np.random.default_rng(1)
    mats = [rng.normal(5, 2, size=(int(t), 20)).astype(np.float32) for t in rng.integers(17, 120, size=7)]
    lazy = _CountingFeatures(mats)
    got = embed_utterances(model, lazy, max_chunk_frames=cap, batch_frames=300,
                           lengths=[m.shape[0] for m in mats])
    np.testing.assert_allclose(got, embed_utterances(model, mats, max_chunk_frames=cap, batch_frames=300),
                               rtol=1e-5, atol=1e-6)
    assert lazy.reads == len(mats)  # no second pass to find the lengths, no list of all matrices


def test_scp_features_hold_no_matrices_and_name_an_unreadable_utterance(tmp_path):
    import kaldiio

    from dmha.common.errors import UserError
    from dmha.training.dataset import ScpFeatures

    rng = np.random.default_rng(2)
    mats = {f"u{i}": rng.normal(size=(10 + i, 4)).astype(np.float32) for i in range(3)}
    with kaldiio.WriteHelper(f"ark,scp:{tmp_path}/f.ark,{tmp_path}/f.scp") as w:
        for k, m in mats.items():
            w(k, m)
    scp = dict(line.split(None, 1) for line in (tmp_path / "f.scp").read_text().splitlines())
    feats = ScpFeatures(list(scp), list(scp.values()))
    assert feats.lengths == [10, 11, 12] and len(feats) == 3
    assert not any(isinstance(v, np.ndarray) for v in vars(feats).values())
    np.testing.assert_array_equal(feats[1], mats["u1"])
    feats[1][0, 0] = 99.0  # a writable copy: the next read is unchanged
    assert feats[1][0, 0] == mats["u1"][0, 0]
    with pytest.raises(UserError, match="'u9'.*make_fbank"):
        ScpFeatures(["u0", "u9"], [scp["u0"], f"{tmp_path}/missing.ark:5"])
