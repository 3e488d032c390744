"""Testing tools for backend authors: the conformance kit and test-server resolution.

Importing this module needs pytest and pytest-asyncio: ``pip install "fastapi-sessions[testing]"``.
"""

from __future__ import annotations

try:
    import pytest  # noqa: F401
    import pytest_asyncio  # noqa: F401
except ModuleNotFoundError as exc:
    if exc.name not in ("pytest", "pytest_asyncio"):
        raise  # something pytest itself needs: its own message says what
    # Still a ModuleNotFoundError (an ImportError), so `except ImportError` keeps working.
    raise ModuleNotFoundError(
        f"fastapi_sessions.testing (the backend conformance kit) needs pytest and pytest-asyncio, and "
        f'{exc.name} is not installed: pip install "fastapi-sessions[testing]"',
        name=exc.name,
    ) from exc

from .conformance import BackendConformance, Capability
from .servers import server_url

__all__ = ["BackendConformance", "Capability", "server_url"]
