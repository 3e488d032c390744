"""Logging fit for an outage: one warning when the store goes, one when it is back, counted in between.

The store is the in-memory backend behind a switch that makes its calls raise
``BackendUnavailable``: this is about what the log says, not about a server.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import httpx2 as httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from conftest import SECRET, app_with
from fastapi_sessions import BackendUnavailable, SessionManager
from fastapi_sessions._core.outage import OutageLog
from fastapi_sessions.backends.in_memory import InMemoryBackend
from fastapi_sessions.frontends import SessionFrontend

CAUSE = "connection refused by redis://app:hunter2@cache:6379/0"


class Switchable(InMemoryBackend):
    """An in-memory store whose reads and/or writes fail while switched off."""

    def __init__(self) -> None:
        super().__init__()
        self.reads_fail = self.writes_fail = False

    def down(self, value: bool = True) -> None:
        self.reads_fail = self.writes_fail = value

    def _check(self, failing: bool) -> None:
        if failing:
            try:
                raise ConnectionRefusedError(111, "Connection refused")
            except ConnectionRefusedError as exc:
                raise BackendUnavailable(CAUSE) from exc

    async def read(self, key: str, **kw: Any) -> Any:
        self._check(self.reads_fail)
        return await super().read(key, **kw)

    async def create(self, record: Any, **kw: Any) -> None:
        self._check(self.writes_fail)
        await super().create(record, **kw)

    async def update(self, record: Any, expected_version: int, **kw: Any) -> int:
        self._check(self.writes_fail)
        return await super().update(record, expected_version, **kw)

    async def touch(self, key: str, expires_at: Any, **kw: Any) -> bool:
        self._check(self.writes_fail)
        return await super().touch(key, expires_at, **kw)


def counter_app(manager: SessionManager) -> FastAPI:
    app = app_with(manager)

    @app.post("/count")
    async def count(request: Request) -> dict[str, int]:
        request.session["n"] = request.session.get("n", 0) + 1
        return {"n": request.session["n"]}

    @app.get("/anonymous")
    async def anonymous() -> dict[str, bool]:
        return {"ok": True}

    return app


@pytest.fixture
def store() -> Switchable:
    return Switchable()


@pytest.fixture
def manager(store: Switchable) -> SessionManager:
    return SessionManager(store, SessionFrontend(secret_key=SECRET))


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_an_outage_logs_once_when_it_starts_and_once_when_it_ends(
    manager: SessionManager, store: Switchable, caplog: pytest.LogCaptureFixture
) -> None:
    client = TestClient(counter_app(manager), base_url="https://testserver")
    assert client.post("/count").status_code == 200
    cookie = client.cookies["session"]
    store.down()
    with caplog.at_level(logging.INFO, logger="fastapi_sessions"):
        statuses = {client.post("/count").status_code for _ in range(300)}
        anonymous = TestClient(client.app, base_url="https://testserver")
        assert [anonymous.get("/anonymous").status_code for _ in range(3)] == [200] * 3  # no store call: no news
        store.down(False)
        assert client.post("/count").json() == {"n": 2}
        assert client.post("/count").status_code == 200
    assert statuses == {503}
    start, end = warnings_of(caplog)
    assert start.getMessage() == (
        "session store unavailable (loading a session): BackendUnavailable: connection refused by "
        "redis://app:***@cache:6379/0 (from builtins.ConnectionRefusedError); requests get 503 until it "
        "answers again"
    )
    assert end.getMessage().startswith("session store is back after ")
    assert end.getMessage().endswith("s; 300 requests failed with 503 meanwhile")
    assert all(r.exc_info is None for r in caplog.records)  # no traceback at INFO and above
    assert "hunter2" not in caplog.text and cookie not in caplog.text and SECRET not in caplog.text


def test_each_failed_request_leaves_a_debug_detail(
    manager: SessionManager, store: Switchable, caplog: pytest.LogCaptureFixture
) -> None:
    client = TestClient(counter_app(manager), base_url="https://testserver")
    store.down()
    with caplog.at_level(logging.DEBUG, logger="fastapi_sessions"):
        for _ in range(5):
            assert client.post("/count").status_code == 503  # no cookie: the save fails
    details = [r for r in caplog.records if r.levelno == logging.DEBUG]
    assert len(details) == 5
    assert all(r.exc_info is not None and r.getMessage() == "session store unavailable while saving a session"
               for r in details)
    assert len(warnings_of(caplog)) == 1


def test_reads_that_work_while_saves_fail_do_not_flap(
    manager: SessionManager, store: Switchable, caplog: pytest.LogCaptureFixture
) -> None:
    client = TestClient(counter_app(manager), base_url="https://testserver")
    client.post("/count")
    store.writes_fail = True
    with caplog.at_level(logging.INFO, logger="fastapi_sessions"):
        assert {client.post("/count").status_code for _ in range(50)} == {503}
    [start] = warnings_of(caplog)
    assert "(saving a session)" in start.getMessage()


def test_a_long_outage_is_recalled_once_a_minute() -> None:
    now = [0.0]
    log = OutageLog(clock=lambda: now[0])
    error = BackendUnavailable("timeout")
    logger = logging.getLogger("fastapi_sessions")
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        for _ in range(100):
            log.failed(error, "loading a session")
            now[0] += 1.5  # 150 s of failures
        log.recovered()
        log.recovered()  # the second sees nothing to report
    finally:
        logger.removeHandler(handler)
    messages = [r.getMessage() for r in records]
    assert messages[0].startswith("session store unavailable (loading a session): BackendUnavailable: timeout")
    assert messages[1:3] == [
        "session store still unavailable after 60 s: 41 requests failed so far; last: BackendUnavailable: timeout",
        "session store still unavailable after 120 s: 81 requests failed so far; last: BackendUnavailable: timeout",
    ]
    assert messages[3] == "session store is back after 150.0 s; 100 requests failed with 503 meanwhile"
    assert len(messages) == 4


@pytest.mark.asyncio
async def test_concurrent_requests_report_one_outage(
    manager: SessionManager, store: Switchable, caplog: pytest.LogCaptureFixture
) -> None:
    transport = httpx.ASGITransport(app=counter_app(manager))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        cookies = []
        for _ in range(20):
            cookies.append((await client.post("/count")).cookies["session"])
            client.cookies.clear()
        with caplog.at_level(logging.INFO, logger="fastapi_sessions"):
            store.down()
            down = await asyncio.gather(*[client.post("/count", headers={"cookie": f"session={c}"})
                                          for c in cookies * 10])
            store.down(False)
            up = await asyncio.gather(*[client.post("/count", headers={"cookie": f"session={c}"})
                                        for c in cookies])
    assert {r.status_code for r in down} == {503} and {r.status_code for r in up} == {200}
    start, end = warnings_of(caplog)
    assert start.getMessage().startswith("session store unavailable (loading a session)")
    assert "200 requests failed" in end.getMessage()


def test_the_count_is_exact_across_threads() -> None:
    log = OutageLog()
    error = BackendUnavailable("down")

    def fail() -> None:
        for _ in range(500):
            log.failed(error, "loading a session")

    threads = [threading.Thread(target=fail) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert log.down and log._failed == 4000


# -- secret keys -------------------------------------------------------------------------------


@pytest.mark.parametrize(("keys", "expected"), [
    ("tiny", "1 of 1 secret keys are shorter than 32 bytes"),
    (["k" * 32, "old"], "1 of 2 secret keys are shorter than 32 bytes"),
    ([b"\x00" * 31], "1 of 1 secret keys are shorter than 32 bytes"),
])
def test_a_short_secret_key_is_warned_about_once(
    caplog: pytest.LogCaptureFixture, keys: Any, expected: str
) -> None:
    with caplog.at_level(logging.WARNING, logger="fastapi_sessions"):
        frontend = SessionFrontend(secret_key=keys)
        frontend.unsign(frontend.sign("token"))
    [record] = caplog.records
    assert record.getMessage().startswith(expected)
    assert "old" not in record.getMessage() and "tiny" not in record.getMessage()


def test_a_32_byte_key_is_not_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="fastapi_sessions"):
        SessionFrontend(secret_key=SECRET)
        SessionManager.from_url("memory://")  # its generated key is long enough
    assert caplog.records == []
