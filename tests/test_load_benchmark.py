"""benchmarks/load.py at toy scale: its generator counts what a server really did, and a whole run works.

The first test runs the generator against a small HTTP server of its own that
answers some requests 503, drops some acknowledged increments, hangs once,
closes connections and sends chunked bodies: every one must be counted where
the benchmark's table puts it. The second runs the benchmark itself (uvicorn in
a subprocess, our in-memory backend) with a handful of clients.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture
def load_client(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module("load_client")


class FlakyServer:
    """HTTP/1.1 keep-alive with one counter per session; misbehaves on a fixed schedule of /rmw calls."""

    def __init__(self) -> None:
        self.sessions: dict[str, int] = {}
        self.rmw_calls = 0
        self.statuses: Counter[int] = Counter()
        self.dropped = 0  # increments answered 200 but not stored

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                if not await self.respond(head, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def respond(self, head: str, writer: asyncio.StreamWriter) -> bool:
        method, path, _ = head.split(" ", 2)
        sid = next((line.split("sid=", 1)[1].strip() for line in head.split("\r\n") if line.startswith("cookie:")),
                   "")
        status, body, headers, keep = 200, {"value": None}, [], True
        if method == "POST" and path == "/setup":
            sid = f"s{len(self.sessions)}"
            self.sessions[sid] = 0
            headers.append(f"set-cookie: sid={sid}; Path=/; HttpOnly")
        elif path == "/rmw":
            self.rmw_calls += 1
            n = self.rmw_calls
            if n == 9:
                await asyncio.sleep(1.0)  # past the client's timeout: counted as one, and not stored
                return False
            if n % 7 == 0:
                status = 503
            elif n % 5 == 0:
                self.dropped += 1  # acknowledged, never stored: a lost write
            else:
                self.sessions[sid] += 1
            keep = n % 4 != 0  # every fourth answer closes the connection, every eighth without saying so
        elif path == "/counter":
            body = {"value": self.sessions.get(sid)}
        self.statuses[status] += 1
        data = json.dumps(body).encode()
        if path == "/counter":  # chunked, in two chunks
            headers.append("transfer-encoding: chunked")
            data = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (3, data[:3], len(data) - 3, data[3:])
        else:
            headers.append(f"content-length: {len(data)}")
        if not keep and self.rmw_calls % 8 != 0:
            headers.append("connection: close")
        writer.write((f"HTTP/1.1 {status} X\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n").encode() + data)
        await writer.drain()
        return keep


@pytest.mark.asyncio
async def test_generator_counts_errors_timeouts_and_lost_writes(load_client: ModuleType) -> None:
    fake = FlakyServer()
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with asyncio.timeout(20):
            result = await load_client.generate("127.0.0.1", port, clients=3, mix="rmw", duration=None, requests=60,
                                                request_timeout=0.3, warmup=1)
    finally:
        server.close()
        await server.wait_closed()

    assert result.ready_clients == 3
    statuses = result.timed.statuses + result.untimed.statuses
    assert statuses == fake.statuses
    assert result.timed.timeouts == 1 and result.timed.connection_errors == 0
    assert result.timed.statuses[503] > 0 and fake.dropped > 0
    assert result.lost_writes == fake.dropped
    assert result.acknowledged == sum(fake.sessions.values()) + fake.dropped
    assert result.unacknowledged_writes == 0 and result.sessions_lost == result.unreadable == 0
    assert result.resent > 0  # after the silent closes, not counted as connection errors
    assert sum(result.timed.statuses.values()) + result.timed.timeouts == 60


def test_load_benchmark_runs_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    command = [sys.executable, str(BENCHMARKS / "load.py"), "--clients", "4", "--requests", "100",
               "--backends", "memory", "--libraries", "ours", "--timeout", "10", "--json", str(out)]
    # Its own process group, so a hang is ended with the uvicorn server it started.
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 0, stdout + stderr
    rows = {row["mix"]: row for row in json.loads(out.read_text())["results"]}
    assert set(rows) == {"rmw", "ro"}
    for row in rows.values():
        assert row["statuses"] == {"200": 100}, row
        assert row["timeouts"] == row["connection_errors"] == row["sessions_lost"] == row["sessions_unreadable"] == 0
        assert row["lost_acknowledged_writes"] == row["unacknowledged_stored_writes"] == 0
        assert row["server_tracebacks"] == 0
    assert rows["rmw"]["acknowledged_writes"] == 100 + 4  # the timed requests and one warm-up each
    assert "| memory | fastapi-sessions (InMemoryBackend) | read-modify-write |" in stdout
