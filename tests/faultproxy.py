"""A loopback TCP proxy for fault tests: forwards to a real server, black-holes on demand.

``black_hole()`` stops moving bytes and keeps every socket open: no RST, no
FIN, as when a failover strands its clients or a NAT entry is lost. The
connections open at that moment stay silent for good, also after
``restore()`` (their path is gone); connections made during the hole are
accepted (the kernel completes the handshake) and get no byte until
``restore()``, as a client retransmitting its SYN would connect once the path
is back. ``cut()`` resets every connection and stops listening, like a
crashed server; ``restore()`` listens again on the same port. ``aclose()``
closes every socket the proxy holds.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Self


class FaultProxy:
    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._generation = 0  # connections of an older generation went down a black hole
        self._closing = asyncio.Event()
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> Self:
        self._server = await asyncio.start_server(self._accepted, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            await self._flowing.wait()  # a black hole answers no new connection either
            generation = self._generation  # before connecting: a hole opened meanwhile swallows this one too
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
            except OSError:
                return
            self._writers.add(up_writer)
            try:
                await asyncio.gather(self._pipe(reader, up_writer, generation),
                                     self._pipe(up_reader, writer, generation))
            finally:
                self._close(up_writer)
        finally:
            self._close(writer)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, generation: int) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while generation == self._generation:
                data = await reader.read(65536)
                if generation != self._generation:
                    break  # swallowed by the hole
                if not data:
                    self._close(writer)
                    return
                writer.write(data)
                await writer.drain()
            await self._closing.wait()  # silent, open, until the proxy closes
        self._close(writer)

    def _close(self, writer: asyncio.StreamWriter) -> None:
        self._writers.discard(writer)
        writer.close()

    def black_hole(self) -> None:
        """Stop forwarding; every socket stays open and silent (see the module docstring)."""
        self._flowing.clear()
        self._generation += 1

    async def cut(self) -> None:
        """Reset every connection and stop listening, as a crashed server would."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        await self._drain_tasks()

    async def restore(self) -> None:
        """Forward again (after a black hole) and listen again (after a cut)."""
        self._flowing.set()
        if self._server is None:
            await self.start()

    async def _drain_tasks(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def aclose(self) -> None:
        self._closing.set()
        self._flowing.set()
        await self.cut()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
