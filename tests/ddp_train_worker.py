"""torchrun worker for tests/test_train_ddp.py: train, then write this rank's weights hash to a file.

Each rank hashes its own in-memory parameters and buffers after training (not the checkpoint, which
only rank 0 writes), so the test sees whether the ranks really stayed in sync.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import torch

from dmha.config import load_config
from dmha.training.distributed import finish, init_distributed
from dmha.training.loop import train


def weights_hash(module: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def main() -> None:
    config, lists, exp, out_dir = sys.argv[1:5]
    info = init_distributed("cpu")
    out = train(load_config(config), lists, exp, info)
    Path(out_dir, f"hash.{info.rank}").write_text(f"{weights_hash(out.net)} {out.state['global_step']}\n")
    finish(info, 0)


if __name__ == "__main__":
    main()
