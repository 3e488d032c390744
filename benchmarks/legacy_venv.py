"""Main-process side for fastapi-sessions 0.3.2: build its virtualenv, run
legacy_032.py in it and read the JSON it prints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
VENV_DIR = HERE / ".venvs" / "fastapi-sessions-0.3.2"
LEGACY_REQUIREMENT = "fastapi-sessions==0.3.2"
# Pinned to the versions in the running environment so the 0.3.2 rows and
# their bare baseline run on the same FastAPI stack as the other contenders.
PINNED = ("fastapi", "starlette", "pydantic", "pydantic-core", "anyio", "itsdangerous")


@dataclass
class LegacyOutcome:
    results: list[dict[str, Any]] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    error: str | None = None  # why nothing could be measured at all


def _venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _requirements() -> list[str]:
    reqs = [LEGACY_REQUIREMENT]
    for pkg in PINNED:
        try:
            reqs.append(f"{pkg}=={version(pkg)}")
        except PackageNotFoundError:
            reqs.append(pkg)
    return reqs


def _child_env() -> dict[str, str]:
    # Never let the project's own fastapi_sessions leak into the child.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def ensure_venv(venv: Path | None = None, log: Any = sys.stderr) -> Path:
    """Create (or reuse) the virtualenv; raise RuntimeError with pip's output on failure."""
    venv = venv or VENV_DIR
    python = _venv_python(venv)
    reqs = _requirements()
    marker = venv / "bench-requirements.txt"
    wanted = "\n".join(reqs) + "\n"
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    print(f"building {venv} with: {' '.join(reqs)}", file=log)
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(venv)],
        [str(python), "-m", "pip", "install", "--quiet", *reqs],
    ]
    for cmd in steps:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=_child_env(), timeout=900)
        if proc.returncode != 0:
            output = proc.stderr.strip() or proc.stdout.strip()
            raise RuntimeError(f"`{' '.join(cmd[:4])} ...` failed ({proc.returncode}):\n{output}")
    marker.write_text(wanted)
    return python


def run_legacy(requests: int, repeats: int, warmup: int, log: Any = sys.stderr) -> LegacyOutcome:
    """Never raises: any problem is returned in `error` so the caller can go on."""
    try:
        python = ensure_venv(log=log)
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        return LegacyOutcome(error=f"could not build the 0.3.2 virtualenv: {exc}")
    # -E: ignore PYTHONPATH & co, -s: no user site-packages. The script's own
    # directory (benchmarks/) stays on sys.path, which is how it finds harness.py.
    cmd = [
        str(python),
        "-E",
        "-s",
        str(HERE / "legacy_032.py"),
        "--requests",
        str(requests),
        "--repeats",
        str(repeats),
        "--warmup",
        str(warmup),
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=_child_env(), cwd=HERE)
    except OSError as exc:
        return LegacyOutcome(error=f"could not start the 0.3.2 subprocess: {exc}")
    if proc.returncode != 0:
        return LegacyOutcome(error=f"0.3.2 subprocess exited with {proc.returncode}:\n{proc.stderr.strip()}")
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        return LegacyOutcome(error=f"0.3.2 subprocess printed no JSON:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return LegacyOutcome(data["results"], data["failures"], data["versions"])
