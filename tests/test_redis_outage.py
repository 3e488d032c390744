"""A Redis outage mid-run, on a redis-server this test starts, kills and restarts itself.

The app must answer 503 (never 500) while Redis is down, serve again once it is
back, and lose no save that it reported as successful. The server runs with
``appendfsync always``, so what Redis acknowledged survives ``SIGKILL``: a lost
save would be ours, not the server's.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from fastapi import FastAPI, Request

from conftest import free_port
from fastapi_sessions import SessionManager, SessionMiddleware
from fastapi_sessions.backends.redis import RedisBackend
from fastapi_sessions.frontends import SessionFrontend

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
SECRET = "test-secret-key-0123456789abcdef"


class RedisProcess:
    """A private redis-server on a spare loopback port; durable (AOF, fsync always) in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
             "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def kill(self) -> None:
        """SIGKILL: no shutdown save, no goodbye to clients."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def redis_process(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


def session_app(manager: SessionManager) -> FastAPI:
    app = FastAPI()
    app.add_middleware(SessionMiddleware, manager=manager)

    @app.post("/add/{item}")
    async def add(item: int, request: Request) -> dict[str, Any]:
        request.session["items"] = [*request.session.get("items", []), item]
        return {"ok": True}

    @app.get("/items")
    async def items(request: Request) -> dict[str, Any]:
        return {"items": request.session.get("items", [])}

    return app


@pytest.mark.asyncio
async def test_outage_gives_503_then_recovers_and_loses_no_acknowledged_save(redis_process: RedisProcess) -> None:
    backend = RedisBackend.from_url(redis_process.url)
    manager = SessionManager(backend, SessionFrontend(secret_key=SECRET))
    transport = httpx.ASGITransport(app=session_app(manager))
    acknowledged: list[int] = []
    statuses: dict[int, int] = {}
    async with backend, httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:

        async def writer(stop: asyncio.Event) -> None:
            item = 0
            while not stop.is_set():
                item += 1
                response = await client.post(f"/add/{item}")
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                if response.status_code == 200:
                    acknowledged.append(item)
                await asyncio.sleep(0.002)

        async def wait_for(condition: Any) -> None:
            deadline = time.monotonic() + 20
            while not condition():
                assert time.monotonic() < deadline, statuses
                await asyncio.sleep(0.01)

        stop = asyncio.Event()
        task = asyncio.create_task(writer(stop))
        await wait_for(lambda: len(acknowledged) >= 20)
        redis_process.kill()  # mid-run: the writer keeps sending
        await wait_for(lambda: statuses.get(503, 0) >= 5)
        before_restart = len(acknowledged)
        await asyncio.to_thread(redis_process.start)
        await wait_for(lambda: len(acknowledged) >= before_restart + 20)
        stop.set()
        await task

        assert set(statuses) <= {200, 503}, statuses  # never a 500
        assert statuses[503] >= 5
        response = await client.get("/items")
        assert response.status_code == 200
        stored = response.json()["items"]
        missing = sorted(set(acknowledged) - set(stored))
        assert not missing, f"saves reported successful but lost: {missing}"
        assert stored == sorted(stored)  # applied in order, each at most once


@pytest.mark.asyncio
async def test_a_read_during_the_outage_is_503_not_500(redis_process: RedisProcess) -> None:
    backend = RedisBackend.from_url(redis_process.url)
    manager = SessionManager(backend, SessionFrontend(secret_key=SECRET))
    transport = httpx.ASGITransport(app=session_app(manager))
    async with backend, httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        assert (await client.post("/add/1")).status_code == 200
        redis_process.kill()
        response = await client.get("/items")
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        await asyncio.to_thread(redis_process.start)
        response = await client.get("/items")
        assert (response.status_code, response.json()) == (200, {"items": [1]})
