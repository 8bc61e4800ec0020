"""Per-step schedules of the training loop: the loss margin warm-up and the learning rate.

Both are pure functions of the optimizer step, so a resumed run sets exactly the value an uninterrupted
one had, with no scheduler state in the checkpoint (torch's ``lr_scheduler`` classes keep a step counter
and, for the cosine one, a recursive form whose value depends on the steps it was called at; here the
closed form is the whole schedule, and the checkpoint format stays as it is).

LR schedules (``train.lr_schedule``):

* ``plateau`` (the paper's, default): the LR stays at ``train.lr`` and is halved after ``lr_patience``
  validations without a better EER (done in the loop, it depends on validation).
* ``cosine``: a linear warm-up from 0 over ``train.lr_warmup_epochs``, then a half cosine from
  ``train.lr`` down to ``train.min_lr`` at the last step of ``train.max_epochs``. With a fixed epoch
  budget (the mini recipe on 2 CPU cores) the plateau schedule rarely decays before the budget ends, so
  the model stops at a high LR; annealing to a small LR in the budget is what fixed-budget recipes
  (WeSpeaker's warm-up + exponential decay, one-cycle schedules) do.
"""

from __future__ import annotations

import math


def margin_at(step: int, final: float, warmup_steps: float) -> float:
    """Loss margin at optimizer step ``step``: linear ramp from 0 to ``final`` over ``warmup_steps``.

    A large AM-Softmax margin from the first step can keep a small model from starting to learn
    (WeSpeaker-style margin scheduling).
    """
    if warmup_steps <= 0:
        return final
    return final * min(1.0, step / warmup_steps)


def cosine_lr(step: int, base: float, floor: float, warmup_steps: float, total_steps: float) -> float:
    """LR of optimizer step ``step`` (0-based) under the ``cosine`` schedule.

    Warm-up: ``base * (step + 1) / warmup_steps`` (never 0, so the first step learns); then
    ``floor + (base - floor) * (1 + cos(pi * progress)) / 2`` with progress running from 0 after the
    warm-up to 1 at ``total_steps - 1``; steps past the budget (a longer rerun) stay at ``floor``.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return base * min(1.0, (step + 1) / warmup_steps)
    span = max(total_steps - 1 - warmup_steps, 1.0)
    progress = min(max((step - warmup_steps) / span, 0.0), 1.0)
    return floor + (base - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
