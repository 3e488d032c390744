"""The Typer application behind ``fastapi-sessions``: one function per command, output through Rich.

Every line printed goes through a :class:`Scrubber` of the URL, so a password
never reaches the terminal. A ``SessionError`` (an unknown scheme, a store
that is down, a missing table) is one ``error:`` line on stderr and exit
status 1; a refused confirmation is status 1 too; bad usage is Click's 2.
Progress goes to stderr, results to stdout.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import nullcontext
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import click
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from .._core.clock import utc_now
from .._core.contract import SessionBackend
from .._core.records import RecordCounts
from .._core.registry import from_url
from ..errors import SessionError
from . import _run
from ._run import Scrubber

if TYPE_CHECKING:
    from ..backends.sqlalchemy._cli import TableCommand

__all__ = ["app"]

T = TypeVar("T")

app = typer.Typer(
    name="fastapi-sessions",
    help="Operate a fastapi-sessions store: purge expired sessions, list or revoke a user's, count them, "
    "manage the SQL table. URL is the backend URL the application uses (redis://, postgresql://, mongodb://, ...).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,  # its tracebacks show local variables: the URL, password included
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
sql = typer.Typer(
    help="The SQL backend's table: create it, drop it, or print its DDL.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
app.add_typer(sql, name="sql")

Url = Annotated[str, typer.Argument(metavar="URL", show_default=False,
                                    help="backend URL, e.g. postgresql://user@host/db (passwords are masked "
                                         "in all output)")]
User = Annotated[str, typer.Argument(metavar="USER", show_default=False, help="the user id the application logs in")]
Options = Annotated[list[str] | None, typer.Option(
    "--option", "-o", metavar="NAME=VALUE", show_default=False,
    help="a keyword option for the backend's factory, e.g. -o table_name=web_sessions (repeatable)")]
AsJson = Annotated[bool, typer.Option("--json", help="print JSON instead of text")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")]
Table_ = Annotated[str, typer.Option("--table", help="table name")]
Schema = Annotated[str | None, typer.Option("--schema", show_default=False,
                                            help="schema (PostgreSQL) or database (MySQL) of the table")]


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"fastapi-sessions {version('fastapi-sessions')}")
        except PackageNotFoundError:  # run from a source tree
            typer.echo("fastapi-sessions (not installed)")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                               help="print the version and exit")] = False,
) -> None:
    """Operate a fastapi-sessions store."""


# -- plumbing ------------------------------------------------------------------------------


def _consoles() -> tuple[Console, Console]:
    """Consoles for this run (stdout, stderr): made per command, so they see the streams and terminal it has."""
    return Console(highlight=False, soft_wrap=True), Console(stderr=True, highlight=False, soft_wrap=True)


def _fail(message: str, code: int = 1) -> NoReturn:
    _consoles()[1].print(Text(message))
    raise typer.Exit(code)


def _options(pairs: list[str] | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs or ():
        name, sep, value = pair.partition("=")
        if not sep or not name.isidentifier():
            raise typer.BadParameter(f"expected NAME=VALUE, got {pair.split('=', 1)[0]!r}...",
                                     param_hint="'--option'")
        options[name] = value
    return options


def _run_async(scrub: Scrubber, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``work``; a library error becomes one scrubbed ``error:`` line and exit status 1."""
    try:
        return asyncio.run(work())
    except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
        raise
    except SessionError as exc:
        message = scrub(f"error: {exc}")
        _fail(message if scrub.masked in message else f"{message} ({scrub.masked})")
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Exception as exc:  # a bug or an unmapped driver error: still one line, still no password
        _fail(scrub(f"error: unexpected {type(exc).__name__}: {exc}"))


async def _with_backend(url: str, options: dict[str, Any], use: Callable[[SessionBackend], Awaitable[T]]) -> T:
    """``use(backend)`` on the backend ``url`` names, closed afterwards."""
    backend = from_url(url, **options)
    try:
        return await use(backend)
    finally:
        await backend.aclose()


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S UTC")


def _span(delta: timedelta) -> str:
    seconds = max(int(delta.total_seconds()), 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else "", f"{minutes}m" if minutes and not days else "",
             f"{seconds}s" if not (days or hours or minutes) else ""]
    return " ".join(p for p in parts if p)


# -- commands ------------------------------------------------------------------------------


@app.command()
def purge(
    url: Url,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="records removed per step")] = 1000,
    option: Options = None,
) -> None:
    """Remove the expired sessions from the store, in batches, with a progress bar and a final count."""
    scrub, options = Scrubber(url), _options(option)
    out, err = _consoles()
    now = utc_now()  # one cut-off: the count, every batch and the report judge by it
    interactive = err.is_terminal
    progress = Progress(TextColumn("purging"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(), console=err,
                        disable=not interactive)
    task: list[TaskID] = []
    state = {"done": 0, "shown": 0, "total": 0}

    def started(expected: int | None, batched: bool) -> None:
        state["total"] = expected or 0
        if not batched:
            err.print(Text("one purge_expired() call: this backend has no batched purge"))
        elif expected is not None:
            err.print(Text(f"{expected:,} expired at {_when(now)}"))
        task.append(progress.add_task("purge", total=expected))

    def advanced(removed: int) -> None:
        progress.advance(task[0], removed)
        state["done"] += removed
        if not interactive:  # a log, not a live bar: a line each tenth of the way (or each 10 batches)
            total, done = state["total"], state["done"]
            step = max(total // 10, 1) if total else 10 * batch_size
            if done - state["shown"] >= step or (total and done >= total):
                state["shown"] = done
                shown = f"{done:,}/{total:,} ({100 * done // total}%)" if total else f"{done:,} removed"
                err.print(Text(f"purging: {shown}"))

    async def work() -> _run.PurgeReport:
        async def use(backend: SessionBackend) -> _run.PurgeReport:
            with progress if interactive else nullcontext():  # a log gets lines, not a bar
                report = await _run.purge(backend, now, batch_size=batch_size, started=started, advanced=advanced)
            note = _run.native_expiry_note(backend)
            if note:
                err.print(Text(note))
            return report

        return await _with_backend(url, options, use)

    report = _run_async(scrub, work)
    out.print(Text(scrub(f"purged {report.removed:,} expired record{'s' if report.removed != 1 else ''} "
                         f"from {scrub.masked}")))


@app.command("list")
def list_sessions(url: Url, user: User, as_json: AsJson = False, option: Options = None) -> None:
    """Show a user's live sessions: key prefix, created, expires (oldest first)."""
    scrub, options = Scrubber(url), _options(option)
    out, _ = _consoles()
    now = utc_now()
    infos = _run_async(scrub, lambda: _with_backend(url, options, lambda b: _run.user_sessions(b, user, now)))
    if as_json:
        rows = [{"key": i.key, "user_id": i.user_id, "created_at": i.created_at.isoformat(),
                 "expires_at": i.expires_at.isoformat()} for i in infos]
        out.print(Text(json.dumps(rows, ensure_ascii=False)))
        return
    if not infos:
        out.print(Text(scrub(f"{user!r} has no live sessions on {scrub.masked}")))
        return
    table = Table(title=Text(scrub(f"{len(infos)} live session{'s' if len(infos) != 1 else ''} of {user!r} "
                                   f"on {scrub.masked}")), title_justify="left")
    for column in ("session", "created (UTC)", "expires (UTC)", "left"):
        table.add_column(column, no_wrap=True)
    for info in infos:
        table.add_row(Text(info.key[:12] + "…"), Text(_when(info.created_at)[:-4]), Text(_when(info.expires_at)[:-4]),
                      Text(_span(info.expires_at - now)))
    out.print(table)


@app.command()
def revoke(url: Url, user: User, yes: Yes = False, option: Options = None) -> None:
    """End every session of a user ("log out everywhere"); prints how many ended."""
    scrub, options = Scrubber(url), _options(option)
    out, _ = _consoles()
    now = utc_now()

    async def work() -> int | None:
        async def use(backend: SessionBackend) -> int | None:
            live = await _run.user_sessions(backend, user, now)
            if not live:
                return None
            if not yes:
                typer.confirm(scrub(f"End {len(live)} live session{'s' if len(live) != 1 else ''} of {user!r} on "
                                    f"{scrub.masked}?"), abort=True, err=True)
            return await backend.delete_by_user(user, now=utc_now())

        return await _with_backend(url, options, use)

    ended = _run_async(scrub, work)
    if ended is None:
        out.print(Text(scrub(f"{user!r} has no live sessions on {scrub.masked}")))
    else:
        out.print(Text(scrub(f"revoked {ended:,} session{'s' if ended != 1 else ''} of {user!r} on {scrub.masked}")))


@app.command()
def stats(url: Url, as_json: AsJson = False, option: Options = None) -> None:
    """Count live and expired records, where the backend can tell (it says so where it cannot)."""
    scrub, options = Scrubber(url), _options(option)
    out, _ = _consoles()
    now = utc_now()

    async def use(backend: SessionBackend) -> tuple[RecordCounts | None, str | None, str]:
        return await _run.counts(backend, now), _run.native_expiry_note(backend), type(backend).__name__

    found, note, kind = _run_async(scrub, lambda: _with_backend(url, options, use))
    why = note or f"{kind} has no count_records()"
    if as_json:
        body = {"live": None, "expired": None, "note": why} if found is None else {
            "live": found.live, "expired": found.expired}
        out.print(Text(json.dumps({"url": scrub.masked, "at": now.isoformat(), **body})))
        return
    out.print(Text(scrub(f"records on {scrub.masked} at {_when(now)}")))
    if found is None:
        out.print(Text(f"  live     unknown\n  expired  unknown\n({why})"))
    else:
        out.print(Text(f"  live     {found.live:,}\n  expired  {found.expired:,}"
                       + (" (a purge removes them)" if found.expired else "")))


# -- the SQL table ---------------------------------------------------------------------------


def _table(command: TableCommand, url: str, table: str, schema: str | None) -> None:
    scrub = Scrubber(url)
    try:
        from ..backends.sqlalchemy._cli import table_command
    except ModuleNotFoundError as exc:
        _fail(f'error: the sql commands need SQLAlchemy ({exc.name} is not installed): pip install '
              f'"fastapi-sessions[postgres]" (or [sqlite], [mysql])')
    text = _run_async(scrub, lambda: table_command(command, url, table=table, schema=schema))
    _consoles()[0].print(Text(scrub(text)))


@sql.command("create-table")
def create_table(url: Url, table: Table_ = "fastapi_sessions", schema: Schema = None) -> None:
    """Create the sessions table and its indexes if they are missing (idempotent)."""
    _table("create-table", url, table, schema)


@sql.command("drop-table")
def drop_table(url: Url, table: Table_ = "fastapi_sessions", schema: Schema = None, yes: Yes = False) -> None:
    """Drop the sessions table and every session in it."""
    if not yes:
        scrub = Scrubber(url)
        typer.confirm(scrub(f"Drop the table {table!r} and every session in it on {scrub.masked}?"),
                      abort=True, err=True)
    _table("drop-table", url, table, schema)


@sql.command("ddl")
def print_ddl(url: Url, table: Table_ = "fastapi_sessions", schema: Schema = None) -> None:
    """Print the CREATE TABLE and CREATE INDEX statements for the URL's database (connects to nothing)."""
    _table("ddl", url, table, schema)

