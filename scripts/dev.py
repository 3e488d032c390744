#!/usr/bin/env python3
"""Development entry point: one command each to run the example app, the tests and the checks.

    python3 scripts/dev.py example   # the quick-start app on http://127.0.0.1:8000 (in-memory backend)
    python3 scripts/dev.py test      # the test suite (extra arguments go to pytest)
    python3 scripts/dev.py check     # ruff and mypy --strict

Each command first makes sure ``.venv`` exists with the package installed in
editable mode and the extras it needs; that step is skipped when nothing
changed since the last run. Only the standard library is used here, so a fresh
clone and Python 3.11+ are enough.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")

# What each command needs installed: pip arguments, editable installs of this project first.
FULL = ("-e", ".[all,test]", "./examples/plugin")
EXTRAS: dict[str, tuple[str, ...]] = {
    "example": ("-e", ".[orjson]"),
    "test": FULL,
    "check": FULL,
}


def ensure_env(requirement: tuple[str, ...]) -> None:
    """Create ``.venv`` and install ``requirement`` unless an identical install is recorded."""
    if sys.version_info < (3, 11):  # noqa: UP036 - this script may be started by an older Python
        sys.exit(f"fastapi-sessions needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    if not PYTHON.exists():
        print(f"creating {VENV.name} with Python {sys.version.split()[0]}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    stamp = VENV / ".fastapi-sessions-installed"
    sources = [ROOT / "pyproject.toml", ROOT / "examples" / "plugin" / "pyproject.toml"]
    fingerprint = hashlib.sha256(b"".join(path.read_bytes() for path in sources)).hexdigest()
    done = set(stamp.read_text().split()) if stamp.exists() else set()
    wanted = f"{fingerprint}:{'+'.join(requirement)}"
    # The full install covers the smaller one.
    if wanted in done or f"{fingerprint}:{'+'.join(FULL)}" in done:
        return
    print(f"installing {' '.join(requirement)} into {VENV.name}", flush=True)
    subprocess.run(
        [str(PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         *requirement, "uvicorn>=0.30"],
        cwd=ROOT, check=True,
    )
    done = {entry for entry in done if entry.startswith(fingerprint)} | {wanted}
    stamp.write_text("\n".join(sorted(done)) + "\n")


def run(*args: str) -> int:
    return subprocess.run([str(PYTHON), *args], cwd=ROOT).returncode


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in EXTRAS:
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    ensure_env(EXTRAS[command])
    if command == "example":
        host = os.environ.get("HOST", "127.0.0.1")
        port = os.environ.get("PORT", "8000")
        return run("-m", "uvicorn", "examples.quickstart:app", "--host", host, "--port", port, *rest)
    if command == "test":
        return run("-m", "pytest", *rest)
    status = run("-m", "ruff", "check", "src", "tests", "examples", "benchmarks", "scripts")
    return run("-m", "mypy") or status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
