"""Settings from the environment (pydantic-settings) and ``SessionManager.from_settings``."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import Request
from pydantic import SecretStr, ValidationError

from conftest import SECRET, app_with, client_for
from fastapi_sessions import ConfigurationError, SessionManager, SessionSettings
from fastapi_sessions._core import settings as settings_module
from fastapi_sessions.backends import register_backend, unregister_backend
from fastapi_sessions.backends.in_memory import InMemoryBackend
from fastapi_sessions.frontends import SessionFrontend

PASSWORD = "hunter2"
PREFIX = "FASTAPI_SESSIONS_"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No FASTAPI_SESSIONS_* variable from outside, and no stray .env file."""
    for name in list(os.environ):
        if name.upper().startswith(PREFIX):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    def set_env(**variables: str) -> None:
        for name, value in variables.items():
            monkeypatch.setenv(PREFIX + name.upper(), value)

    return set_env


@pytest.fixture
def fake_redis() -> Iterator[list[str]]:
    """A ``redis://`` scheme served by an in-memory backend, registered for this test only."""
    urls: list[str] = []

    def factory(url: str) -> InMemoryBackend:
        urls.append(url)
        return InMemoryBackend()

    register_backend("redis", factory)
    yield urls
    unregister_backend("redis")


def exchange(manager: SessionManager) -> tuple[str, dict[str, Any]]:
    """Write a session value, read it back; return the first Set-Cookie header and the read."""
    app = app_with(manager)

    @app.post("/set")
    async def set_value(request: Request) -> dict[str, bool]:
        request.session["n"] = 7
        return {"ok": True}

    @app.get("/get")
    async def get_value(request: Request) -> dict[str, Any]:
        return {"n": request.session.get("n")}

    with client_for(app) as client:
        response = client.post("/set")
        assert response.status_code == 200
        set_cookie = response.headers["set-cookie"]
        return set_cookie, client.get("/get").json()


# -- reading the environment -----------------------------------------------------------------


def test_defaults_need_no_environment() -> None:
    settings = SessionSettings()
    assert settings.url == "memory://"
    assert settings.secret_key is None and settings.secret_keys == []
    assert settings.idle_timeout == timedelta(minutes=30)
    assert settings.absolute_timeout == timedelta(hours=8)
    assert (settings.cookie_name, settings.cookie_secure, settings.cookie_samesite) == ("session", True, "lax")
    assert (settings.cookie_domain, settings.cookie_path) == (None, "/")
    assert (settings.cookie_partitioned, settings.cookie_persistent) == (False, True)
    assert settings.keys() == []


def test_every_variable_is_read(env: Callable[..., None]) -> None:
    env(
        url="redis://cache:6379/2",
        secret_key="signing-key",
        secret_keys='["old-1", "old-2"]',
        idle_timeout="600",
        absolute_timeout="PT2H",
        cookie_name="__Host-sid",
        cookie_secure="true",
        cookie_samesite="strict",
        cookie_path="/",
        cookie_partitioned="true",
        cookie_persistent="false",
    )
    settings = SessionSettings()
    assert settings.url == "redis://cache:6379/2"
    assert settings.keys() == ["signing-key", "old-1", "old-2"]
    assert settings.idle_timeout == timedelta(minutes=10)
    assert settings.absolute_timeout == timedelta(hours=2)
    assert settings.cookie_name == "__Host-sid"
    assert settings.cookie_samesite == "strict"
    assert settings.cookie_partitioned is True and settings.cookie_persistent is False


def test_cookie_domain_and_secure(env: Callable[..., None]) -> None:
    env(cookie_domain="example.com", cookie_secure="false", cookie_path="/app")
    settings = SessionSettings()
    assert (settings.cookie_domain, settings.cookie_secure, settings.cookie_path) == ("example.com", False, "/app")


def test_documented_variables_are_exactly_the_fields() -> None:
    documented = set(re.findall(r"``(FASTAPI_SESSIONS_[A-Z_]+)``", settings_module.__doc__ or ""))
    fields = {PREFIX + name.upper() for name in SessionSettings.model_fields}
    assert documented == fields


def test_one_url_is_enough(env: Callable[..., None]) -> None:
    env(url="memory://?max_entries=10")
    manager = SessionManager.from_settings()
    assert isinstance(manager.backend, InMemoryBackend)
    assert manager.backend.max_entries == 10


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("90", timedelta(seconds=90)),
        ("1.5", timedelta(seconds=1.5)),
        (" 120 ", timedelta(minutes=2)),
        ("PT15M", timedelta(minutes=15)),
        ("P1DT2H", timedelta(days=1, hours=2)),
        ("PT0.5S", timedelta(milliseconds=500)),
    ],
)
def test_durations_are_seconds_or_iso_8601(env: Callable[..., None], raw: str, expected: timedelta) -> None:
    env(idle_timeout=raw, absolute_timeout=raw)
    settings = SessionSettings()
    assert settings.idle_timeout == expected
    assert settings.absolute_timeout == expected


@pytest.mark.parametrize("raw", ["soon", "inf", "nan", "1e300", "-inf", "15 minutes"])
def test_a_bad_duration_is_a_validation_error(env: Callable[..., None], raw: str) -> None:
    env(idle_timeout=raw)
    with pytest.raises(ValidationError, match="idle_timeout"):
        SessionSettings()


def test_durations_accept_python_values() -> None:
    settings = SessionSettings(idle_timeout=60, absolute_timeout=timedelta(hours=1))
    assert settings.idle_timeout == timedelta(minutes=1)
    assert settings.absolute_timeout == timedelta(hours=1)


def test_a_bad_samesite_is_a_validation_error(env: Callable[..., None]) -> None:
    env(cookie_samesite="sometimes")
    with pytest.raises(ValidationError):
        SessionSettings()


def test_secret_keys_must_be_a_json_list(env: Callable[..., None]) -> None:
    env(secret_keys="not json")
    with pytest.raises(ValueError, match="secret_keys"):
        SessionSettings()


def test_secret_keys_alone_sign_with_the_first() -> None:
    settings = SessionSettings(secret_keys=[SecretStr("a"), SecretStr("b")])
    assert settings.keys() == ["a", "b"]


# -- nothing secret in a repr ----------------------------------------------------------------


def test_repr_hides_secrets_and_url_passwords(env: Callable[..., None]) -> None:
    env(
        url=f"postgresql+asyncpg://app:{PASSWORD}@db.example/sessions",
        secret_key="the-signing-secret",
        secret_keys='["the-old-secret"]',
    )
    settings = SessionSettings()
    assert settings.url.endswith(f"app:{PASSWORD}@db.example/sessions")  # the value itself is intact
    for text in (repr(settings), str(settings), f"{settings!r}", f"{settings}"):
        assert PASSWORD not in text
        assert "the-signing-secret" not in text and "the-old-secret" not in text
        assert "app:***@db.example" in text


def test_repr_hides_a_password_in_a_malformed_url(env: Callable[..., None]) -> None:
    env(url=f"app:{PASSWORD}@db.example/sessions")  # the scheme forgotten
    assert PASSWORD not in repr(SessionSettings())


# -- SessionManager.from_settings ------------------------------------------------------------


def test_from_settings_builds_a_working_manager(env: Callable[..., None]) -> None:
    env(
        secret_key=SECRET,
        idle_timeout="PT10M",
        absolute_timeout="3600",
        cookie_name="sid",
        cookie_samesite="strict",
        cookie_path="/",
    )
    manager = SessionManager.from_settings()
    assert isinstance(manager.backend, InMemoryBackend)
    assert manager.idle_timeout == timedelta(minutes=10)
    assert manager.absolute_timeout == timedelta(hours=1)
    set_cookie, read = exchange(manager)
    assert set_cookie.startswith("sid=")
    assert "samesite=strict" in set_cookie.lower() and "secure" in set_cookie.lower()
    assert "max-age=3600" in set_cookie.lower()  # the cookie lives until the absolute deadline
    assert read == {"n": 7}


def test_from_settings_on_a_server_url(env: Callable[..., None], fake_redis: list[str]) -> None:
    env(url="redis://cache:6379/0", secret_key=SECRET)
    manager = SessionManager.from_settings()
    assert fake_redis == ["redis://cache:6379/0"]
    assert exchange(manager)[1] == {"n": 7}


def test_from_settings_accepts_an_explicit_settings_object_and_options() -> None:
    settings = SessionSettings(secret_key=SECRET, idle_timeout=600)
    manager = SessionManager.from_settings(settings, idle_timeout=120, conflict_policy="raise")
    assert manager.idle_timeout == timedelta(minutes=2)  # an explicit option wins
    assert manager.conflict_policy == "raise"


def test_from_settings_verifies_tokens_signed_with_an_older_key(env: Callable[..., None]) -> None:
    env(secret_key="new-key", secret_keys='["old-key"]')
    manager = SessionManager.from_settings()
    signed_with_old = SessionFrontend("old-key").sign("some-token")
    assert manager.frontend.unsign(signed_with_old) == "some-token"
    assert manager.frontend.sign("some-token") == SessionFrontend("new-key").sign("some-token")


def test_from_settings_without_a_secret_for_a_server_url_is_a_configuration_error(
    env: Callable[..., None], fake_redis: list[str]
) -> None:
    env(url=f"redis://:{PASSWORD}@cache:6379/0")
    with pytest.raises(ConfigurationError) as caught:
        SessionManager.from_settings()
    assert "FASTAPI_SESSIONS_SECRET_KEY" in str(caught.value)
    assert PASSWORD not in str(caught.value)
    assert fake_redis == []  # nothing was connected to


def test_memory_without_a_secret_works() -> None:
    manager = SessionManager.from_settings()
    assert isinstance(manager.backend, InMemoryBackend)
    assert exchange(manager)[1] == {"n": 7}


def test_memory_without_a_secret_still_honours_the_cookie_settings(env: Callable[..., None]) -> None:
    env(cookie_name="sid", cookie_secure="false", cookie_samesite="strict")
    manager = SessionManager.from_settings()
    frontend = manager.frontend
    assert isinstance(frontend, SessionFrontend)
    assert (frontend.cookie_name, frontend.secure, frontend.samesite) == ("sid", False, "strict")


def test_invalid_timeouts_are_configuration_errors(env: Callable[..., None]) -> None:
    env(idle_timeout="-5")
    with pytest.raises(ConfigurationError, match="idle_timeout"):
        SessionManager.from_settings()
