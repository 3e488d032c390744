#!/usr/bin/env python3
"""Development entry point: one command each to run the example app, the tests and the checks.

    python3 scripts/dev.py example       # the quick-start app on http://127.0.0.1:8000 (in-memory backend)
    python3 scripts/dev.py test          # the test suite (extra arguments go to pytest)
    python3 scripts/dev.py test-lowest   # the suite on the lowest versions pyproject.toml allows
    python3 scripts/dev.py check         # ruff and mypy --strict

Each command first makes sure a virtual environment exists with the package
installed in editable mode and the extras it needs; that step is skipped when
nothing changed since the last run. The environment is ``.venv`` (``.venv-lowest``
for ``test-lowest``); set ``FASTAPI_SESSIONS_VENV`` to keep one per Python, e.g.
``FASTAPI_SESSIONS_VENV=.venv-3.13 python3.13 scripts/dev.py test``. The install
uses ``uv`` when it is on ``PATH``, else pip.

``test`` looks for the test servers on their default loopback ports (Redis 6379,
Redis Cluster 7000, Valkey 6390, Valkey Cluster 7100, PostgreSQL 5432, MariaDB/MySQL
3306, MongoDB 27017) unless a
``FASTAPI_SESSIONS_TEST_*`` variable names one, and prints which backends run and
which are skipped, and why. Only the standard library is used here, so a fresh
clone and Python 3.11+ are enough.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN_DIR = "Scripts" if os.name == "nt" else "bin"

# What each command needs installed: pip arguments, editable installs of this project first.
FULL = ("-e", ".[all,test]", "-e", "./examples/plugin")
EXTRAS: dict[str, tuple[str, ...]] = {
    "example": ("-e", ".[orjson]"),
    "test": FULL,
    "test-lowest": FULL,
    "check": FULL,
}
# Extras whose requirements are tools, not what the package runs on: never pinned to their floor.
TOOL_EXTRAS = {"test", "testing", "all"}


def venv_dir(command: str) -> Path:
    chosen = os.environ.get("FASTAPI_SESSIONS_VENV")
    if chosen:
        return (ROOT / chosen).resolve()
    return ROOT / (".venv-lowest" if command == "test-lowest" else ".venv")


def python_in(env: Path) -> Path:
    return env / BIN_DIR / ("python.exe" if os.name == "nt" else "python")


def floor_pins() -> list[str]:
    """``name==floor`` for every runtime requirement of the package and of its driver extras."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra, items in project["optional-dependencies"].items():
        if extra not in TOOL_EXTRAS:
            requirements += [item for item in items if not item.startswith("fastapi-sessions")]
    pins: dict[str, str] = {}
    for requirement in requirements:
        match = re.match(r"\s*([A-Za-z0-9_.-]+)(\[[^\]]*\])?\s*([^;]*)", requirement)
        assert match, requirement
        name, specifiers = match.group(1).lower(), match.group(3)
        floor = re.search(r">=\s*([0-9][^,\s]*)", specifiers)
        if floor is None:
            sys.exit(f"{requirement!r} in pyproject.toml has no '>=' floor to test")
        pins[name] = f"{name}=={floor.group(1)}"
    return sorted(pins.values())


def ensure_env(env: Path, requirement: tuple[str, ...], pins: list[str]) -> None:
    """Create ``env`` and install ``requirement`` (held to ``pins``) unless that install is recorded."""
    if sys.version_info < (3, 11):  # noqa: UP036 - this script may be started by an older Python
        sys.exit(f"fastapi-sessions needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    python = python_in(env)
    version = ".".join(map(str, sys.version_info[:2]))
    config = env / "pyvenv.cfg"
    if python.exists() and config.exists():
        made_with = re.search(r"^version(?:_info)?\s*=\s*(\d+\.\d+)", config.read_text(), re.MULTILINE)
        if made_with and made_with.group(1) != version:
            sys.exit(
                f"{env.name} was made with Python {made_with.group(1)}, this is Python {version}: "
                f"remove it, or keep both with FASTAPI_SESSIONS_VENV={env.name}-{version}"
            )
    if not python.exists():
        print(f"creating {env.name} with Python {sys.version.split()[0]}", flush=True)
        venv.EnvBuilder(with_pip=True).create(env)
    stamp = env / ".fastapi-sessions-installed"
    sources = [ROOT / "pyproject.toml", ROOT / "examples" / "plugin" / "pyproject.toml"]
    # The checkout's path is part of it: an editable install points at one checkout, so a venv shared by
    # several (FASTAPI_SESSIONS_VENV) must be reinstalled when another one uses it.
    fingerprint = hashlib.sha256(
        b"".join(path.read_bytes() for path in sources) + str(ROOT).encode()
    ).hexdigest()
    done = set(stamp.read_text().split()) if stamp.exists() else set()
    wanted = f"{fingerprint}:{'+'.join(requirement)}"
    # The full install covers the smaller one.
    if wanted in done or f"{fingerprint}:{'+'.join(FULL)}" in done:
        return
    arguments = [*requirement, "uvicorn>=0.30"]
    if pins:
        constraints = env / "floors.txt"
        constraints.write_text("\n".join(pins) + "\n")
        arguments += ["--constraint", str(constraints)]
        print(f"lowest allowed versions: {' '.join(pins)}", flush=True)
    uv = shutil.which("uv")
    if uv:
        command = [uv, "pip", "install", "--python", str(python), *arguments]
    else:
        command = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "on",
                   *arguments]
    print(f"installing {' '.join(requirement)} into {env.name} with {'uv' if uv else 'pip'}", flush=True)
    subprocess.run(command, cwd=ROOT, check=True)
    done = {entry for entry in done if entry.startswith(fingerprint)} | {wanted}
    stamp.write_text("\n".join(sorted(done)) + "\n")


def find_servers(python: Path) -> dict[str, str]:
    """Environment additions for the test servers found on loopback; prints one line about every backend."""
    found = subprocess.run(
        [str(python), str(ROOT / "scripts" / "find_servers.py")], cwd=ROOT, capture_output=True, text=True, check=True
    )
    report = json.loads(found.stdout)
    print(report["summary"], flush=True)
    return dict(report["environment"])


def replace_process(python: Path, args: list[str], environment: dict[str, str] | None = None) -> int:
    """Become ``python args``, so signals sent to this PID reach it (no child left running)."""
    env = {**os.environ, **(environment or {})}
    argv = [str(python), *args]
    os.chdir(ROOT)
    if os.name == "nt":  # no exec that keeps the PID there: wait for the child instead
        return subprocess.run(argv, env=env).returncode
    os.execve(argv[0], argv, env)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in EXTRAS:
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    env = venv_dir(command)
    ensure_env(env, EXTRAS[command], floor_pins() if command == "test-lowest" else [])
    python = python_in(env)
    if command == "example":
        host = os.environ.get("HOST", "127.0.0.1")
        port = os.environ.get("PORT", "8000")
        return replace_process(python, ["-m", "uvicorn", "examples.quickstart:app", "--host", host, "--port", port,
                                        *rest])
    if command in ("test", "test-lowest"):
        return replace_process(python, ["-m", "pytest", *rest], find_servers(python))
    status = subprocess.run([str(python), "-m", "ruff", "check", "src", "tests", "examples", "benchmarks", "scripts"],
                            cwd=ROOT).returncode
    return subprocess.run([str(python), "-m", "mypy"], cwd=ROOT).returncode or status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
