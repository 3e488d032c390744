"""The manager's save errors carry their context: the storage call and the record, never the token."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest

from conftest import SECRET
from fastapi_sessions import ManualClock, SessionConflict, SessionManager, SessionRecord
from fastapi_sessions._core.tokens import storage_key
from fastapi_sessions.backends.in_memory import InMemoryBackend
from fastapi_sessions.frontends import SessionFrontend


class AlwaysLosing(InMemoryBackend):
    """Every compare-and-set loses, as if another request always saved first."""

    updates = 0

    async def update(self, record: SessionRecord, expected_version: int, *, now: datetime | None = None) -> int:
        self.updates += 1
        raise SessionConflict(key=record.key, operation="update")


def token_of(manager: SessionManager, session_id: str) -> str:
    token = manager.frontend.unsign(session_id)
    assert token is not None
    return token


@pytest.mark.asyncio
async def test_a_same_key_conflict_names_the_update_and_the_record(
    make_manager: Callable[..., SessionManager],
) -> None:
    manager = make_manager(conflict_policy="raise")
    token = token_of(manager, await manager.create_session({"x": "0"}))
    first, second = await manager.load(token), await manager.load(token)
    first["x"] = "A"
    await manager.commit(first)
    second["x"] = "B"

    with pytest.raises(SessionConflict, match="'x' was changed by a concurrent request") as caught:
        await manager.commit(second)

    assert caught.value.operation == "update"
    assert caught.value.key_prefix == storage_key(token)[:8]
    assert token[:8] not in str(caught.value)


@pytest.mark.asyncio
@pytest.mark.parametrize(("change", "message"), [
    (lambda session: session.__setitem__("x", "1"), "save lost 3 compare-and-set rounds"),
    (lambda session: session.pop("x"), "save lost 3 compare-and-set rounds"),  # emptied: it would end
    (lambda session: session.invalidate(), "logout lost 3 compare-and-set rounds"),
])
async def test_a_save_gives_up_after_max_save_attempts_rounds(
    change: Callable[..., object], message: str, clock: ManualClock
) -> None:
    backend = AlwaysLosing(clock=clock)
    manager = SessionManager(backend, SessionFrontend(secret_key=SECRET), clock=clock, max_save_attempts=3)
    token = token_of(manager, await manager.create_session({"x": "0"}))
    session = await manager.load(token)
    change(session)

    with pytest.raises(SessionConflict, match=message) as caught:
        await manager.commit(session)

    assert backend.updates == 3
    assert caught.value.operation == "update"
    assert caught.value.key_prefix == storage_key(token)[:8]
