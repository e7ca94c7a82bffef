"""GETs asked in one turn of the event loop go to Redis together: one pipeline (one write, one read), each key
once.

Under load a replica's requests arrive in bursts: every connection that became readable in the same poll is
handled in the same turn. Sent one by one, their GETs cost a write, a read and a wake-up each, on both sides;
sent together they cost one of each. Only GETs asked before the batch is sent share it (nothing joins a GET
already on its way), so each answer is Redis's value at a moment after the request was asked, as a GET of its
own would be.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Sequence

from proxy.core.errors import StoreError
from proxy.redis.connection import RedisConnection

MAX_BATCH = 128  # keys per pipeline: a bigger burst is sent as several

Waiters = dict[str, list["asyncio.Future[bytes | None]"]]


class BatchedGets:
    """`get(name)` as one GET of a pipeline sent at the end of the current turn. Raises StoreError."""

    def __init__(self, conn: RedisConnection, timeout: float, max_batch: int = MAX_BATCH) -> None:
        self._conn = conn
        self._timeout = timeout
        self._max_batch = max_batch
        self._waiting: Waiters = {}
        self._sending: set[asyncio.Task[None]] = set()  # referenced until done (the loop keeps weak ones)

    async def get(self, name: str) -> bytes | None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes | None] = loop.create_future()
        waiting = self._waiting
        if not waiting:
            loop.call_soon(self._flush)  # after every request handled in this turn has asked
        waiters = waiting.get(name)
        if waiters is None:
            waiting[name] = [future]
            if len(waiting) >= self._max_batch:
                self._flush()
        else:
            waiters.append(future)
        return await future  # cancelled: only this waiter's future is; the batch goes on for the others

    def _flush(self) -> None:
        waiting, self._waiting = self._waiting, {}
        if waiting:
            # A context of its own: the batch holds its own connection permit (RedisConnection.translated),
            # not the one of whichever request asked first.
            task = asyncio.get_running_loop().create_task(self._run(waiting), context=contextvars.Context())
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _run(self, waiting: Waiters) -> None:
        names = list(waiting)
        try:
            async with self._conn.translated(self._timeout):
                if len(names) == 1:
                    values: Sequence[object] = [await self._conn.client.get(names[0])]
                else:
                    values = await self._pipeline(names)
        except StoreError as error:
            for waiters in waiting.values():
                for future in waiters:
                    if not future.done():
                        future.set_exception(error)
            return
        except BaseException as error:  # cancelled (shutdown) or a bug: no waiter is left waiting
            failed = StoreError(f"redis: batched GET failed: {type(error).__name__}")
            for waiters in waiting.values():
                for future in waiters:
                    if not future.done():
                        future.set_exception(failed)
            raise
        for name, value in zip(names, values, strict=True):
            data = value if isinstance(value, bytes) else None
            for future in waiting[name]:
                if not future.done():
                    future.set_result(data)

    async def _pipeline(self, names: Sequence[str]) -> Sequence[object]:
        pipe = self._conn.client.pipeline(transaction=False)
        for name in names:
            pipe.get(name)
        return await pipe.execute()
