"""How utterances are grouped into padded batches for embedding, without torch.

Why apart from :mod:`dmha.embed.batched`: the ONNX runtime (:mod:`dmha.export.runtime`) must batch the
same way without importing torch, and one grouping rule serves both.
"""

from __future__ import annotations

from collections.abc import Sequence


def length_batches(lengths: Sequence[int], max_frames_per_batch: int, batch_size: int) -> list[list[int]]:
    """Group indices, longest first, so each batch has <= batch_size items and <= max padded frames.

    An utterance longer than ``max_frames_per_batch`` gets a batch of its own.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-int(lengths[i]), i))
    batches: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        longest = int(lengths[cur[0]]) if cur else int(lengths[i])
        if cur and (len(cur) + 1 > batch_size or longest * (len(cur) + 1) > max_frames_per_batch):
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    return batches
