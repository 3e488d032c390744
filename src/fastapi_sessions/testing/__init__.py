"""Testing tools: the conformance kit for backend authors, test-server resolution, and app-test helpers.

Importing this module needs pytest and pytest-asyncio: ``pip install "fastapi-sessions[testing]"``.
"""

from __future__ import annotations

try:
    import pytest
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

# Installed packages are not assert-rewritten by pytest: without this, a kit failure would be a bare
# AssertionError. It must come before the kit's modules are imported (pytest's documented way).
pytest.register_assert_rewrite(
    "fastapi_sessions.testing._base",
    "fastapi_sessions.testing._clock",
    "fastapi_sessions.testing._concurrency",
    "fastapi_sessions.testing._create_read",
    "fastapi_sessions.testing._failures",
    "fastapi_sessions.testing._fused",
    "fastapi_sessions.testing._maintenance",
    "fastapi_sessions.testing._out_of_band",
    "fastapi_sessions.testing._payloads",
    "fastapi_sessions.testing._purge",
    "fastapi_sessions.testing._touch_delete",
    "fastapi_sessions.testing._update",
    "fastapi_sessions.testing._user_index",
    "fastapi_sessions.testing.conformance",
)

from .apps import clock_fixture, controlled_clock, login  # noqa: E402
from .conformance import BackendConformance, Capability  # noqa: E402
from .servers import server_url  # noqa: E402

__all__ = ["BackendConformance", "Capability", "clock_fixture", "controlled_clock", "login", "server_url"]
