"""Every 0.3.2 import path and name, the generics as users subclass them, and what the new API does not load."""

from __future__ import annotations

import subprocess
import sys
from abc import ABC
from typing import Generic, TypeVar
from uuid import UUID

import pytest
from fastapi.security.base import SecurityBase
from pydantic import BaseModel


class Data(BaseModel):
    username: str


def test_every_0_3_2_import_line_works() -> None:
    # The lines from the 0.3.2 docs, PR #20's Redis example and users' own backends.
    from fastapi_sessions.backends import SessionBackend as ReExported
    from fastapi_sessions.backends.implementations import InMemoryBackend
    from fastapi_sessions.backends.implementations.in_memory_backend import InMemoryBackend as Deep
    from fastapi_sessions.backends.session_backend import BackendError, SessionBackend, SessionModel
    from fastapi_sessions.frontends.implementations import CookieParameters, SessionCookie
    from fastapi_sessions.frontends.implementations.cookie import CookieParameters as DeepParameters
    from fastapi_sessions.frontends.implementations.cookie import SameSiteEnum
    from fastapi_sessions.frontends.implementations.cookie import SessionCookie as DeepCookie
    from fastapi_sessions.frontends.session_frontend import ID, FrontendError
    from fastapi_sessions.frontends.session_frontend import SessionFrontend as AbstractFrontend
    from fastapi_sessions.session_verifier import SessionVerifier

    assert ReExported is SessionBackend
    assert Deep is InMemoryBackend and DeepCookie is SessionCookie and DeepParameters is CookieParameters
    assert issubclass(BackendError, Exception) and issubclass(FrontendError, Exception)
    assert isinstance(ID, TypeVar) and isinstance(SessionModel, TypeVar)
    assert SessionModel.__bound__ is BaseModel
    assert [m.value for m in SameSiteEnum] == ["lax", "strict", "none"]
    assert issubclass(SessionCookie, SecurityBase) and issubclass(SessionCookie, AbstractFrontend)
    assert issubclass(InMemoryBackend, SessionBackend) and issubclass(SessionBackend, ABC)
    assert SessionVerifier.__call__ is not None


def test_both_meanings_of_session_frontend_hold() -> None:
    from fastapi_sessions.frontends import CookieFrontend, SessionFrontend, session_frontend

    assert issubclass(SessionFrontend, CookieFrontend)  # the new concrete frontend of the quick-start
    SessionFrontend(secret_key="s")
    legacy = session_frontend.SessionFrontend  # the 0.3.2 abstract base users subclass
    assert legacy is not SessionFrontend and issubclass(legacy, ABC)
    with pytest.raises(TypeError):
        legacy()  # type: ignore[abstract]


def test_the_new_storage_contract_keeps_its_own_name() -> None:
    import fastapi_sessions
    from fastapi_sessions.backends import SessionBackend
    from fastapi_sessions.backends.in_memory import InMemoryBackend

    assert fastapi_sessions.SessionBackend is not SessionBackend
    assert isinstance(InMemoryBackend(), fastapi_sessions.SessionBackend)
    with pytest.raises(AttributeError):
        _ = fastapi_sessions.backends.NoSuchThing  # type: ignore[attr-defined]


def test_version_is_a_real_version_above_0_3_2() -> None:
    import fastapi_sessions

    major, minor = (int(part) for part in fastapi_sessions.__version__.split(".")[:2])
    assert (major, minor) > (0, 3)


def test_the_generics_stay_subscriptable_at_runtime() -> None:
    from fastapi_sessions.backends.implementations import BridgeBackend, InMemoryBackend
    from fastapi_sessions.backends.session_backend import SessionBackend
    from fastapi_sessions.frontends.session_frontend import SessionFrontend
    from fastapi_sessions.session_verifier import SessionVerifier

    assert isinstance(InMemoryBackend[UUID, Data](), InMemoryBackend)
    for generic in (SessionBackend, SessionVerifier, BridgeBackend):
        assert generic[UUID, Data].__args__ == (UUID, Data)  # type: ignore[index]
    assert SessionFrontend[UUID].__args__ == (UUID,)


def test_a_user_backend_written_like_0_3_2s_has_a_valid_mro_and_runs() -> None:
    import asyncio

    from fastapi_sessions.backends.session_backend import BackendError, SessionBackend, SessionModel
    from fastapi_sessions.frontends.session_frontend import ID

    class DictBackend(Generic[ID, SessionModel], SessionBackend[ID, SessionModel]):
        def __init__(self) -> None:
            self.data: dict[ID, SessionModel] = {}

        async def create(self, session_id: ID, data: SessionModel) -> None:
            if session_id in self.data:
                raise BackendError("exists")
            self.data[session_id] = data

        async def read(self, session_id: ID) -> SessionModel | None:
            return self.data.get(session_id)

        async def update(self, session_id: ID, data: SessionModel) -> None:
            self.data[session_id] = data

        async def delete(self, session_id: ID) -> None:
            self.data.pop(session_id, None)

    assert DictBackend.__mro__.index(SessionBackend) < DictBackend.__mro__.index(Generic)
    backend = DictBackend[UUID, Data]()
    asyncio.run(backend.create(UUID(int=1), Data(username="a")))
    assert asyncio.run(backend.read(UUID(int=1))) == Data(username="a")


def test_a_backend_missing_a_method_cannot_be_instantiated() -> None:
    from fastapi_sessions.backends.session_backend import SessionBackend

    class Half(SessionBackend[UUID, Data]):
        async def create(self, session_id: UUID, data: Data) -> None: ...

    with pytest.raises(TypeError):
        Half()  # type: ignore[abstract]


def test_import_fastapi_sessions_does_not_load_the_0_3_2_layer() -> None:
    code = (
        "import sys, fastapi_sessions, fastapi_sessions.backends, fastapi_sessions.frontends;"
        "from fastapi_sessions.backends.in_memory import InMemoryBackend;"
        "from fastapi_sessions.frontends import SessionFrontend;"
        "bad = [m for m in sys.modules if m.startswith('fastapi_sessions') and "
        "('_compat' in m or 'implementations' in m or 'session_backend' in m or 'session_frontend' in m "
        "or 'session_verifier' in m)];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_0_3_2_class_shows_its_0_3_2_path_and_name() -> None:
    # Reprs, tracebacks and pickles name the path 0.3.2 code imports from, never the private package.
    import pickle
    import traceback

    from fastapi_sessions.backends.implementations import bridge, in_memory_backend
    from fastapi_sessions.backends.session_backend import BackendError
    from fastapi_sessions.frontends.implementations import cookie
    from fastapi_sessions.frontends.session_frontend import FrontendError
    from fastapi_sessions.session_verifier import SessionVerifier

    paths = {
        "fastapi_sessions.backends.session_backend": ("BackendError", "SessionBackend"),
        "fastapi_sessions.backends.implementations.in_memory_backend": ("InMemoryBackend",),
        "fastapi_sessions.backends.implementations.bridge": ("BridgeBackend", "StoreError", "StoreUnavailable"),
        "fastapi_sessions.frontends.session_frontend": ("FrontendError", "SessionFrontend"),
        "fastapi_sessions.frontends.implementations.cookie": ("CookieParameters", "SameSiteEnum", "SessionCookie"),
        "fastapi_sessions.session_verifier": ("SessionVerifier",),
    }
    for module_name, names in paths.items():
        module = sys.modules[module_name]
        for name in names:
            cls = getattr(module, name)
            assert (cls.__module__, cls.__qualname__, cls.__name__) == (module_name, name, name)
            assert pickle.loads(pickle.dumps(cls)) is cls
    assert repr(in_memory_backend.InMemoryBackend[UUID, Data]) == (
        f"fastapi_sessions.backends.implementations.in_memory_backend.InMemoryBackend[uuid.UUID, {__name__}.Data]"
    )
    assert repr(SessionVerifier[UUID, Data]).startswith("fastapi_sessions.session_verifier.SessionVerifier[")
    error = BackendError("failed to extract the {} session from state", "x")
    assert repr(error) == "BackendError('failed to extract the {} session from state', 'x')"
    assert traceback.format_exception_only(FrontendError, FrontendError("no cookie")) == [
        "fastapi_sessions.frontends.session_frontend.FrontendError: no cookie\n"
    ]
    for exc in (error, bridge.StoreUnavailable("down", backend="redis")):
        assert type(pickle.loads(pickle.dumps(exc))) is type(exc)
    assert cookie.SessionCookie(
        cookie_name="c", identifier="shown-as", secret_key="s", cookie_params=cookie.CookieParameters()
    ).scheme_name == "SessionCookie"
