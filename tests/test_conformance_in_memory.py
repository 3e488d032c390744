"""The conformance kit against the in-memory backend (plain, and with the fused read), on an injected clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import ClassVar

import pytest_asyncio

from conftest import ReadAndTouchBackend
from fastapi_sessions import ManualClock, SessionBackend, SessionRecord, utc_now
from fastapi_sessions.backends.in_memory import InMemoryBackend
from fastapi_sessions.testing import BackendConformance, Capability


class TestInMemoryConformance(BackendConformance):
    capabilities = frozenset(
        {Capability.OUT_OF_BAND_READ, Capability.IMMEDIATE_PURGE, Capability.EXACT_PURGE_COUNT}
    )
    not_applicable: ClassVar[Mapping[Capability, str]] = {
        Capability.UNREACHABLE_SERVER: "an in-process store has no server to lose",
    }
    strict = True

    @pytest_asyncio.fixture(loop_scope="function")
    async def backend(self) -> AsyncIterator[SessionBackend]:
        self.clock = ManualClock(utc_now())
        async with InMemoryBackend(clock=self.clock) as backend:
            yield backend

    def now(self) -> datetime:
        return self.clock()

    async def advance(self, backend: SessionBackend, seconds: float) -> None:
        self.clock.advance(seconds=seconds)

    async def stored_record(self, backend: SessionBackend, key: str) -> SessionRecord | None:
        assert isinstance(backend, InMemoryBackend)
        return backend._records.get(key)


class TestReadAndTouchReferenceConformance(TestInMemoryConformance):
    """The reference ``read_and_touch`` (tests/conftest.py): the kit tests it because the method is there."""

    @pytest_asyncio.fixture(loop_scope="function")
    async def backend(self) -> AsyncIterator[SessionBackend]:
        self.clock = ManualClock(utc_now())
        async with ReadAndTouchBackend(clock=self.clock) as backend:
            yield backend
