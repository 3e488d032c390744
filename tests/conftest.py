"""Shared fixtures for the test suite."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fastapi_sessions import ManualClock, SessionManager, SessionMiddleware
from fastapi_sessions.backends.in_memory import InMemoryBackend
from fastapi_sessions.frontends import SessionFrontend

SECRET = "test-secret-key-0123456789abcdef"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def backend(clock: ManualClock) -> InMemoryBackend:
    return InMemoryBackend(clock=clock)


@pytest.fixture
def make_manager(backend: InMemoryBackend, clock: ManualClock) -> Callable[..., SessionManager]:
    """A manager on the in-memory backend and the test clock; keyword options pass through."""

    def make(**options: Any) -> SessionManager:
        frontend = options.pop("frontend", None) or SessionFrontend(secret_key=SECRET)
        return SessionManager(backend=backend, frontend=frontend, clock=clock, **options)

    return make


@pytest.fixture
def manager(make_manager: Callable[..., SessionManager]) -> SessionManager:
    return make_manager()


def client_for(app: FastAPI) -> TestClient:
    """A client on https, since the session cookie is Secure by default."""
    return TestClient(app, base_url="https://testserver")


def app_with(manager: SessionManager) -> FastAPI:
    app = FastAPI()
    app.add_middleware(SessionMiddleware, manager=manager)
    return app
