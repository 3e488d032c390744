"""Outage: the MongoDB server dies mid-run; clients get 503s, never a 500, and it recovers.

Starts its own nx-27017 (the stand-in CI uses) on a spare loopback port with a file
database, kills it between requests, then restarts it on the same file: sessions
committed before the outage must still be there afterwards.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from conftest import free_port
from fastapi_sessions import SessionManager, SessionMiddleware
from fastapi_sessions.backends.mongodb import MongoBackend
from fastapi_sessions.frontends import SessionFrontend
from fastapi_sessions.testing.servers import required

NX_VARIABLE = "FASTAPI_SESSIONS_TEST_NX27017"
CI_NX = Path(os.environ.get("TMPDIR", "/tmp")) / "fastapi-sessions-ci" / "nx-venv" / "bin" / "nx-27017"


def _nx_binary() -> str:
    found = os.environ.get(NX_VARIABLE) or shutil.which("nx-27017") or (str(CI_NX) if CI_NX.exists() else None)
    if found:
        return found
    message = f"no nx-27017 executable to start and kill: set {NX_VARIABLE} or run .ci/run once"
    if required("mongodb"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


class Server:
    """One nx-27017 process we own: started, killed and restarted by this test only."""

    def __init__(self, binary: str, port: int, workdir: Path) -> None:
        self.binary, self.port, self.workdir = binary, port, workdir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.workdir / "nx.log").open("ab")
        self.process = subprocess.Popen(
            [self.binary, "--db", str(self.workdir / "sessions.db"), "--host", "127.0.0.1", "-p", str(self.port),
             "--log-file", str(self.workdir / "nx-own.log"), "--pid-file", str(self.workdir / "nx.pid")],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.workdir,
        )
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                return
            except OSError:
                assert self.process.poll() is None, (self.workdir / "nx.log").read_text()
                time.sleep(0.1)
        raise AssertionError("nx-27017 did not start")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()  # no goodbye to the clients: as abrupt as a crash
            self.process.wait(10)
        self.process = None


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    own = Server(_nx_binary(), free_port(), tmp_path)
    own.start()
    try:
        yield own
    finally:
        own.kill()


def _app(url: str) -> FastAPI:
    backend = MongoBackend(url, serverSelectionTimeoutMS=500, connectTimeoutMS=500, socketTimeoutMS=2000)
    manager = SessionManager(backend=backend, frontend=SessionFrontend(secret_key="outage-secret-0123456789abcdef"))
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await manager.aclose()  # closes the client on the loop that used it

    app = FastAPI(lifespan=lifespan)
    app.add_middleware(SessionMiddleware, manager=manager)

    @app.post("/set/{value}")
    async def set_value(request: Request, value: str) -> JSONResponse:
        request.session["value"] = value
        return JSONResponse({"value": value})

    @app.get("/get")
    async def get_value(request: Request) -> JSONResponse:
        return JSONResponse({"value": request.session.get("value")})

    return app


def test_server_outage_gives_503_then_recovers(server: Server) -> None:
    url = f"mongodb://127.0.0.1:{server.port}/outage"
    with TestClient(_app(url), base_url="https://testserver") as client:  # raises on any 500
        assert client.post("/set/before").status_code == 200
        assert client.get("/get").json() == {"value": "before"}

        server.kill()
        for _ in range(3):
            down = client.get("/get")
            assert down.status_code == 503, down.text
            assert "unavailable" in down.text
        failed_save = client.post("/set/during")
        assert failed_save.status_code == 503  # a failed save is never reported as success
        assert "set-cookie" not in failed_save.headers

        server.start()
        deadline = time.monotonic() + 30
        while (response := client.get("/get")).status_code != 200:
            assert response.status_code == 503, response.text
            assert time.monotonic() < deadline, "no recovery within 30 s"
            time.sleep(0.2)
        assert response.json() == {"value": "before"}  # committed before the outage: not lost
        assert client.post("/set/after").status_code == 200
        assert client.get("/get").json() == {"value": "after"}
