"""Stage 3, training: the resumable training loop, crops and batches, checkpoints, DDP, training curves.

Reads the stage-2 lists (``data/<train>/lists``) and a YAML config; writes ``exp/<name>/``
(``config.yaml``, ``ckpt.pt``, ``best.pt``, ``train.log``, ``metrics.csv``, ``training.png``).
Open first: :mod:`dmha.training.loop`; :mod:`dmha.training.dataset` holds the crop plan.
"""
