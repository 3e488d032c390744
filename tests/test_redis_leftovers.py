"""A run of the conformance kit against Redis leaves no key without a TTL behind, even without cleanup."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

from redis import Redis

KIT_RUN = textwrap.dedent(
    """
    import os

    import pytest_asyncio

    from fastapi_sessions.backends.redis import RedisBackend
    from fastapi_sessions.testing import BackendConformance, Capability


    class TestKitWithoutCleanup(BackendConformance):
        capabilities = frozenset({Capability.READ_AND_TOUCH})

        @pytest_asyncio.fixture
        async def backend(self):
            # Every test of this run under one prefix, and nothing deleted afterwards.
            async with RedisBackend.from_url(os.environ["KIT_REDIS_URL"], prefix=os.environ["KIT_PREFIX"]) as backend:
                yield backend
    """
)


def test_a_kit_run_leaves_no_key_without_a_ttl(redis_url: str, tmp_path: Path) -> None:
    prefix = f"fs-kit-run-{uuid.uuid4().hex}:"
    (tmp_path / "test_kit_run.py").write_text(KIT_RUN)
    env = {**os.environ, "KIT_REDIS_URL": redis_url, "KIT_PREFIX": prefix}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
         str(tmp_path / "test_kit_run.py")],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    client = Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        assert keys, "the run wrote nothing under its prefix"
        without_ttl = [key for key in keys if client.pttl(key) == -1]
        kinds = {key: client.type(key) for key in without_ttl}
        if keys:
            client.delete(*keys)
    finally:
        client.close()
    assert without_ttl == [], f"{len(without_ttl)} keys without a TTL: {kinds}"
