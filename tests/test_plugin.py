"""The example third-party distribution (examples/plugin, installed as ``fsessions-litestore``)."""

from __future__ import annotations

import asyncio
from importlib.metadata import distribution, entry_points
from pathlib import Path
from typing import Any

import fsessions_litestore
import pytest
from fastapi import Request

from conftest import SECRET, app_with, client_for
from fastapi_sessions import ConfigurationError, ManualClock, SessionManager, SessionRecord, utc_now
from fastapi_sessions._core.registry import ENTRY_POINT_GROUP
from fastapi_sessions._core.tokens import new_token, storage_key
from fastapi_sessions.backends import available_backends, from_url

ROOT = Path(__file__).resolve().parent.parent


def test_the_distribution_declares_the_entry_point() -> None:
    (ep,) = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == "litestore"]
    assert ep.value == "fsessions_litestore:from_url"
    assert ep.dist is not None and ep.dist.name == "fsessions-litestore"
    assert distribution("fsessions-litestore").version == "0.1.0"


def test_available_backends_lists_it_with_its_distribution() -> None:
    listed = available_backends()
    litestore = listed["litestore"]
    assert (litestore.target, litestore.distribution) == ("fsessions_litestore:from_url", "fsessions-litestore")
    assert litestore.installed is None  # a third party's driver cannot be known without importing it
    assert str(litestore) == "litestore:// fsessions_litestore:from_url (fsessions-litestore): driver not checked"
    assert listed["memory"].distribution == "fastapi-sessions"


@pytest.mark.asyncio
async def test_from_url_resolves_through_the_entry_point() -> None:
    async with from_url("litestore://") as backend:
        assert type(backend) is fsessions_litestore.LiteStoreBackend
        assert backend.path == ":memory:"


@pytest.mark.asyncio
async def test_a_file_url_stores_in_that_file(tmp_path: Path) -> None:
    path = tmp_path / "sessions.db"
    record = SessionRecord(storage_key(new_token()), b'{"a":1}', "alice", utc_now(), utc_now().replace(year=2100), 1)
    async with from_url(f"litestore://{path}") as backend:
        assert backend.path == str(path)
        await backend.create(record)
    assert path.exists()
    async with from_url(f"litestore://{path}") as reopened:
        got = await reopened.read(record.key)
    assert got is not None and got.payload == b'{"a":1}' and got.user_id == "alice"


def test_plugin_url_errors_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError):
        from_url("litestore://?journal=wal")
    with pytest.raises(ConfigurationError):  # an option its factory does not take
        from_url("litestore://", journal="wal")


def test_backend_options_reach_the_plugin_factory() -> None:
    clock = ManualClock()
    backend = from_url("litestore://", clock=clock)
    assert isinstance(backend, fsessions_litestore.LiteStoreBackend) and backend.clock is clock


def test_the_guide_shows_the_plugin_suite_verbatim() -> None:
    """The guide's test example is examples/plugin/tests/test_conformance.py, which CI runs and type-checks."""
    guide = (ROOT / "docs" / "writing-a-backend.md").read_text()
    suite = (ROOT / "examples" / "plugin" / "tests" / "test_conformance.py").read_text()
    assert f"```python\n{suite}```" in guide


def test_a_manager_on_the_plugin_serves_requests() -> None:
    manager = SessionManager.from_url("litestore://", secret_key=SECRET)
    assert type(manager.backend) is fsessions_litestore.LiteStoreBackend
    app = app_with(manager)

    @app.post("/login")
    async def login(request: Request) -> dict[str, bool]:
        request.session["cart"] = ["apple"]
        request.session.user_id = "alice"
        return {"ok": True}

    @app.get("/me")
    async def me(request: Request) -> dict[str, Any]:
        return {"user": request.session.user_id, "cart": request.session.get("cart")}

    try:
        with client_for(app) as client:
            assert client.get("/me").json() == {"user": None, "cart": None}
            response = client.post("/login")
            assert response.status_code == 200 and "session" in response.cookies
            assert client.get("/me").json() == {"user": "alice", "cart": ["apple"]}
            sessions = asyncio.run(manager.list_sessions("alice"))
            assert len(sessions) == 1
            assert asyncio.run(manager.revoke_user("alice")) == 1
            assert client.get("/me").json() == {"user": None, "cart": None}
    finally:
        asyncio.run(manager.aclose())
