"""The process's one Redis subscriber: a task that (re)subscribes with bounded backoff and hands messages on."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

from redis.exceptions import RedisClusterException, RedisError

log = logging.getLogger("braze_proxy.redis")

# What redis-py raises for a Redis that fails (RedisClusterException is not a RedisError).
REDIS_ERRORS = (RedisError, RedisClusterException, OSError, TimeoutError)
LISTEN_BACKOFF = (0.05, 2.0)  # the subscriber's reconnect delay, first and longest (seconds)

OnMessage = Callable[[bytes, bytes], None]


class Listener:
    """One subscriber connection: calls `on_message(channel, data)` per message; reconnects with bounded backoff.

    While `subscribed` is false, messages are lost: callers poll instead of waiting for a wake-up.
    """

    def __init__(
        self, open_pubsub: Callable[[], Any], channels: Sequence[str], on_message: OnMessage, sharded: bool
    ) -> None:
        self.subscribed = False
        self._open = open_pubsub
        self._channels = list(channels)
        self._on_message = on_message
        self._sharded = sharded
        self._delay = LISTEN_BACKOFF[0]
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def restart(self) -> None:
        """Subscribe again now, on a new connection (after a master switch)."""
        await self.stop()
        self.start()

    async def _run(self) -> None:
        while True:
            pubsub = await self._open()
            try:
                await self._listen(pubsub)
            except REDIS_ERRORS as exc:
                log.warning("redis subscriber lost, reconnecting", extra={"error": type(exc).__name__})
            except Exception:  # a redis-py bug must not end wake-ups for good: log it and subscribe again
                log.exception("redis subscriber failed, reconnecting")
            finally:
                self.subscribed = False
                with contextlib.suppress(*REDIS_ERRORS):
                    await pubsub.aclose()
            await asyncio.sleep(self._delay)
            self._delay = min(self._delay * 2, LISTEN_BACKOFF[1])

    async def _listen(self, pubsub: Any) -> None:
        if self._sharded:
            await pubsub.ssubscribe(*self._channels)
            get = pubsub.get_sharded_message
        else:
            await pubsub.subscribe(*self._channels)
            get = pubsub.get_message
        while True:
            message = await get(ignore_subscribe_messages=False, timeout=1.0)
            if message is None:
                continue
            if message["type"] in ("subscribe", "ssubscribe"):
                self.subscribed = True
                self._delay = LISTEN_BACKOFF[0]
            elif message["type"] in ("message", "smessage"):
                try:
                    self._on_message(message["channel"], message["data"])
                except Exception:  # a broken callback must not end the subscription
                    log.exception("redis message callback failed")
