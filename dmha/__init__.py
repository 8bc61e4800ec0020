"""dmha — Double Multi-Head Attention speaker verification as a Kaldi-style recipe.

``dmha.load_model(exp_dir)`` (see :mod:`dmha.api`) is imported on first use, so ``import dmha`` stays
light (no torch import) for tools that only need the package's small helpers.
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["load_model", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "load_model":
        from dmha.api import load_model

        return load_model
    raise AttributeError(f"module 'dmha' has no attribute {name!r}")
