"""Failures and lifecycle: an unreachable server is ``BackendUnavailable`` everywhere, and ``aclose`` twice is fine.

With ``UNREACHABLE_SERVER``, every method (``read_and_touch``, ``purge_expired_batch``
and ``count_records`` too, when the backend has them) must raise ``BackendUnavailable``: never a driver's exception,
never a silent success.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest

from .._core.contract import SessionBackend, SupportsBatchedPurge, SupportsReadAndTouch, SupportsRecordCounts
from ..errors import BackendError, BackendUnavailable
from ._base import Capability, KitBase, in_own_loop
from ._rules import broke, show

__all__ = ["FailureTests"]


class FailureTests(KitBase):
    @in_own_loop
    async def test_unreachable_server_raises_backend_unavailable(self, unreachable_backend: SessionBackend) -> None:
        # Requested as an argument, so an async fixture is set up before this test's loop runs
        # (getfixturevalue() from inside a running loop cannot set one up).
        self.require(Capability.UNREACHABLE_SERVER)
        backend = unreachable_backend
        record = self.record(user_id=self.new_user())
        calls: dict[str, Callable[[], Awaitable[object]]] = {  # built one at a time: none is left un-awaited
            "create": lambda: backend.create(record, now=self.now()),
            "read": lambda: backend.read(record.key, now=self.now()),
            "update": lambda: backend.update(record, 1, now=self.now()),
            "touch": lambda: backend.touch(record.key, record.expires_at, now=self.now()),
            "delete": lambda: backend.delete(record.key, now=self.now()),
            "list_by_user": lambda: backend.list_by_user("u", now=self.now()),
            "delete_by_user": lambda: backend.delete_by_user("u", now=self.now()),
            "purge_expired": lambda: backend.purge_expired(now=self.now()),
        }
        if isinstance(backend, SupportsReadAndTouch):  # optional, but the manager calls it on every request
            fused = backend
            calls["read_and_touch"] = lambda: fused.read_and_touch(
                record.key, now=self.now(), idle_timeout=timedelta(hours=1), absolute_timeout=timedelta(hours=8),
                refresh_interval=timedelta(minutes=1))
            self.report_optional("read_and_touch errors", "tested (BackendUnavailable when unreachable)")
        if isinstance(backend, SupportsBatchedPurge):
            batched = backend
            calls["purge_expired_batch"] = lambda: batched.purge_expired_batch(10, now=self.now())
        if isinstance(backend, SupportsRecordCounts):
            counted = backend
            calls["count_records"] = lambda: counted.count_records(now=self.now())
        for name, call in calls.items():
            try:
                result = await call()
            except BackendUnavailable as exc:
                assert isinstance(exc, BackendError)
            except Exception as exc:  # what leaked is the finding
                pytest.fail(broke("errors-mapped", f"{name}() raised {type(exc).__module__}.{type(exc).__name__}: "
                                                   f"{exc}"))
            else:
                pytest.fail(broke("errors-mapped", f"{name}() returned {show(result)}"))

    @in_own_loop
    async def test_aclose_is_idempotent(self, backend: SessionBackend) -> None:
        await backend.aclose()
        await backend.aclose()
