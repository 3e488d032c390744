"""Load benchmark: a real uvicorn server on loopback, N clients each holding its own session.

    python benchmarks/load.py [--clients 200] [--duration 20 | --requests N] [--backends memory,redis,postgres]
                              [--libraries ours,starsessions] [--mix rmw,ro] [--backend-option KEY=VALUE ...]
                              [--timeout 60] [--warmup 1] [--client raw|httpx] [--json out.json]

For every backend, mix and library it starts ``uvicorn load_app:create_app``
(one worker process, a fresh key prefix or table), warms every client up (its
session created, ``--warmup`` requests sent), runs the timed phase, reads every
client's stored counter back, stops the server and removes what the run wrote.
It prints a Markdown table (requests/s, p50/p99/max latency, errors by status,
connection errors and timeouts, lost acknowledged writes, the CPU of generator
and server) on stdout and progress on stderr. See benchmarks/README.md, "Load".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from load_app import CONFIG_ENV
from load_client import MIX_TITLES, MIXES, LoadResult, generate

HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
BACKENDS = ("memory", "redis", "postgres")
LIBRARIES = ("ours", "starsessions")
# The store each library uses per backend; None: the library has no such store.
STORES: dict[str, dict[str, str | None]] = {
    "ours": {"memory": "InMemoryBackend", "redis": "RedisBackend", "postgres": "SQLAlchemyBackend (asyncpg)"},
    "starsessions": {"memory": "InMemoryStore", "redis": "RedisStore", "postgres": None},
}
LIBRARY_NAMES = {"ours": "fastapi-sessions", "starsessions": "starsessions"}
BACKEND_NAMES = {"memory": "in-memory", "redis": "Redis", "postgres": "PostgreSQL"}
SERVER_START_TIMEOUT = 30.0
SERVER_STOP_TIMEOUT = 15.0


def _urls() -> dict[str, str]:
    env = os.environ.get
    return {
        "memory": "memory://",
        "redis": env("FASTAPI_SESSIONS_BENCH_REDIS_URL") or "redis://127.0.0.1:6379/0",
        "postgres": (env("FASTAPI_SESSIONS_BENCH_POSTGRES_URL") or env("FASTAPI_SESSIONS_TEST_POSTGRES_URL")
                     or "postgresql+asyncpg://postgres@127.0.0.1:5432/test"),
    }


# -- the store a run writes to: a fresh namespace, removed afterwards ----------------------------


async def _prepare(backend: str, url: str, namespace: str, library: str) -> None:
    if backend == "postgres" and library == "ours":
        from fastapi_sessions.backends.sqlalchemy import SQLAlchemyBackend

        async with SQLAlchemyBackend(url, table_name=namespace) as store:
            await store.create_table()


async def _cleanup(backend: str, url: str, namespace: str) -> int:
    """Remove what the run wrote; returns how many keys or rows there were."""
    if backend == "redis":
        from redis.asyncio import Redis

        client = Redis.from_url(url)
        try:
            removed, batch = 0, []
            async for key in client.scan_iter(match=f"{namespace}*", count=1000):
                batch.append(key)
                if len(batch) >= 500:
                    removed += await client.delete(*batch)
                    batch.clear()
            return removed + (await client.delete(*batch) if batch else 0)
        finally:
            await client.aclose()
    if backend == "postgres":
        from sqlalchemy import func, select

        from fastapi_sessions.backends.sqlalchemy import SQLAlchemyBackend

        async with SQLAlchemyBackend(url, table_name=namespace) as store:
            async with store.engine.connect() as conn:
                rows = (await conn.execute(select(func.count()).select_from(store.table))).scalar_one()
            await store.drop_table()
        return int(rows)
    return 0


def _namespace(backend: str) -> str:
    # A Redis key prefix or a table name of our own, so concurrent runs on a shared server never meet.
    tag = uuid.uuid4().hex[:10]
    return f"fs_load_{tag}" if backend == "postgres" else f"bench-load-{tag}:"


# -- the server: one uvicorn process ----------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def cpu_seconds(self) -> float | None:
        """utime + stime of the server process (Linux /proc); None elsewhere."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log_summary(self) -> dict[str, Any]:
        # Streamed: during an outage of the store the log can reach hundreds of MB.
        lines = tracebacks = 0
        tail: deque[str] = deque(maxlen=8)
        with self.log.open(errors="replace") as log:
            for line in log:
                lines += 1
                tracebacks += line.startswith("Traceback (most recent call last)")
                tail.append(line.rstrip("\n"))
        return {"server_log_lines": lines, "server_tracebacks": tracebacks, "server_log_tail": list(tail)}


@contextlib.contextmanager
def serve(config: dict[str, Any], logdir: Path) -> Iterator[Server]:
    port = _free_port()
    log = logdir / f"server-{port}.log"
    command = [sys.executable, "-m", "uvicorn", "load_app:create_app", "--factory", "--app-dir", str(HERE),
               "--host", HOST, "--port", str(port), "--log-level", "warning", "--no-access-log",
               "--timeout-keep-alive", "120", "--backlog", "4096"]
    env = {**os.environ, CONFIG_ENV: json.dumps(config)}
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env, cwd=HERE)
    server = Server(process, port, log)
    try:
        _wait_ready(server)
        yield server
    finally:
        process.terminate()  # SIGTERM: uvicorn shuts down gracefully and runs the lifespan's cleanup
        try:
            process.wait(SERVER_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(server: Server) -> None:
    # uvicorn runs the lifespan startup before it listens, so an accepted connection means ready.
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            tail = "\n".join(server.log_summary()["server_log_tail"])
            raise RuntimeError(f"the server exited with status {server.process.returncode}:\n{tail}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, server.port), timeout=1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"the server did not listen within {SERVER_START_TIMEOUT:.0f} s")


# -- one run ----------------------------------------------------------------------------------


@dataclass
class Run:
    backend: str
    library: str
    mix: str
    options: dict[str, Any] = field(default_factory=dict)


def _percentile(ordered: list[float], p: float) -> float | None:
    if not ordered:
        return None
    return ordered[max(0, math.ceil(p * len(ordered)) - 1)]


def summarize(run: Run, r: LoadResult) -> dict[str, Any]:
    lat = sorted(r.timed.latencies)
    answered = len(lat)
    ok = r.timed.statuses.get(200, 0)
    ms = 1000.0
    p50, p99 = _percentile(lat, 0.50), _percentile(lat, 0.99)
    return {
        "clients": r.clients,
        "ready_clients": r.ready_clients,
        "elapsed_s": r.elapsed,
        "responses": answered,
        "requests_per_s": answered / r.elapsed if r.elapsed else 0.0,
        "ok_per_s": ok / r.elapsed if r.elapsed else 0.0,
        "p50_ms": p50 * ms if p50 is not None else None,
        "p99_ms": p99 * ms if p99 is not None else None,
        "max_ms": lat[-1] * ms if lat else None,
        "statuses": {str(k): v for k, v in sorted(r.timed.statuses.items())},
        "timeouts": r.timed.timeouts,
        "connection_errors": r.timed.connection_errors,
        "untimed_statuses": {str(k): v for k, v in sorted(r.untimed.statuses.items())},
        "untimed_timeouts": r.untimed.timeouts,
        "untimed_connection_errors": r.untimed.connection_errors,
        "acknowledged_writes": r.acknowledged if run.mix == "rmw" else 0,
        "lost_acknowledged_writes": r.lost_writes,
        "unacknowledged_stored_writes": r.unacknowledged_writes,
        "sessions_lost": r.sessions_lost,
        "sessions_unreadable": r.unreadable,
        "resent_on_closed_keepalive": r.resent,
        "generator_cpu_s": r.generator_cpu,
        "generator_cpu_pct": 100 * r.generator_cpu / r.elapsed if r.elapsed else None,
        "generator_cpu_us_per_request": 1e6 * r.generator_cpu / answered if answered else None,
        "server_cpu_pct": 100 * r.server_cpu / r.elapsed if r.server_cpu is not None and r.elapsed else None,
        "server_cpu_us_per_request": 1e6 * r.server_cpu / answered if r.server_cpu is not None and answered else None,
    }


async def run_one(run: Run, args: argparse.Namespace, urls: dict[str, str], logdir: Path) -> dict[str, Any]:
    row: dict[str, Any] = {"backend": run.backend, "library": run.library, "mix": run.mix,
                           "store": STORES[run.library][run.backend], "client": args.client,
                           "backend_options": run.options, "load_average_before": os.getloadavg()}
    if row["store"] is None:
        row["skipped"] = f"starsessions has no {BACKEND_NAMES[run.backend]} store"
        return row
    if run.library == "starsessions" and find_spec("starsessions") is None:
        row["skipped"] = "starsessions is not installed (pip install starsessions)"
        return row
    url, namespace = urls[run.backend], _namespace(run.backend)
    config = {"library": run.library, "backend": run.backend, "url": url, "namespace": namespace,
              "backend_options": run.options}
    await _prepare(run.backend, url, namespace, run.library)
    try:
        with serve(config, logdir) as server:
            result = await generate(HOST, server.port, clients=args.clients, mix=run.mix, duration=args.duration,
                                    requests=args.requests, request_timeout=args.timeout, warmup=args.warmup,
                                    client=args.client, server_cpu=server.cpu_seconds)
        row |= summarize(run, result) | server.log_summary()
    finally:
        row["cleanup_removed"] = await _cleanup(run.backend, url, namespace)
    return row


# -- report -----------------------------------------------------------------------------------


COLUMNS = ("backend", "library (store)", "mix", "req/s (200/s)", "p50 ms", "p99 ms", "max ms", "errors by status",
           "conn errors / timeouts", "lost acked writes", "generator CPU % (µs/req)", "server CPU % (µs/req)")


def _num(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def cells(row: dict[str, Any]) -> list[str]:
    library = f"{LIBRARY_NAMES[row['library']]} ({row['store'] or 'no store'})"
    head = [row["backend"], library, MIX_TITLES[row["mix"]]]
    if "skipped" in row or "failed" in row:
        return [*head, f"n/a: {row.get('skipped') or 'FAILED'}", *["—"] * (len(COLUMNS) - 4)]
    errors = ", ".join(f"{code}: {n}" for code, n in row["statuses"].items() if code != "200") or "none"
    lost = str(row["lost_acknowledged_writes"]) if row["mix"] == "rmw" else "— (no writes)"
    if row["sessions_lost"]:
        lost += f" ({row['sessions_lost']} sessions lost)"
    if row["sessions_unreadable"]:
        lost += f" ({row['sessions_unreadable']} sessions unreadable)"
    if row["ready_clients"] != row["clients"]:
        errors += f" ({row['clients'] - row['ready_clients']} clients failed warm-up)"
    return [*head, f"{row['requests_per_s']:.0f} ({row['ok_per_s']:.0f})", _num(row["p50_ms"]), _num(row["p99_ms"]),
            _num(row["max_ms"]), errors, f"{row['connection_errors']} / {row['timeouts']}", lost,
            _cpu(row, "generator"), _cpu(row, "server")]


def _cpu(row: dict[str, Any], who: str) -> str:
    return f"{_num(row[f'{who}_cpu_pct'], 0)} ({_num(row[f'{who}_cpu_us_per_request'], 0)})"


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cells(r)) + " |" for r in rows]
    return "\n".join(lines)


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for pkg in ("fastapi-sessions", "starsessions", "fastapi", "starlette", "uvicorn", "h11", "httptools", "uvloop",
                "redis", "sqlalchemy", "asyncpg", "orjson"):
        try:
            found[pkg] = version(pkg)
        except PackageNotFoundError:
            found[pkg] = "not installed"
    try:
        found["commit"] = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=HERE, capture_output=True,
                                         text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        found["commit"] = "unknown"
    return found


def _option(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        value = json.loads(raw)  # numbers, true/false, null and quoted strings
    except ValueError:
        value = raw
    return key, value


def _choices(allowed: tuple[str, ...]) -> Any:
    def parse(text: str) -> list[str]:
        chosen = [item.strip() for item in text.split(",") if item.strip()]
        unknown = sorted(set(chosen) - set(allowed))
        if unknown or not chosen:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(allowed)} (comma-separated), got {text!r}")
        return chosen

    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=200, help="concurrent clients, one session each (default 200)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--duration", type=float, default=None, help="timed seconds per run (default 20)")
    length.add_argument("--requests", type=int, default=None, help="timed requests per run, over all clients")
    p.add_argument("--backends", type=_choices(BACKENDS), default=list(BACKENDS), help="default: all")
    p.add_argument("--libraries", type=_choices(LIBRARIES), default=list(LIBRARIES), help="default: both")
    p.add_argument("--mix", type=_choices(tuple(MIXES)), default=list(MIXES),
                   help="rmw (read-modify-write), ro (read-only), or both (default)")
    p.add_argument("--backend-option", type=_option, action="append", default=[], metavar="KEY=VALUE",
                   help="passed to our backend as backend_options (e.g. pool_size=40); JSON values are decoded")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="seconds before a request counts as a timeout (default 60: above the server's own bounds)")
    p.add_argument("--warmup", type=int, default=1, help="untimed requests per client after its setup (default 1)")
    p.add_argument("--client", choices=("raw", "httpx"), default="raw", help="HTTP client of the generator")
    p.add_argument("--json", type=Path, help="also write every figure here")
    args = p.parse_args(argv)
    if args.requests is None and args.duration is None:
        args.duration = 20.0
    if args.clients < 1:
        p.error("--clients must be at least 1")
    return args


async def run_all(args: argparse.Namespace) -> list[dict[str, Any]]:
    urls, options = _urls(), dict(args.backend_option)
    rows = []
    with tempfile.TemporaryDirectory(prefix="fs-load-") as logdir:
        for backend in args.backends:
            for mix in args.mix:
                for library in args.libraries:
                    run = Run(backend, library, mix, options if library == "ours" else {})
                    print(f"{backend} / {library} / {mix} ...", file=sys.stderr, flush=True)
                    try:
                        row = await run_one(run, args, urls, Path(logdir))
                    except Exception as exc:  # a run that cannot start is reported, the others go on
                        row = {"backend": backend, "library": library, "mix": mix,
                               "store": STORES[library][backend], "failed": f"{type(exc).__name__}: {exc}"}
                    rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    versions = _versions()
    started = time.perf_counter()
    rows = asyncio.run(run_all(args))
    length = f"{args.duration:g} s" if args.requests is None else f"{args.requests} requests"
    print(f"## Load: uvicorn (1 worker) on loopback, {args.clients} clients, {length} per run\n")
    print(markdown_table(rows))
    print()
    load = os.getloadavg()
    print(f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, load average {load[0]:.2f} at the end; "
          f"generator client: {args.client}; timeout {args.timeout:g} s; warm-up {args.warmup} per client")
    if args.backend_option:
        print(f"- our backend_options: {dict(args.backend_option)} (starsessions runs with its defaults)")
    print(f"- versions: {', '.join(f'{k} {v}' for k, v in versions.items())}")
    bad = False
    for row in rows:
        name = f"{row['backend']} / {row['library']} / {row['mix']}"
        if "failed" in row:
            bad = True
            print(f"- FAILED {name}: {row['failed']}")
        elif "skipped" not in row:
            if (row["lost_acknowledged_writes"] or row["sessions_lost"] or row["sessions_unreadable"]
                    or row["ready_clients"] != row["clients"]):
                bad = True
            if row["resent_on_closed_keepalive"]:
                print(f"- {name}: {row['resent_on_closed_keepalive']} requests resent on a fresh connection: "
                      "the server had closed the idle keep-alive one without saying so (uvicorn does after a 500)")
            if row["server_tracebacks"]:
                print(f"- {name}: the server logged {row['server_tracebacks']} traceback blocks "
                      f"in {row['server_log_lines']} lines")
    print(f"\n(total wall time {time.perf_counter() - started:.0f} s)", file=sys.stderr)
    if args.json:
        payload = {"config": vars(args) | {"json": str(args.json)}, "versions": versions,
                   "machine": {"platform": platform.platform(), "cpus": os.cpu_count()}, "results": rows}
        args.json.write_text(json.dumps(payload, indent=2, default=str))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
