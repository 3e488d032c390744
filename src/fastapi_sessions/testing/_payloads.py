"""Payloads are opaque bytes: every byte value, and a mebibyte, come back exactly."""

from __future__ import annotations

import os

import pytest

from .._core.contract import SessionBackend
from ._base import KitBase, in_own_loop
from ._rules import broke, show

__all__ = ["PayloadTests"]


class PayloadTests(KitBase):
    @in_own_loop
    async def test_payload_of_one_mebibyte_round_trips(self, backend: SessionBackend) -> None:
        payload = os.urandom(1024 * 1024)
        record = self.record(payload=payload)
        await backend.create(record, now=self.now())
        got = await backend.read(record.key, now=self.now())
        assert got is not None and got.payload == payload, broke("payload-opaque", f"read {show(got)}")
        bigger = payload[::-1]
        await backend.update(self._with(record, bigger), expected_version=1, now=self.now())
        got = await backend.read(record.key, now=self.now())
        assert got is not None and got.payload == bigger, broke("payload-opaque", f"after update read {show(got)}")

    @in_own_loop
    @pytest.mark.parametrize(
        "payload",
        [b"", bytes(range(256)), b"\x00\x00", '{"k":"ünï\'\\"$.{}"}'.encode(), b'{"$set":{"a.b":1}}'],
        ids=["empty", "all-bytes", "nuls", "unicode-quotes", "operator-like"],
    )
    async def test_payload_bytes_are_opaque(self, backend: SessionBackend, payload: bytes) -> None:
        record = self.record(payload=payload)
        await backend.create(record, now=self.now())
        got = await backend.read(record.key, now=self.now())
        assert got is not None and got.payload == payload, broke("payload-opaque", f"stored {payload!r}, read "
                                                                                    f"{show(got)}")
