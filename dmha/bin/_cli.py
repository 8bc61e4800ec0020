"""Shared entry-point wrapper: user errors become one ``ERROR`` line and exit code 1."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from dmha.common.errors import UserError


def run_main(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> None:
    """Run ``main(argv)``; print a :class:`UserError` as one line (no traceback) and exit 1."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stderr)
    prog = sys.argv[0].rsplit("/", 1)[-1]
    try:
        rc = main(argv)
    except UserError as e:
        print(f"{prog}: ERROR: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(rc or 0)
