"""Stage 3, training: the resumable training loop, crops and batches, checkpoints, DDP, training curves.

Reads the stage-2 lists (``data/<train>/lists``) and a YAML config; writes ``exp/<name>/``
(``config.yaml``, ``ckpt.pt``, ``best.pt``, ``train.log``, ``metrics.csv``, ``training.png``, and with
``train.keep_epoch_models`` the epoch models ``models/epoch_<N>.pt`` that :mod:`dmha.training.averaging`
averages).
Open first: :mod:`dmha.training.loop`; :mod:`dmha.training.dataset` holds the crop plan.
"""
