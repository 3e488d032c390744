"""The ``fastapi-sessions`` command line: through Typer's ``CliRunner`` and as a real process.

Stores are real: an in-memory backend registered for the run (``clitest://``),
PostgreSQL in a table of this module's own, Redis. The issue's bar is the
PostgreSQL purge of 100,000 expired sessions, put in with one bulk ``INSERT``:
it shows its progress and counts exactly. No line printed may hold a password.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import tomllib
import uuid
from collections.abc import Iterator
from datetime import timedelta
from importlib import import_module
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from fastapi_sessions import InMemoryBackend, SessionRecord, utc_now
from fastapi_sessions._cli._app import app
from fastapi_sessions._core.registry import register_backend, unregister_backend
from fastapi_sessions.backends.sqlalchemy import SQLAlchemyBackend

ROOT = Path(__file__).resolve().parent.parent
TABLE = f"fs_cli_{uuid.uuid4().hex[:10]}"
PASSWORD = "cli-secret-password-42"
runner = CliRunner()


def run(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), input=input, env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def last_line(out: str) -> str:
    """The command's own last line (the runner echoes a confirmation's typed answer into stdout)."""
    return out.strip().splitlines()[-1]


def cli_process(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The command as a user runs it: a fresh interpreter, not a terminal."""
    return subprocess.run([sys.executable, "-m", "fastapi_sessions", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "COLUMNS": "120"}, check=False)


def record(user: str | None, *, ttl: float, age: float = 60) -> SessionRecord:
    now = utc_now()
    return SessionRecord(uuid.uuid4().hex * 2, b'{"n":1}', user, now - timedelta(seconds=age),
                         now + timedelta(seconds=ttl))


# -- an in-memory store the commands reach by URL ------------------------------------------------


@pytest.fixture
def store() -> Iterator[InMemoryBackend]:
    backend = InMemoryBackend()
    register_backend("clitest", lambda url, **options: backend)
    try:
        yield backend
    finally:
        unregister_backend("clitest")


def fill(store: InMemoryBackend, *records: SessionRecord) -> None:
    async def go() -> None:
        for r in records:
            await store.create(r, now=r.created_at)

    asyncio.run(go())


def test_help_everywhere() -> None:
    for command in ([], ["purge"], ["list"], ["revoke"], ["stats"], ["sql"], ["sql", "create-table"],
                    ["sql", "drop-table"], ["sql", "ddl"]):
        code, out, _ = run(*command, "--help")
        assert code == 0, command
        assert "Usage: fastapi-sessions" in out
    code, out, _ = run()
    assert code in (0, 2) and "purge" in out and "revoke" in out  # no arguments: the help


def test_stats_counts_live_and_expired(store: InMemoryBackend) -> None:
    fill(store, *(record("alice", ttl=600) for _ in range(3)), *(record(None, ttl=-1, age=600) for _ in range(2)))
    code, out, _ = run("stats", "clitest://")
    assert code == 0
    assert re.search(r"live\s+3\b", out) and re.search(r"expired\s+2 \(a purge removes them\)", out)
    code, out, _ = run("stats", "clitest://", "--json")
    assert json.loads(out) | {"at": None} == {"url": "clitest://", "at": None, "live": 3, "expired": 2}


def test_purge_in_batches_counts_and_keeps_live_sessions(store: InMemoryBackend) -> None:
    live = [record("alice", ttl=600) for _ in range(2)]
    fill(store, *live, *(record(None, ttl=-1, age=600) for _ in range(25)))
    code, out, err = run("purge", "clitest://", "--batch-size", "10")
    assert code == 0, err
    assert "25 expired at" in err
    # Not a terminal: a log line per tenth of the way, at most one per batch.
    assert re.findall(r"^purging: .*$", err, re.M) == ["purging: 10/25 (40%)", "purging: 20/25 (80%)",
                                                      "purging: 25/25 (100%)"]
    assert out.strip() == "purged 25 expired records from clitest://"
    assert sorted(store._records) == sorted(r.key for r in live)
    code, out, _ = run("purge", "clitest://")
    assert (code, out.strip()) == (0, "purged 0 expired records from clitest://")


def test_purge_shows_a_rich_progress_bar_on_a_terminal(store: InMemoryBackend) -> None:
    fill(store, *(record(None, ttl=-1, age=600) for _ in range(30)))
    terminal = {"TTY_COMPATIBLE": "1", "FORCE_COLOR": "1", "COLUMNS": "100"}  # rich 14 reads the first, 13 the second
    code, out, err = run("purge", "clitest://", "--batch-size", "7", env=terminal)
    assert code == 0, err
    assert "━" in err and "30/30" in err and "100%" in err
    assert "purging:" not in err  # the log lines are for logs; a terminal gets the bar
    assert "purged 30 expired records" in out


def test_a_backend_without_the_optional_methods_gets_one_purge_and_unknown_counts() -> None:
    class Plain(InMemoryBackend):
        """The contract only: no purge_expired_batch, no count_records (looked up statically, as isinstance does)."""

        purge_expired_batch = None
        count_records = None

    backend = Plain()
    register_backend("clitest", lambda url, **options: backend)
    try:
        fill(backend, *(record(None, ttl=-1, age=600) for _ in range(4)))
        code, out, err = run("purge", "clitest://")
        assert code == 0
        assert "one purge_expired() call" in err
        assert out.strip() == "purged 4 expired records from clitest://"
        code, out, _ = run("stats", "clitest://")
        assert code == 0 and re.search(r"live\s+unknown", out) and "Plain has no count_records()" in out
        assert json.loads(run("stats", "clitest://", "--json")[1])["live"] is None
    finally:
        unregister_backend("clitest")


def test_list_shows_a_users_live_sessions_oldest_first(store: InMemoryBackend) -> None:
    old, new = record("alice", ttl=600, age=3600), record("alice", ttl=1200, age=60)
    fill(store, new, old, record("bob", ttl=600), record("alice", ttl=-1, age=600))
    code, out, _ = run("list", "clitest://", "alice")
    assert code == 0
    assert "2 live sessions of 'alice' on clitest://" in out
    assert out.index(old.key[:12]) < out.index(new.key[:12])  # oldest first
    assert old.key not in out  # a prefix, not the whole key
    assert "created (UTC)" in out and old.created_at.strftime("%Y-%m-%d %H:%M:%S") in out
    assert new.expires_at.strftime("%Y-%m-%d %H:%M:%S") in out
    rows = json.loads(run("list", "clitest://", "alice", "--json")[1])
    assert [row["key"] for row in rows] == [old.key, new.key]
    assert run("list", "clitest://", "carol")[1].strip() == "'carol' has no live sessions on clitest://"


def test_revoke_asks_first_and_counts(store: InMemoryBackend) -> None:
    fill(store, record("alice", ttl=600), record("alice", ttl=600), record("bob", ttl=600))
    code, out, err = run("revoke", "clitest://", "alice", input="n\n")
    assert code == 1 and "End 2 live sessions of 'alice' on clitest://?" in err
    assert len(store) == 3  # refused: nothing ended
    code, out, _ = run("revoke", "clitest://", "alice", input="y\n")
    assert (code, last_line(out)) == (0, "revoked 2 sessions of 'alice' on clitest://")
    code, out, err = run("revoke", "clitest://", "bob", "--yes")
    assert (code, out.strip(), err) == (0, "revoked 1 session of 'bob' on clitest://", "")
    assert len(store) == 0
    assert run("revoke", "clitest://", "bob")[1].strip() == "'bob' has no live sessions on clitest://"


def test_errors_are_one_line_and_a_non_zero_exit() -> None:
    code, out, err = run("stats", "bogus://host")
    assert code == 1 and out == ""
    assert err.startswith("error: no session backend for bogus://") and err.count("\n") == 1
    code, _, err = run("stats", "memory://", "-o", "nonsense=1")  # the factory's TypeError, as a library error
    assert code == 1 and err.startswith("error: bad options for memory://")
    code, _, err = run("stats", "memory://", "-o", "no-equals-sign")
    assert code == 2 and "NAME=VALUE" in err
    code, _, _ = run("purge", "memory://", "--batch-size", "0")
    assert code == 2


def test_an_unexpected_error_is_one_line_too(store: InMemoryBackend) -> None:
    async def broken(user_id: str, *, now: object = None) -> list[SessionRecord]:
        raise ValueError(f"a bug that quotes clitest://u:{PASSWORD}@host")

    store.list_by_user = broken  # type: ignore[method-assign]
    code, _, err = run("list", f"clitest://u:{PASSWORD}@host", "alice")
    assert code == 1
    assert err == "error: unexpected ValueError: a bug that quotes clitest://u:***@host\n"


# -- PostgreSQL: the real thing -------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg(postgres_url: str) -> Iterator[str]:
    """The server's URL with a password in it (the server takes or ignores it), and this module's table."""
    url = make_url(postgres_url)
    with_password = url if url.password else url.set(password=PASSWORD)
    rendered = with_password.render_as_string(hide_password=False)
    yield rendered

    async def drop() -> None:
        async with SQLAlchemyBackend(rendered, table_name=TABLE) as backend:
            await backend.drop_table()

    asyncio.run(drop())


def secret_of(url: str) -> str:
    password = make_url(url).password
    assert password
    return str(password)


def bulk_insert(url: str, *, expired: int, live: int, user: str = "alice") -> None:
    """``expired`` expired rows and ``live`` live ones of ``user``, in one ``INSERT ... SELECT`` each."""

    async def go() -> None:
        async with SQLAlchemyBackend(url, table_name=TABLE, create_table=True) as backend:
            now_us = int(utc_now().timestamp() * 1_000_000)
            async with backend.engine.begin() as conn:
                await conn.execute(text(f"DELETE FROM {TABLE}"))
                insert = (f"INSERT INTO {TABLE} (key, payload, user_id, created_at, expires_at, version) "
                          "SELECT md5(:tag || i::text) || md5(i::text), '\\x7b7d'::bytea, :user, :created, "
                          ":expires, 1 FROM generate_series(1, :n) AS i")
                hour = 3_600_000_000
                await conn.execute(text(insert), {"tag": "x", "user": None, "created": now_us - 2 * hour,
                                                  "expires": now_us - hour, "n": expired})
                await conn.execute(text(insert), {"tag": "l", "user": user, "created": now_us - hour,
                                                  "expires": now_us + hour, "n": live})

    asyncio.run(go())


def rows(url: str) -> int:
    async def go() -> int:
        async with SQLAlchemyBackend(url, table_name=TABLE) as backend, backend.engine.connect() as conn:
            return int((await conn.execute(text(f"SELECT count(*) FROM {TABLE}"))).scalar_one())

    return asyncio.run(go())


def test_postgres_purge_of_100000_expired_sessions_shows_progress_and_counts(pg: str) -> None:
    bulk_insert(pg, expired=100_000, live=3)
    stats = cli_process("stats", pg, "-o", f"table_name={TABLE}")
    assert stats.returncode == 0, stats.stderr
    assert re.search(r"live\s+3\n", stats.stdout) and re.search(r"expired\s+100,000 ", stats.stdout)

    done = cli_process("purge", pg, "-o", f"table_name={TABLE}", timeout=600)
    assert done.returncode == 0, done.stderr
    progress = re.findall(r"^purging: ([\d,]+)/100,000 \((\d+)%\)$", done.stderr, re.M)
    assert [int(n.replace(",", "")) for n, _ in progress] == list(range(10_000, 100_001, 10_000))
    assert [int(p) for _, p in progress] == list(range(10, 101, 10))
    assert done.stderr.startswith("100,000 expired at ")
    assert done.stdout.strip().startswith("purged 100,000 expired records from postgresql+asyncpg://")
    assert rows(pg) == 3  # the live ones stayed
    for output in (stats.stdout, stats.stderr, done.stdout, done.stderr):
        assert secret_of(pg) not in output
    assert ":***@" in done.stdout


def test_postgres_list_revoke_and_table_commands_mask_the_password(pg: str) -> None:
    secret = secret_of(pg)
    lines: list[str] = []
    code, out, err = run("sql", "create-table", pg, "--table", TABLE)
    assert code == 0 and out.strip().endswith(f"ready on {make_url(pg).render_as_string()}")
    lines += [out, err]
    bulk_insert(pg, expired=5, live=2, user="alice")
    code, out, err = run("list", pg, "alice", "-o", f"table_name={TABLE}")
    assert code == 0 and "2 live sessions of 'alice'" in out
    lines += [out, err]
    code, out, err = run("revoke", pg, "alice", "-o", f"table_name={TABLE}", input="y\n")
    assert (code, last_line(out)) == (0, f"revoked 2 sessions of 'alice' on {make_url(pg).render_as_string()}")
    lines += [out, err]  # the confirmation question is on stderr
    code, out, err = run("sql", "ddl", pg, "--table", TABLE)
    assert code == 0 and f"CREATE TABLE {TABLE}" in out
    lines += [out, err]
    code, out, err = run("sql", "drop-table", pg, "--table", TABLE, input="n\n")
    assert code == 1 and rows(pg) == 5  # refused: still there
    lines += [out, err]
    assert all(secret not in line for line in lines)
    assert "***" in "".join(lines)


def test_postgres_errors_mask_the_password_and_exit_non_zero(pg: str) -> None:
    secret = secret_of(pg)
    down = make_url(pg).set(port=1).render_as_string(hide_password=False)  # nothing listens on port 1
    done = cli_process("stats", down)  # as a process: exactly what a terminal would show
    outcomes = [(done.returncode, done.stdout, done.stderr)]
    outcomes += [run(*command) for command in (["purge", down], ["list", down, "alice"], ["revoke", down, "alice"],
                                               ["sql", "create-table", down])]
    for code, out, err in outcomes:
        assert code == 1, err
        assert err.startswith("error: ") and err.count("\n") == 1, err
        assert "unavailable" in err and "Traceback" not in err
        assert secret not in err + out and f"({make_url(down).render_as_string()})" in err
    missing = cli_process("stats", pg, "-o", "table_name=fs_cli_no_such_table")
    assert missing.returncode == 1 and "create-table" in missing.stderr and secret not in missing.stderr


def test_redis_stats_say_what_they_mean_there(redis_url: str) -> None:
    code, out, _ = run("stats", redis_url)
    assert code == 0 and re.search(r"live\s+unknown", out) and "Redis expires sessions by itself" in out
    code, out, err = run("purge", redis_url)
    assert code == 0 and out.startswith("purged ") and "stale per-user index entries" in err


# -- packaging: the script, the extra, the old entry point ----------------------------------------


def test_the_console_script_is_main() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, attr = scripts["fastapi-sessions"].partition(":")
    assert getattr(import_module(module), attr) is import_module("fastapi_sessions._cli").main
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert {re.split(r"[<>=]", d)[0] for d in extras["cli"]} == {"typer", "rich"}
    assert "fastapi-sessions[cli]" in extras["test"]


def test_the_script_runs_as_a_process() -> None:
    done = subprocess.run([sys.executable, "-c", "from fastapi_sessions._cli import main; main()", "stats",
                           "memory://"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert re.search(r"live\s+0", done.stdout)


def test_without_the_extra_it_says_which_to_install() -> None:
    code = "import sys; sys.modules['typer'] = None; from fastapi_sessions._cli import main; main(['--help'])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert done.stderr.strip() == ('fastapi-sessions: the command line needs the "cli" extra (typer is not '
                                   'installed): pip install "fastapi-sessions[cli]"')


def test_the_sqlalchemy_module_entry_point_still_works(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "fastapi_sessions.backends.sqlalchemy", "create-table",
                           f"sqlite:///{tmp_path}/s.db"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"table 'fastapi_sessions' ready on sqlite:///{tmp_path}/s.db"
