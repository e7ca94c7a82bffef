"""One Redis connection per process on any topology (standalone, Sentinel, Cluster), on redis-py's own clients.

What it adds, and why:
- `translated()` bounds a call in time and turns what redis-py raises (RedisError; RedisClusterException, which is
  not one; OSError; TimeoutError) into StoreError, with refused_write for OOM and READONLY.
- At most `max_connections` calls in flight: a semaphore taken inside `translated` (within the call's timeout) in
  front of pools sized a little larger. A Cluster node pool or Sentinel's `master_for` pool raises
  MaxConnectionsError at once when full; behind the semaphore none is ever full, so a burst waits instead of failing.
- Sentinel: a task follows the master (+switch-master on a sentinel, SENTINEL MASTERS every `follow` s) and
  the pool drops connections to a former master as they come back: redis-py closes only idle ones, and the old
  master stays writable for ~10 s after SENTINEL FAILOVER. A script meeting READONLY runs once more on the new master.
- Cluster: unreachable at start-up means degraded, not dead; PING reaches every primary; pub/sub is sharded
  (SPUBLISH/SSUBSCRIBE, Redis >= 7.0): a message goes to its shard only, not over the bus to every node.
- Scripts: redis-py's EVALSHA, then SCRIPT LOAD (every primary's, on a cluster) on NOSCRIPT; once more if a
  SCRIPT FLUSH lands in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import AbstractConnection, Connection, SSLConnection, UnixDomainSocketConnection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedConnection
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import (
    ConnectionError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
)

from proxy.core.errors import StoreError
from proxy.redis.listener import REDIS_ERRORS, Listener, OnMessage
from proxy.redis.url import Kind, RedisTarget

__all__ = ["REDIS_ERRORS", "Listener", "RedisConnection", "Script", "build_connection", "open_connection"]

log = logging.getLogger("braze_proxy.redis")

HEADROOM = 2  # pool connections beyond the semaphore: the subscriber's, and one spare
_REFUSALS = ("OOM command not allowed", "READONLY You can't write")  # as wrapped in a script error (Redis < 7)

# redis-py internals leaned on below (redis>=8.1,<9): fail at import, not at the first failover.
if not (hasattr(SentinelConnectionPool, "get_master_address") and hasattr(SentinelManagedConnection, "connect_to")):
    raise ImportError("redis-py's Sentinel classes changed: proxy/redis_conn.py needs redis>=8.1,<9")

Client = Redis | RedisCluster


def refuses_write(exc: BaseException) -> bool:
    """Whether `exc` is Redis answering but refusing a write: out of memory, or a replica (a demoted master)."""
    if isinstance(exc, OutOfMemoryError | ReadOnlyError):
        return True
    return isinstance(exc, ResponseError) and any(s in str(exc) for s in _REFUSALS)


def store_error(exc: BaseException) -> StoreError:
    """The StoreError for a redis-py error; its message names the error's type only (never a host or a key)."""
    if refuses_write(exc):
        return StoreError(f"redis refused a write: {type(exc).__name__}", refused_write=True)
    return StoreError(f"redis: {type(exc).__name__}")


class _MasterConnection(SentinelManagedConnection):
    """Keeps READONLY a ReadOnlyError (redis-py makes it a ConnectionError), and asks the sentinels at once, so that
    a retry through the pool reaches the new master (redis-py's own retry would reconnect to the same address)."""

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super(SentinelManagedConnection, self).read_response(*args, **kwargs)
        except ReadOnlyError:
            await self.disconnect()
            with contextlib.suppress(*REDIS_ERRORS):
                await self.connection_pool.get_master_address()  # drops idle connections if the master moved
            raise


class _MasterSSLConnection(_MasterConnection, SSLConnection):
    pass


class _FollowingPool(SentinelConnectionPool, BlockingConnectionPool):
    """Sentinel's master pool, blocking like BlockingConnectionPool, that drops connections to a former master."""

    async def release(self, connection: AbstractConnection) -> None:
        address = (getattr(connection, "host", None), getattr(connection, "port", None))
        if self.master_address is not None and address != tuple(self.master_address):
            await connection.disconnect()  # it reconnects to the current master when next used
        await super().release(connection)


class Script:
    """A Lua script bound to the connection's client; call it inside `RedisConnection.translated`."""

    def __init__(self, script: AsyncScript, retry_readonly: bool) -> None:
        self._script = script
        self._retry_readonly = retry_readonly

    async def __call__(self, keys: Sequence[str | bytes] = (), args: Sequence[str | bytes | int | float] = ()) -> Any:
        """Run the script (EVALSHA; loaded on NOSCRIPT). On a cluster all `keys` must share one hash tag."""
        try:
            return await self._script(keys=list(keys), args=list(args))
        except NoScriptError:
            pass  # flushed between SCRIPT LOAD and EVALSHA: once more
        except ReadOnlyError:
            if not self._retry_readonly:
                raise  # a replica: writes are refused
            # a demoted master: once more, on the master the sentinels name now
        return await self._script(keys=list(keys), args=list(args))


class RedisConnection:
    """The process's Redis: a command client, scripts, health checks, pub/sub. Build it with `open_connection`."""

    def __init__(
        self, kind: Kind, client: Client, *, timeout: float, max_connections: int, sentinel: Sentinel | None = None
    ) -> None:
        self.kind = kind
        self.client = client  # GET/SET/MGET/HMGET/HSET/EXPIRE/...: use it inside `translated`
        self.timeout = timeout
        self._permits = asyncio.Semaphore(max_connections)
        self._holding: ContextVar[bool] = ContextVar(f"redis_permit_{id(self)}", default=False)
        self._sentinel = sentinel
        self._follower: asyncio.Task[None] | None = None
        self._listener: Listener | None = None

    @asynccontextmanager
    async def translated(self, timeout: float) -> AsyncIterator[None]:
        """Bound the block by `timeout` s from when it holds a permit; raise StoreError for any Redis failure.

        The block holds one of `max_connections` permits (one per task: nested blocks share it). Waiting for one
        is bounded by `timeout` too, apart: a burst queued behind this process's own permits is this process
        being busy, not Redis failing (StoreError with `busy`, which leaves Redis's health alone). Counted in
        one bound, a burst on a starved CPU ran out its time in the queue and marked a healthy Redis down.
        """
        if self._holding.get():
            async with self._bounded(timeout):
                yield
            return
        try:
            async with asyncio.timeout(timeout):
                await self._permits.acquire()
        except TimeoutError:
            raise StoreError("redis: every connection of this process stayed busy", busy=True) from None
        token = self._holding.set(True)
        try:
            async with self._bounded(timeout):
                yield
        finally:
            self._holding.reset(token)
            self._permits.release()

    @asynccontextmanager
    async def _bounded(self, timeout: float) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(timeout):
                yield
        except REDIS_ERRORS as exc:
            raise store_error(exc) from exc

    def script(self, source: str) -> Script:
        """A callable running the Lua `source` on the master (on a cluster: the node owning the keys' slot)."""
        return Script(self.client.register_script(source), retry_readonly=self.kind == "sentinel")

    async def ping(self) -> None:
        """PING every primary (on a cluster every shard's). Raises StoreError if one does not answer."""
        async with self.translated(self.timeout):
            if isinstance(self.client, RedisCluster):
                ok = await self.client.ping(target_nodes=RedisCluster.PRIMARIES)
            else:
                ok = await self.client.ping()
        if not ok:
            raise StoreError("redis: PING not answered")

    async def probe_write(self, key: str) -> None:
        """A tiny SET of `key` (on a cluster: of one key per primary) that expires in a second.

        Raises StoreError (refused_write for OOM/READONLY) if one primary refuses it or does not answer."""
        async with self.translated(self.timeout):
            keys = probe_keys(self.client, key) if isinstance(self.client, RedisCluster) else [key]
            for one in keys:
                await self.client.set(one, b"1", px=1000)

    async def publish(self, channel: str, message: str | bytes) -> int:
        """Publish `message` (SPUBLISH on a cluster); returns how many subscribers got it. Raises StoreError."""
        async with self.translated(self.timeout):
            if isinstance(self.client, RedisCluster):
                return int(await self.client.spublish(channel, message))
            return int(await self.client.publish(channel, message))

    def start_listener(self, channels: Sequence[str], on_message: OnMessage) -> Listener:
        """Start the process's one subscriber; `close()` stops it. Raises RuntimeError if one is running."""
        if self._listener is not None:
            raise RuntimeError("this connection already has a listener")
        self._listener = Listener(self._open_pubsub, channels, on_message, sharded=self.kind == "cluster")
        self._listener.start()
        return self._listener

    async def _open_pubsub(self) -> PubSub:
        if isinstance(self.client, RedisCluster):
            with contextlib.suppress(*REDIS_ERRORS):
                async with asyncio.timeout(self.timeout):
                    await self.client.initialize()  # no-op once done; the subscribe fails (and retries) otherwise
        return self.client.pubsub()

    async def reconnect(self) -> None:
        """Drop every pooled connection (after an outage they may be dead); the next calls open fresh ones."""
        async with self.translated(self.timeout):
            if isinstance(self.client, RedisCluster):
                await self.client.aclose()  # the next call re-reads the topology
            else:
                await self.client.connection_pool.disconnect()

    async def close(self) -> None:
        """Stop the listener and the Sentinel follower, close every connection. Never raises a Redis error."""
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
        if self._listener is not None:
            await self._listener.stop()
        with contextlib.suppress(*REDIS_ERRORS):
            if isinstance(self.client, RedisCluster):
                await self.client.aclose()
            else:
                await self.client.aclose(close_connection_pool=True)
            if self._sentinel is not None:
                await self._sentinel.aclose()

    def follow(self, interval: float | None) -> None:
        """Sentinel: ask the sentinels for the master every `interval` s, and at once when one announces a switch."""
        if self._sentinel is not None and interval is not None and self._follower is None:
            self._follower = asyncio.get_running_loop().create_task(self._follow(interval))

    async def _follow(self, interval: float) -> None:
        assert self._sentinel is not None and isinstance(self.client, Redis)
        pool = self.client.connection_pool
        assert isinstance(pool, _FollowingPool)
        watch: PubSub | None = None
        known = None
        try:
            while True:
                try:
                    if watch is None:
                        watch = self._sentinel.sentinels[0].pubsub()
                        await watch.subscribe("+switch-master")
                    await watch.get_message(timeout=interval)  # a switch ends the wait early
                except Exception as exc:  # the follower must outlive any error: a lost sentinel, a redis-py bug
                    if not isinstance(exc, REDIS_ERRORS):
                        log.exception("redis sentinel follower failed")
                    await _close_quietly(watch)
                    watch = None
                    await asyncio.sleep(interval)
                with contextlib.suppress(*REDIS_ERRORS):
                    async with asyncio.timeout(self.timeout):
                        await pool.get_master_address()  # type: ignore[no-untyped-call,unused-ignore]  # drops idle connections if moved
                # Compared with what this loop last saw: a connection opened meanwhile may have updated the pool.
                if known is not None and pool.master_address != known:
                    log.warning("redis master switched", extra={"master": str(pool.master_address)})
                    if self._listener is not None:
                        await self._listener.restart()  # its connection is in use: the pool cannot drop it
                known = pool.master_address
        finally:
            await _close_quietly(watch)


async def _close_quietly(pubsub: PubSub | None) -> None:
    if pubsub is not None:
        with contextlib.suppress(*REDIS_ERRORS):
            await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]


def probe_keys(cluster: RedisCluster, key: str, tries: int = 4096) -> list[str]:
    """`key` with a hash tag per primary, one key per primary of the topology last read (empty before one is)."""
    primaries = {node.name for node in cluster.get_primaries()}
    keys: dict[str, str] = {}
    for i in range(tries):  # 3 shards take a handful; bounded for any layout
        if len(keys) == len(primaries):
            break
        candidate = f"{key}{{{i}}}"
        node = cluster.get_node_from_key(candidate)
        if node is not None and node.name in primaries:
            keys.setdefault(node.name, candidate)
    return list(keys.values())


async def open_connection(
    target: RedisTarget, *, timeout: float, max_connections: int, ca_file: str | None = None, follow: float | None = 1.0
) -> RedisConnection:
    """The process's RedisConnection for `target`: every socket operation bounded by `timeout` s.

    `follow`: how often (s) the Sentinel master is checked (None: never; redis-py then asks the sentinels only when
    it opens a connection). Never raises for an unreachable server: calls raise StoreError until it answers.
    Raises ValueError for a CA file without TLS (whether the file exists is the settings' check).
    """
    conn = build_connection(target, timeout=timeout, max_connections=max_connections, ca_file=ca_file)
    if isinstance(conn.client, RedisCluster):
        try:
            async with asyncio.timeout(timeout):
                await conn.client.initialize()
        except REDIS_ERRORS as exc:
            log.warning(
                "redis cluster unreachable at start-up; degraded until it answers", extra={"error": type(exc).__name__}
            )
    conn.follow(follow)
    return conn


def build_connection(
    target: RedisTarget, *, timeout: float, max_connections: int, ca_file: str | None = None
) -> RedisConnection:
    """A RedisConnection for `target` without touching the network: a cluster reads its topology on first use, and
    no task follows the Sentinel master (see `open_connection`). Raises ValueError for a CA file without TLS."""
    if ca_file is not None and not target.tls:
        raise ValueError("a Redis TLS CA file needs a rediss:// URL")
    common: dict[str, Any] = {
        "username": target.username,
        "password": target.password,
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 0),
    }
    tls: dict[str, Any] = {"ssl_ca_certs": ca_file} if target.tls else {}
    size = max_connections + HEADROOM
    if target.kind == "cluster":
        # One retry, after re-reading the topology (a failover or a slot migration under way).
        cluster = RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in target.hosts],
            max_connections=size,  # per node
            ssl=target.tls,
            **{**common, **tls, "retry": Retry(NoBackoff(), 1)},
        )
        return RedisConnection("cluster", cluster, timeout=timeout, max_connections=max_connections)
    if target.kind == "sentinel":
        sentinel_tls = {"ssl": True, **tls} if target.tls else {}
        # One retry of a connection dropped under a call: the sentinels kill the clients of the replica they
        # promote (CLIENT KILL), and a connection opened to it a moment early meets that.
        sentinel = Sentinel(target.hosts, sentinel_kwargs={**common, **sentinel_tls})  # type: ignore[no-untyped-call,unused-ignore]
        client = sentinel.master_for(
            target.service_name or "",
            connection_pool_class=_FollowingPool,
            connection_class=_MasterSSLConnection if target.tls else _MasterConnection,
            max_connections=size,
            timeout=timeout,  # the longest wait for a free connection
            db=target.db,
            **{**common, **tls, "retry": Retry(NoBackoff(), 1, supported_errors=(ConnectionError,))},
        )
        return RedisConnection("sentinel", client, timeout=timeout, max_connections=max_connections, sentinel=sentinel)
    if target.unix_path is not None:
        where: dict[str, Any] = {"connection_class": UnixDomainSocketConnection, "path": target.unix_path}
    else:
        host, port = target.hosts[0]
        where = {"connection_class": SSLConnection if target.tls else Connection, "host": host, "port": port, **tls}
    pool = BlockingConnectionPool(max_connections=size, timeout=timeout, db=target.db, **where, **common)
    return RedisConnection("standalone", Redis.from_pool(pool), timeout=timeout, max_connections=max_connections)
