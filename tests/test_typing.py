"""An application's view of the types: ``mypy --strict`` on a small app, in a subprocess.

``manager.user`` answers 401 when nobody is logged in, so it gives a ``str``;
``manager.optional_user`` gives ``str | None``. Starlette types
``request.session`` as a plain dict, so the typed way to log in is
``session_of(request).user_id = ...``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.testclient import TestClient

from conftest import app_with, client_for
from fastapi_sessions import SessionManager
from fastapi_sessions._core.dependencies import session_of

SRC = Path(__file__).resolve().parent.parent / "src"

HEADER = """\
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, FastAPI, Request

from fastapi_sessions import Session, SessionManager, SessionMiddleware
from fastapi_sessions.backends.in_memory import InMemoryBackend
from fastapi_sessions._core.dependencies import session_of
from fastapi_sessions.frontends import CookieFrontend

manager = SessionManager(InMemoryBackend(), CookieFrontend("a-secret-key-for-type-checking-only"))
app = FastAPI()
app.add_middleware(SessionMiddleware, manager=manager)
"""

GOOD = HEADER + """
required: Callable[..., Awaitable[str]] = manager.user
optional: Callable[..., Awaitable[str | None]] = manager.optional_user


@app.post("/login")
async def login(request: Request) -> dict[str, bool]:
    session: Session = session_of(request)
    session.user_id = "alice"
    session.regenerate()
    session["cart"] = []
    return {"new": session.is_new}


@app.get("/me")
async def me(user: Annotated[str, Depends(manager.user)]) -> dict[str, str]:
    return {"user": user.upper()}


@app.get("/maybe")
async def maybe(user: Annotated[str | None, Depends(manager.optional_user)]) -> dict[str, str | None]:
    return {"user": user}
"""

# What the typed accessors are for: each line must be an error.
BAD = HEADER + """
wrong: Callable[..., Awaitable[str]] = manager.optional_user


@app.post("/login")
async def login(request: Request) -> None:
    request.session.user_id = "alice"
"""


def test_session_of_is_request_session_and_logs_in(manager: SessionManager) -> None:
    app = app_with(manager)

    @app.post("/login")
    async def login(request: Request) -> dict[str, bool]:
        session = session_of(request)
        session.user_id = "alice"
        return {"same": session is request.session}

    @app.get("/me")
    async def me(user: str = Depends(manager.user)) -> dict[str, str]:
        return {"user": user}

    client = client_for(app)
    assert client.get("/me").status_code == 401
    assert client.post("/login").json() == {"same": True}
    assert client.get("/me").json() == {"user": "alice"}


def test_session_of_without_the_middleware_names_the_fix() -> None:
    app = FastAPI()

    @app.get("/")
    async def route(request: Request) -> None:
        session_of(request)

    with pytest.raises(RuntimeError, match=r"add app.add_middleware\(SessionMiddleware, manager=manager\)"):
        TestClient(app).get("/")


def test_mypy_strict_accepts_the_typed_accessors_and_sees_what_they_fix(tmp_path: Path) -> None:
    pytest.importorskip("mypy")
    (tmp_path / "good.py").write_text(GOOD)
    (tmp_path / "bad.py").write_text(BAD)
    (tmp_path / "mypy.ini").write_text(textwrap.dedent(f"""\
        [mypy]
        strict = True
        cache_dir = {tmp_path / "cache"}
        """))
    # This checkout's sources, not whatever copy of the package the interpreter has installed.
    env = {**os.environ, "MYPYPATH": str(SRC)}
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", "mypy.ini", "good.py", "bad.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert not [line for line in errors if line.startswith("good.py")], result.stdout
    bad_lines = sorted(int(m.group(1)) for line in errors if (m := re.match(r"bad\.py:(\d+):", line)))
    lines = BAD.splitlines()
    assert [lines[n - 1].strip() for n in bad_lines] == [
        "wrong: Callable[..., Awaitable[str]] = manager.optional_user",
        'request.session.user_id = "alice"',
    ], result.stdout
    assert not [line for line in errors if not line.startswith(("good.py", "bad.py"))], result.stdout


README = SRC.parent / "README.md"
#: A ```python block, with the HTML comment before it that says how to check it, if any.
SNIPPET = re.compile(r"(?:<!-- snippet: (?P<mark>[^>]*?) -->\n)?```python\n(?P<code>.*?)```", re.S)
#: What the kit snippet imports as the author's own backend.
MY_BACKEND = """\
from fastapi_sessions import InMemoryBackend


class MyBackend(InMemoryBackend):
    def __init__(self, url: str) -> None:
        super().__init__()
"""


#: What the app-testing snippet imports as the application under test.
MY_APP = """\
from fastapi import FastAPI

from fastapi_sessions import CookieFrontend, InMemoryBackend, SessionManager

manager = SessionManager(InMemoryBackend(), CookieFrontend("a-secret-key-for-type-checking-only"))
app = FastAPI()
"""


def readme_modules() -> list[str]:
    """The README's Python snippets as modules: one each, or joined to the one before when marked so."""
    modules: list[str] = []
    for match in SNIPPET.finditer(README.read_text()):
        mark, code = match["mark"], match["code"]
        if mark is None:
            modules.append(code)
        elif mark == "continues the one above":
            modules[-1] += "\n\n" + code
        else:
            assert mark.startswith("not checked ("), f"unknown snippet mark {mark!r}: say why it is not checked"
    return modules


def test_the_quick_start_snippet_is_the_example_app() -> None:
    example = (SRC.parent / "examples" / "quickstart.py").read_text()
    assert example.endswith(readme_modules()[0]), "README's quick start and examples/quickstart.py differ"


def test_mypy_strict_accepts_the_readme_snippets(tmp_path: Path) -> None:
    pytest.importorskip("mypy")
    modules = readme_modules()
    assert len(modules) >= 4, "the README's snippets were found"
    names = []
    for n, code in enumerate(modules):
        (tmp_path / f"readme_{n}.py").write_text(code)
        names.append(f"readme_{n}.py")
    (tmp_path / "my_backend.py").write_text(MY_BACKEND)
    (tmp_path / "myapp.py").write_text(MY_APP)
    (tmp_path / "mypy.ini").write_text(f"[mypy]\nstrict = True\ncache_dir = {tmp_path / 'cache'}\n")
    env = {**os.environ, "MYPYPATH": str(SRC)}
    result = subprocess.run([sys.executable, "-m", "mypy", "--config-file", "mypy.ini", *names],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
