"""``python -m fastapi_sessions``: the ``fastapi-sessions`` command line."""

from ._cli import main

main()
