"""Shared ground of every stage: user-facing errors, atomic file I/O, device selection.

Reads and writes nothing by itself; every other subpackage may import it and it imports none of them.
Open first: :mod:`dmha.common.errors` (``UserError``, the one-line errors of the recipe).
"""
