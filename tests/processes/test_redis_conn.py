"""Redis connections (proxy/redis) against real Redis: standalone, Sentinel and a 3-master Cluster. The URLs alone
(pure): tests/unit/test_redis_conn.py.

Topologies are module-scoped real processes (tests/support/redis_topologies.py). Measured figures (how soon writes
reach a new master, pub/sub delivery) are printed: `pytest -s tests/processes/test_redis_conn.py` shows them; bench/
owns targets.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import statistics
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
from redis.exceptions import (
    ConnectionError,
    MaxConnectionsError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    ResponseError,
)

from proxy.core.errors import StoreError
from proxy.redis.batched_gets import BatchedGets
from proxy.redis.connection import Listener, RedisConnection, open_connection
from proxy.redis.url import parse_redis_url
from tests.support.external_tools import require_tool
from tests.support.load import wait_for
from tests.support.procs import HOST, free_port
from tests.support.redis_topologies import ClusterSetup, Node, SentinelSetup, client, tls_files, wait_until

TIMEOUT = 2.0  # a bound on calls that should answer: 0.5 s was too short for a first connect under a loaded CI run
INCR = "return redis.call('INCRBY', KEYS[1], ARGV[1])"
SET_BOTH = "redis.call('SET', KEYS[1], ARGV[1]); redis.call('SET', KEYS[2], ARGV[1]); return ARGV[1]"


# --- standalone -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[Node]:
    """A redis-server of this module's own: one test restarts it."""
    require_tool("redis-server")
    with Node(args=["--repl-diskless-sync-delay", "0"]) as node:  # a replica of it syncs at once
        yield node


@pytest.fixture
async def standalone(server: Node) -> AsyncIterator[RedisConnection]:
    if not server.running:
        server.start()
    with client(server.port) as c:
        c.flushall()
    conn = await open_connection(parse_redis_url(server.url), timeout=TIMEOUT, max_connections=4)
    yield conn
    await conn.close()


async def test_standalone_commands_and_scripts(standalone: RedisConnection) -> None:
    incr = standalone.script(INCR)
    async with standalone.translated(TIMEOUT):
        await standalone.client.set("{t}:a", b"1", px=60_000)
        await standalone.client.hset("{t}:h", mapping={"f": "v"})
        await standalone.client.expire("{t}:h", 60)
        assert await standalone.client.mget("{t}:a", "{t}:b") == [b"1", None]
        assert await standalone.client.hmget("{t}:h", ["f", "g"]) == [b"v", None]
        assert await incr(["{t}:n"], [5]) == 5
        assert await incr(["{t}:n"], [2]) == 7
    await standalone.ping()
    await standalone.probe_write("{t}:probe")


async def test_a_flushed_script_is_loaded_again_without_an_error(standalone: RedisConnection, server: Node) -> None:
    incr = standalone.script(INCR)
    for expected in (1, 2, 3):
        async with standalone.translated(TIMEOUT):
            assert await incr(["{t}:n"], [1]) == expected
        with client(server.port) as c:
            c.script_flush()
            assert c.script_exists(hashlib.sha1(INCR.encode()).hexdigest()) == [False]


@pytest.mark.parametrize(
    ("error", "refused"),
    [
        (RedisClusterException("no node reachable"), False),  # not a RedisError
        (MaxConnectionsError("too many"), False),
        (ConnectionError("reset"), False),
        (OSError("unreachable"), False),
        (TimeoutError(), False),
        (OutOfMemoryError("command not allowed when used memory > 'maxmemory'."), True),
        (ReadOnlyError("You can't write against a read only replica."), True),
        (ResponseError("Error running script: -OOM command not allowed when used memory > 'maxmemory'"), True),
        (ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"), False),
    ],
)
async def test_translated_turns_every_redis_error_into_store_error(
    standalone: RedisConnection, error: Exception, refused: bool
) -> None:
    with pytest.raises(StoreError) as caught:
        async with standalone.translated(TIMEOUT):
            raise error
    assert caught.value.refused_write is refused
    assert str(caught.value).endswith(type(error).__name__)


async def test_translated_bounds_the_call_and_the_wait_for_a_permit(standalone: RedisConnection) -> None:
    started = time.monotonic()
    with pytest.raises(StoreError, match="TimeoutError"):
        async with standalone.translated(0.1):
            await asyncio.sleep(5)
    assert time.monotonic() - started < 1

    inside = peak = 0

    async def one() -> None:
        nonlocal inside, peak
        async with standalone.translated(2):
            inside += 1
            peak = max(peak, inside)
            await standalone.ping()  # nested: shares the block's permit instead of waiting for a second one
            await asyncio.sleep(0.02)
            inside -= 1

    await asyncio.gather(*(one() for _ in range(12)))
    assert peak == 4  # max_connections


async def test_a_burst_queued_behind_the_permits_is_busy_not_a_redis_failure(standalone: RedisConnection) -> None:
    """Waiting for a permit and the call are bounded apart: a call queued behind this process's own burst fails
    as `busy` (Redis's health is not in question), and a call that got its permit has its whole time."""
    release = asyncio.Event()

    async def hold() -> None:
        async with standalone.translated(5):
            await release.wait()

    holders = [asyncio.ensure_future(hold()) for _ in range(4)]  # every permit (max_connections) in use
    await asyncio.sleep(0.05)
    with pytest.raises(StoreError) as caught:
        async with standalone.translated(0.1):
            pytest.fail("ran without a permit")
    assert caught.value.busy and not caught.value.refused_write
    release.set()
    await asyncio.gather(*holders)

    async def queued_then_slow() -> None:
        async with standalone.translated(0.3):
            await asyncio.sleep(0.2)  # 0.2 s in the queue, then 0.2 s of call: each inside its own bound

    await asyncio.gather(*(queued_then_slow() for _ in range(8)))


async def test_out_of_memory_refuses_writes_but_reads_work() -> None:
    require_tool("redis-server")
    with Node(args=["--maxmemory-policy", "noeviction"]) as full:
        with client(full.port) as c:
            c.set("kept", b"v")
            for i in range(200):
                c.set(f"fill:{i}", b"x" * 10_000)
            c.config_set("maxmemory", "1mb")  # below what it holds: every write is refused from now on
            with pytest.raises(redis.exceptions.OutOfMemoryError):
                c.set("one-more", b"x")
        conn = await open_connection(parse_redis_url(full.url), timeout=TIMEOUT, max_connections=2)
        try:
            await assert_refuses_writes_but_reads(conn)
        finally:
            await conn.close()


async def test_a_replica_refuses_writes_but_reads_work(server: Node) -> None:
    require_tool("redis-server")
    with client(server.port) as c:
        c.set("kept", b"v")
    with Node(args=["--replicaof", HOST, str(server.port)]) as replica:
        wait_until(lambda: client(replica.port).get("kept") == b"v", 10, "the replica did not sync")
        conn = await open_connection(parse_redis_url(replica.url), timeout=TIMEOUT, max_connections=2)
        try:
            await assert_refuses_writes_but_reads(conn)
        finally:
            await conn.close()


async def assert_refuses_writes_but_reads(conn: RedisConnection) -> None:
    with pytest.raises(StoreError) as probe:
        await conn.probe_write("probe")
    assert probe.value.refused_write
    with pytest.raises(StoreError) as scripted:
        async with conn.translated(TIMEOUT):
            await conn.script(INCR)(["n"], [1])
    assert scripted.value.refused_write
    await conn.ping()
    async with conn.translated(TIMEOUT):
        assert await conn.client.get("kept") == b"v"


async def test_an_unreachable_server_at_start_up_raises_store_error_not_a_crash() -> None:
    for url in (f"redis://{HOST}:{free_port()}/0", f"redis+sentinel://{HOST}:{free_port()}/mymaster"):
        conn = await open_connection(parse_redis_url(url), timeout=0.2, max_connections=2)
        try:
            with pytest.raises(StoreError) as caught:
                await conn.ping()
            assert not caught.value.refused_write
            with pytest.raises(StoreError):
                async with conn.translated(0.2):
                    await conn.script(INCR)(["n"], [1])
        finally:
            await conn.close()


async def test_credentials_reach_the_server_and_never_the_error() -> None:
    require_tool("redis-server")
    with Node(args=["--user", "app", "on", ">Zq9-app-pass", "~*", "&*", "+@all"]) as guarded:
        good = await open_connection(
            parse_redis_url(f"redis://app:Zq9-app-pass@{HOST}:{guarded.port}/0"), timeout=TIMEOUT, max_connections=2
        )
        bad = await open_connection(
            parse_redis_url(f"redis://app:Zq9-wrong@{HOST}:{guarded.port}/0"), timeout=TIMEOUT, max_connections=2
        )
        try:
            await good.probe_write("auth")
            with pytest.raises(StoreError) as caught:
                await bad.ping()
            assert "Zq9" not in str(caught.value) and "AuthenticationError" in str(caught.value)
        finally:
            await good.close()
            await bad.close()


async def test_a_unix_socket_and_a_database_number(tmp_path: Path) -> None:
    require_tool("redis-server")
    socket_path = tmp_path / "redis.sock"
    with Node(args=["--unixsocket", str(socket_path)]) as node:
        conn = await open_connection(parse_redis_url(f"unix://{socket_path}?db=3"), timeout=TIMEOUT, max_connections=2)
        try:
            await conn.probe_write("unix")
            async with conn.translated(TIMEOUT):
                await conn.client.set("where", b"db3")
        finally:
            await conn.close()
        with client(node.port) as c:
            c.select(3)
            assert c.get("where") == b"db3"


async def test_tls_with_a_ca_file(tmp_path: Path) -> None:
    require_tool("redis-server")
    require_tool("openssl")
    ca, cert, key = tls_files(tmp_path)
    tls_port = free_port()
    tls_args = ["--tls-port", str(tls_port), "--tls-cert-file", cert, "--tls-key-file", key, "--tls-ca-cert-file", ca]
    with Node(args=[*tls_args, "--tls-auth-clients", "no"]):
        target = parse_redis_url(f"rediss://{HOST}:{tls_port}/0")
        trusted = await open_connection(target, timeout=2, max_connections=2, ca_file=ca)
        untrusted = await open_connection(target, timeout=2, max_connections=2)  # the system's CAs only
        try:
            await trusted.probe_write("tls")
            await trusted.ping()
            with pytest.raises(StoreError, match="ConnectionError"):
                await untrusted.ping()
        finally:
            await trusted.close()
            await untrusted.close()
    with pytest.raises(ValueError, match="needs a rediss:// URL"):
        await open_connection(parse_redis_url(f"redis://{HOST}:{tls_port}"), timeout=1, max_connections=1, ca_file=ca)


async def wait_subscribed(listener: Listener, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not listener.subscribed:
        assert time.monotonic() < deadline, f"the listener did not subscribe within {timeout} s"
        await asyncio.sleep(0.01)


Arrivals = asyncio.Queue[tuple[bytes, float]]


async def listening(conn: RedisConnection) -> tuple[Listener, Arrivals]:
    """A listener on channel wake:{a}, subscribed, and the queue of (data, arrival time) it fills."""
    arrived: Arrivals = asyncio.Queue()
    listener = conn.start_listener(["wake:{a}"], lambda _, data: arrived.put_nowait((data, time.monotonic())))
    await wait_subscribed(listener)
    return listener, arrived


async def one_delivery(conn: RedisConnection, arrived: Arrivals, data: bytes) -> float:
    """Publish `data` on wake:{a}; how long until the listener got it (2 s at most)."""
    sent = time.monotonic()
    assert await conn.publish("wake:{a}", data) == 1
    async with asyncio.timeout(2):
        got, at = await arrived.get()
    assert got == data
    return at - sent


async def delivery_ms(conn: RedisConnection, arrived: Arrivals, count: int = 20) -> str:
    times = [await one_delivery(conn, arrived, f"m{i}".encode()) for i in range(count)]
    return f"median {statistics.median(times) * 1000:.2f} ms, max {max(times) * 1000:.2f} ms over {count}"


async def test_pubsub_delivers_and_the_listener_survives_a_restart(standalone: RedisConnection, server: Node) -> None:
    listener, arrived = await listening(standalone)
    print(f"\nstandalone pub/sub delivery: {await delivery_ms(standalone, arrived)}")
    server.stop()
    await asyncio.sleep(0.3)  # the listener notices and backs off
    assert not listener.subscribed
    server.start()
    await standalone.reconnect()
    await wait_subscribed(listener)
    await one_delivery(standalone, arrived, b"after-restart")


# --- Sentinel -------------------------------------------------------------------------------------------------


@pytest.fixture
async def on_sentinel(sentinels: SentinelSetup) -> AsyncIterator[RedisConnection]:
    sentinels.wait_settled()
    conn = await open_connection(parse_redis_url(sentinels.url()), timeout=TIMEOUT, max_connections=8)
    yield conn
    await conn.close()


async def test_sentinel_commands_scripts_and_a_flushed_script(
    on_sentinel: RedisConnection, sentinels: SentinelSetup
) -> None:
    incr = on_sentinel.script(INCR)
    async with on_sentinel.translated(TIMEOUT):
        await on_sentinel.client.set("{s}:a", b"1")
        assert await on_sentinel.client.mget("{s}:a", "{s}:b") == [b"1", None]
        first = await incr(["{s}:n"], [1])
    with client(sentinels.master_port()) as c:
        c.script_flush()
    async with on_sentinel.translated(TIMEOUT):
        assert await incr(["{s}:n"], [1]) == first + 1
    await on_sentinel.ping()

    async def one() -> None:
        async with on_sentinel.translated(5):
            await incr(["{s}:burst"], [1])

    await asyncio.gather(*(one() for _ in range(200)))  # 200 at once through 8 permits: they wait, none fails
    with client(sentinels.master_port()) as c:
        assert c.get("{s}:burst") == b"200"
    _, arrived = await listening(on_sentinel)
    print(f"\nsentinel pub/sub delivery: {await delivery_ms(on_sentinel, arrived)}")


async def test_after_a_failover_writes_land_on_the_new_master_before_the_old_one_is_demoted(
    on_sentinel: RedisConnection, sentinels: SentinelSetup
) -> None:
    incr = on_sentinel.script(INCR)
    listener, arrived = await listening(on_sentinel)
    failures: list[StoreError] = []
    stop = asyncio.Event()

    async def writer(i: int) -> None:  # several writers: connections are in use when the master switches
        while not stop.is_set():
            try:
                async with on_sentinel.translated(2):  # generous: a busy test machine is not what is tested
                    await incr([f"{{f}}:n{i}"], [1])
                    await on_sentinel.client.set(f"{{f}}:at{i}", repr(time.time()))
            except StoreError as exc:
                failures.append(exc)
            await asyncio.sleep(0.005)

    writers = [asyncio.create_task(writer(i)) for i in range(4)]
    try:
        await asyncio.sleep(0.3)
        asked = time.time()
        old = await asyncio.to_thread(sentinels.failover)
        new = await asyncio.to_thread(sentinels.wait_for_switch, old)
        switched = time.time()

        def landed() -> bool:  # a write made after the switch is on the new master, while the old is still one
            with client(new) as c:
                at = c.get("{f}:at0")
            return at is not None and float(at) > switched

        await asyncio.to_thread(wait_until, landed, 5, "writes did not reach the new master")
        landed_at = time.time()
        with client(old) as c:
            old_role = c.execute_command("ROLE")[0]
        assert old_role == b"master", "the old master was demoted first: this proves nothing about following"
        print(
            f"\nfailover: sentinels switched {switched - asked:.2f} s after SENTINEL FAILOVER; "
            f"writes on the new master {landed_at - switched:.3f} s after the switch; old master still a master"
        )
    finally:
        stop.set()
        await asyncio.gather(*writers)
    assert [repr(f) for f in failures] == []
    with client(new) as c:
        assert int(c.get("{f}:n0") or 0) > 0  # the script ran on the new master

    def subscribed_on_new() -> bool:
        with client(new) as c:
            return bool(c.pubsub_numsub("wake:{a}")[0][1] == 1)

    await asyncio.to_thread(wait_until, subscribed_on_new, 5, "the listener did not move to the new master")
    await wait_subscribed(listener)
    await one_delivery(on_sentinel, arrived, b"after-failover")


async def test_readonly_from_a_demoted_master_is_retried_on_the_new_one(sentinels: SentinelSetup) -> None:
    sentinels.wait_settled()
    # No follower: a pooled connection stays on the old master, as redis-py alone leaves it.
    conn = await open_connection(parse_redis_url(sentinels.url()), timeout=TIMEOUT, max_connections=4, follow=None)
    incr = conn.script(INCR)
    try:
        async with conn.translated(TIMEOUT):
            await incr(["{r}:n"], [1])
        old = await asyncio.to_thread(sentinels.failover)
        new = await asyncio.to_thread(sentinels.wait_for_switch, old)
        with client(old) as c:
            c.replicaof(HOST, new)  # what Sentinel does some seconds later
        async with conn.translated(TIMEOUT):
            await incr(["{r}:n"], [1])
            await conn.client.set("{r}:plain", b"1")
        with client(new) as c:
            assert c.get("{r}:plain") == b"1"
    finally:
        await conn.close()


async def test_sentinel_with_a_password_on_every_process() -> None:
    require_tool("redis-server")
    with SentinelSetup(password="Zq9-sentinel-pw") as guarded:
        conn = await open_connection(parse_redis_url(guarded.url()), timeout=TIMEOUT, max_connections=2)
        try:
            incr = conn.script(INCR)
            async with conn.translated(TIMEOUT):
                assert await incr(["{p}:n"], [1]) == 1
            await conn.ping()
            old = await asyncio.to_thread(guarded.failover)
            new = await asyncio.to_thread(guarded.wait_for_switch, old)

            async def on_new_master() -> bool:  # the follower, logged in to the sentinel, moved the pool
                async with conn.translated(TIMEOUT):
                    await conn.client.set("{p}:where", b"here")
                with guarded.client(new) as c:
                    return c.get("{p}:where") == b"here"

            assert await wait_for(on_new_master, 5)
        finally:
            await conn.close()


async def test_batched_gets_through_sentinel(on_sentinel: RedisConnection) -> None:
    async with on_sentinel.translated(TIMEOUT):
        await on_sentinel.client.mset({f"{{s}}:g{i}": str(i) for i in range(20)})
    gets = BatchedGets(on_sentinel, TIMEOUT)
    values = await asyncio.gather(*(gets.get(f"{{s}}:g{i % 25}") for i in range(50)))
    assert values == [None if i % 25 >= 20 else str(i % 25).encode() for i in range(50)]


# --- Cluster --------------------------------------------------------------------------------------------------


@pytest.fixture
async def on_cluster(cluster: ClusterSetup) -> AsyncIterator[RedisConnection]:
    conn = await open_connection(parse_redis_url(cluster.url()), timeout=TIMEOUT, max_connections=4)
    yield conn
    await conn.close()


def tags_per_node(cluster: ClusterSetup) -> dict[int, str]:
    """A hash tag owned by each node."""
    tags: dict[int, str] = {}
    for i in range(200):
        tags.setdefault(cluster.owner(f"{{k{i}}}"), f"{{k{i}}}")
        if len(tags) == len(cluster.nodes):
            return tags
    raise AssertionError("some node owns none of 200 hash tags")


async def test_cluster_keys_spread_and_a_script_runs_on_each_node(
    on_cluster: RedisConnection, cluster: ClusterSetup
) -> None:
    set_both = on_cluster.script(SET_BOTH)
    for port, tag in tags_per_node(cluster).items():
        async with on_cluster.translated(TIMEOUT):
            assert await set_both([f"{tag}:a", f"{tag}:b"], [str(port)]) == str(port).encode()
            assert await on_cluster.client.mget(f"{tag}:a", f"{tag}:b", f"{tag}:c") == [str(port).encode()] * 2 + [None]
        with client(port) as c:  # the keys live on the node that owns the tag
            assert c.get(f"{tag}:a") == str(port).encode()
    for port in cluster.ports:
        with client(port) as c:
            c.script_flush()
    async with on_cluster.translated(TIMEOUT):
        for tag in tags_per_node(cluster).values():
            assert await set_both([f"{tag}:a", f"{tag}:b"], ["again"]) == b"again"
    await on_cluster.ping()


async def test_cluster_bursts_wait_for_a_connection_instead_of_failing(on_cluster: RedisConnection) -> None:
    incr = on_cluster.script(INCR)

    async def one(i: int) -> None:
        async with on_cluster.translated(5):
            await incr([f"{{b{i % 7}}}:n"], [1])

    await asyncio.gather(*(one(i) for i in range(300)))  # 300 at once through 4 permits (node pools: 6 each)
    async with on_cluster.translated(TIMEOUT):
        total = sum([int(await on_cluster.client.get(f"{{b{j}}}:n") or 0) for j in range(7)])
    assert total == 300


async def test_cluster_pubsub_delivers(on_cluster: RedisConnection) -> None:
    _, arrived = await listening(on_cluster)
    print(f"\ncluster (sharded) pub/sub delivery: {await delivery_ms(on_cluster, arrived)}")


async def test_cluster_ping_checks_every_shard_and_a_cluster_down_at_start_up_is_degraded_not_dead(
    on_cluster: RedisConnection, cluster: ClusterSetup, caplog: pytest.LogCaptureFixture
) -> None:
    await on_cluster.ping()
    alive = tags_per_node(cluster)[cluster.ports[0]]
    late: RedisConnection | None = None
    try:
        cluster.nodes[-1].stop()
        with pytest.raises(StoreError):
            await on_cluster.ping()
        async with on_cluster.translated(TIMEOUT):  # while the other shards still answer
            await on_cluster.client.set(f"{alive}:x", b"1")
        for node in cluster.nodes:
            node.stop()
        with caplog.at_level(logging.WARNING, logger="braze_proxy.redis"):
            late = await open_connection(parse_redis_url(cluster.url()), timeout=0.2, max_connections=2)
        [record] = [r for r in caplog.records if "unreachable at start-up" in r.getMessage()]
        assert record.exc_info is None  # a warning line, not a traceback
        with pytest.raises(StoreError):
            await late.ping()
        with pytest.raises(StoreError):
            await late.publish("wake:{a}", b"x")
        with pytest.raises(StoreError):
            async with late.translated(0.2):
                await late.script(INCR)([f"{alive}:n"], [1])
    finally:
        for node in cluster.nodes:
            if not node.running:
                node.start()
        cluster.wait_ok()
    assert late is not None

    async def answers() -> bool:
        try:
            await late.ping()
        except StoreError:  # its 0.2 s bound can pass while it first learns the slots on a busy machine
            return False
        return True

    try:
        # The connection made while the cluster was down works once it is back.
        assert await wait_for(answers, timeout=10, interval=0.1), "the late connection never recovered"
        async with late.translated(TIMEOUT):
            assert await late.script(INCR)([f"{alive}:n"], [1]) == 1
    finally:
        await late.close()
    await on_cluster.reconnect()
    await on_cluster.ping()


async def test_batched_gets_across_every_node_of_a_cluster(on_cluster: RedisConnection, cluster: ClusterSetup) -> None:
    """One turn's GETs to keys owned by every node: one pipeline, each answer its own key's."""
    tags = list(tags_per_node(cluster).values())
    async with on_cluster.translated(TIMEOUT):
        for i, tag in enumerate(tags):
            await on_cluster.client.set(f"{tag}:g", f"v{i}")
    gets = BatchedGets(on_cluster, TIMEOUT)
    names = [f"{tags[i % len(tags)]}:g" for i in range(30)] + [f"{tags[0]}:absent"]
    values = await asyncio.gather(*(gets.get(name) for name in names))
    assert values == [f"v{i % len(tags)}".encode() for i in range(30)] + [None]
