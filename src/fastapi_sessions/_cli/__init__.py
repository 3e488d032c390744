"""The ``fastapi-sessions`` command (``pip install "fastapi-sessions[cli]"``): purge, list, revoke, stats, sql.

Built on Typer and Rich, which only the ``cli`` extra installs: without them
the command says which extra to install instead of failing on an import.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]

#: What the ``cli`` extra brings (click comes with typer).
_CLI_MODULES = ("typer", "rich", "click")


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); exits with its status."""
    try:
        from ._app import app
    except ModuleNotFoundError as exc:
        if exc.name not in _CLI_MODULES:
            raise
        print(f'fastapi-sessions: the command line needs the "cli" extra ({exc.name} is not installed): '
              f'pip install "fastapi-sessions[cli]"', file=sys.stderr)
        raise SystemExit(1) from None
    app(args=list(argv) if argv is not None else None, prog_name="fastapi-sessions")
