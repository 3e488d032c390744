"""Side-by-side per-request cost of session libraries for FastAPI.

    python benchmarks/run.py [--requests N] [--repeats R] [--warmup W] [--json out.json] [--no-legacy]
                             [--suite memory|NAME ...]

``--suite memory`` (the default) compares in-memory session layers; a server
suite ``NAME`` is the module ``suite_NAME.py`` beside this file, whose
``build()`` returns its contenders, floors included (see README.md).

Calls each ASGI app in-process (no network, no TestClient) and prints a
Markdown table; see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

# Sibling modules are imported flat: this directory is sys.path[0] when the
# script runs, and legacy_032.py imports them the same way in its own venv.
from apps import BUILDERS
from baseline import bare_contender
from harness import BARE, Contender, run
from legacy_venv import run_legacy
from report import add_floor_ratios, add_overheads, add_ratios, markdown_table, notes, server_table

LEGACY_BARE = "bare FastAPI (0.3.2 venv)"


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for pkg in ("fastapi", "starlette", "pydantic", "starsessions", "fastapi-sessions"):
        try:
            found[pkg] = version(pkg)
        except PackageNotFoundError:
            found[pkg] = "not installed"
    return found


def _build() -> tuple[list[Contender], dict[str, str]]:
    contenders = [bare_contender()]
    skipped: dict[str, str] = {}
    for name, build in BUILDERS.items():
        try:
            contenders.append(build())
        except Exception as exc:  # e.g. our package not installed yet
            skipped[name] = f"{type(exc).__name__}: {exc}"
    return contenders, skipped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20_000, help="timed requests per repeat (default 20000)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats; the median is reported (default 5)")
    parser.add_argument("--warmup", type=int, default=2_000, help="untimed requests per workload first (default 2000)")
    parser.add_argument("--json", type=Path, help="also write all raw results here")
    parser.add_argument("--no-legacy", action="store_true", help="skip fastapi-sessions 0.3.2 (no venv, no subprocess)")
    parser.add_argument(
        "--suite", action="append", help="memory (default) or a server suite such as redis; may be repeated"
    )
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", DeprecationWarning)  # keep the table readable
    suites = args.suite or ["memory"]
    status = 0
    for suite in suites:
        if suite != "memory":
            status |= run_server_suite(suite, args)
    if "memory" not in suites:
        return status

    started = time.perf_counter()
    contenders, skipped = _build()
    print(f"timing {', '.join(c.name for c in contenders)} ...", file=sys.stderr)
    outcome = run(contenders, args.requests, args.repeats, args.warmup)
    results = outcome.results
    failures = dict(outcome.failures)
    add_overheads(results, BARE)

    legacy_versions: dict[str, str] = {}
    if args.no_legacy:
        skipped["fastapi-sessions 0.3.2"] = "--no-legacy"
    else:
        print("timing fastapi-sessions 0.3.2 in its own virtualenv ...", file=sys.stderr)
        legacy = run_legacy(args.requests, args.repeats, args.warmup)
        if legacy.error:
            skipped["fastapi-sessions 0.3.2"] = legacy.error
        for r in legacy.results:
            if r["contender"] == BARE:
                r["contender"] = LEGACY_BARE
        add_overheads(legacy.results, LEGACY_BARE)
        results += legacy.results
        failures.update(legacy.failures)
        legacy_versions = legacy.versions
    add_ratios(results)

    cfg = f"{args.requests} requests x {args.repeats} repeats (median of repeats), {args.warmup} warm-up requests"
    print(f"## Session middleware overhead: in-process ASGI, {cfg}\n")
    print(markdown_table(results))
    print()
    for line in notes(results):
        print(f"- {line}")
    versions = _versions()
    print(f"- versions: {', '.join(f'{k} {v}' for k, v in versions.items())}")
    if legacy_versions:
        print(f"- 0.3.2 venv: {', '.join(f'{k} {v}' for k, v in legacy_versions.items())}")
    for name, why in skipped.items():
        print(f"- SKIPPED {name}: {why}")
    for name, trace in failures.items():
        print(f"- FAILED {name}:\n\n```\n{trace.rstrip()}\n```")
    print(f"\n(total wall time {time.perf_counter() - started:.0f} s)", file=sys.stderr)

    if args.json:
        payload: dict[str, Any] = {
            "config": vars(args) | {"json": str(args.json)},
            "versions": versions,
            "legacy_versions": legacy_versions,
            "results": results,
            "skipped": skipped,
            "failures": failures,
        }
        args.json.write_text(json.dumps(payload, indent=2, ensure_ascii=False))
    return 1 if failures or status else 0


def run_server_suite(name: str, args: argparse.Namespace) -> int:
    """Time one server suite and print its table: times, floors, and the peer comparison."""
    module = importlib.import_module(f"suite_{name}")
    contenders = [bare_contender(), *module.build()]
    print(f"timing suite {name}: {', '.join(c.name for c in contenders)} ...", file=sys.stderr)
    outcome = run(contenders, args.requests, args.repeats, args.warmup)
    add_overheads(outcome.results, BARE)
    floors = {c.name: c.floor for c in contenders if c.floor}
    peers = {c.name: c.peer for c in contenders if c.peer}
    add_floor_ratios(outcome.results, floors, peers)
    cfg = f"{args.requests} requests x {args.repeats} repeats (median of repeats), {args.warmup} warm-up requests"
    print(f"## {getattr(module, 'TITLE', name)}: in-process ASGI, {cfg}\n")
    print(server_table(outcome.results))
    print()
    for line in notes(outcome.results):
        print(f"- {line}")
    for contender, why in getattr(module, "SKIPPED", {}).items():
        print(f"- SKIPPED {contender}: {why}")
    for contender, trace in outcome.failures.items():
        print(f"- FAILED {contender}:\n\n```\n{trace.rstrip()}\n```")
    if args.json:
        path = args.json.with_name(f"{args.json.stem}-{name}{args.json.suffix}")
        path.write_text(json.dumps({"suite": name, "results": outcome.results, "failures": outcome.failures},
                                   indent=2, ensure_ascii=False, default=str))
    print()
    return 1 if outcome.failures else 0


if __name__ == "__main__":
    sys.exit(main())
