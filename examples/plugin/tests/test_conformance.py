"""The plugin's whole test suite: the fastapi-sessions conformance kit."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from fastapi_sessions import SessionBackend
from fastapi_sessions.backends import from_url
from fastapi_sessions.testing import BackendConformance


class TestLiteStore(BackendConformance):
    @pytest_asyncio.fixture
    async def backend(self, tmp_path: Path) -> AsyncIterator[SessionBackend]:
        # Resolved by URL, exactly as an application would: proves the entry point works.
        async with from_url(f"litestore://{tmp_path}/sessions.db") as backend:
            yield backend
