"""Real Redis topologies on 127.0.0.1 for tests: a Sentinel set-up and a 3-master Redis Cluster.

Built on tests/support/procs.py (one redis-server per node, its own temp dir, bounded start and stop). Every wait is
bounded; `close()` (or leaving the `with` block) stops every process and removes every temp dir, even after a failed
start. Cluster nodes get ports whose +10000 is free too: each node's cluster bus listens there (tests/support/procs.py).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Self

import redis

from tests.support.procs import HOST, POLL_S, Managed, RedisServer, _Process, free_port

SERVICE = "mymaster"


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `check` every 50 ms until it is true; raise TimeoutError naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (redis.RedisError, OSError):
            pass  # a node still starting or restarting
        time.sleep(POLL_S)
    raise TimeoutError(f"{what} within {timeout:g} s")


def answers_ping(port: int, password: str | None = None) -> bool:
    """True if whatever listens on 127.0.0.1:`port` answers PING right now."""
    try:
        with client(port, password) as c:
            return bool(c.ping())
    except (redis.RedisError, OSError):
        return False


def client(port: int, password: str | None = None) -> redis.Redis:
    """A plain synchronous client of 127.0.0.1:`port` with short timeouts (for checks and set-up only)."""
    return redis.Redis(host=HOST, port=port, password=password, socket_timeout=2, socket_connect_timeout=2)


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: apt-get install -y redis-server (it brings redis-tools)")
    return found


class Node(RedisServer):
    """A redis-server with extra arguments (`--replicaof ...`, `--cluster-enabled yes`, `--maxmemory ...`)."""

    def __init__(self, port: int | None = None, args: Sequence[str] = (), password: str | None = None) -> None:
        super().__init__(port)
        self.password = password
        self.args = list(args) + (["--requirepass", password, "--masterauth", password] if password else [])

    def ping(self) -> bool:
        return answers_ping(self.port, self.password)

    def start(self) -> Self:
        if self._dir is None:
            self._dir = tempfile.mkdtemp(prefix="redis-node-")
        argv = [_binary("redis-server"), "--save", "", "--appendonly", "no", "--port", str(self.port)]
        self._spawn([*argv, "--bind", HOST, "--dir", self._dir, *self.args])
        self._wait_until(self.ping, 10, "answer PING")
        return self


class SentinelProcess(_Process):
    """`redis-server sentinel.conf --sentinel` watching one master, with short failure detection."""

    name = "redis-sentinel"

    def __init__(self, master_port: int, quorum: int, password: str | None = None) -> None:
        super().__init__()
        self.password = password
        self.port = free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="redis-sentinel-"))
        lines = [
            f"port {self.port}",
            f"bind {HOST}",
            f"dir {self._dir}",
            f"sentinel monitor {SERVICE} {HOST} {master_port} {quorum}",
            f"sentinel down-after-milliseconds {SERVICE} 1000",  # short: failures are detected within a second
            f"sentinel failover-timeout {SERVICE} 2000",
        ]
        if password:  # the same password for the sentinels and the data nodes, as Bitnami's chart sets it up
            lines += [f"requirepass {password}", f"sentinel auth-pass {SERVICE} {password}"]
        (self._dir / "sentinel.conf").write_text("\n".join(lines) + "\n")  # sentinel rewrites it: it must be ours

    def start(self) -> Self:
        self._spawn([_binary("redis-server"), str(self._dir / "sentinel.conf"), "--sentinel"])
        self._wait_until(lambda: answers_ping(self.port, self.password), 10, "answer PING")
        return self

    def close(self) -> None:
        super().close()
        shutil.rmtree(self._dir, ignore_errors=True)


class _Topology(Managed):
    """Processes started in order and stopped all together, also when a start fails."""

    def __init__(self) -> None:
        self.processes: list[_Process] = []

    def _start(self, process: _Process) -> None:
        self.processes.append(process)
        process.start()

    def close(self) -> None:
        for process in reversed(self.processes):
            process.close()
        self.processes.clear()


class SentinelSetup(_Topology):
    """A master, one replica and `sentinels` sentinels (quorum: a majority), all on 127.0.0.1; with `password`,
    every one of them requires it."""

    def __init__(self, sentinels: int = 1, password: str | None = None) -> None:
        super().__init__()
        self.password = password
        self.sentinel_count = sentinels
        self.nodes: list[Node] = []
        self.sentinels: list[SentinelProcess] = []

    def start(self, timeout: float = 20) -> Self:
        fast_sync = ["--repl-diskless-sync-delay", "0"]  # either may be the master later; the default waits 5 s
        master = Node(args=fast_sync, password=self.password)
        replica = Node(args=[*fast_sync, "--replicaof", HOST, str(master.port)], password=self.password)
        for node in (master, replica):
            self.nodes.append(node)
            self._start(node)
        wait_until(lambda: self._link_up(replica.port), timeout, "the replica did not sync with the master")
        for _ in range(self.sentinel_count):
            sentinel = SentinelProcess(master.port, quorum=self.sentinel_count // 2 + 1, password=self.password)
            self.sentinels.append(sentinel)
            self._start(sentinel)
        wait_until(self._ready, timeout, "the sentinels did not see the replica and each other")
        return self

    def url(self, scheme: str = "redis+sentinel") -> str:
        credentials = f":{self.password}@" if self.password else ""
        return f"{scheme}://{credentials}" + ",".join(f"{HOST}:{s.port}" for s in self.sentinels) + f"/{SERVICE}"

    def client(self, port: int) -> redis.Redis:
        """A client of one of this set-up's processes (with its password)."""
        return client(port, self.password)

    def _ready(self) -> bool:
        for sentinel in self.sentinels:
            with self.client(sentinel.port) as c:
                replicas = c.sentinel_slaves(SERVICE)
                master = c.sentinel_master(SERVICE)
            good = [
                r
                for r in replicas
                if not r["is_sdown"] and not r["is_disconnected"] and r["master-link-status"] == "ok"
            ]
            if not good or master["num-other-sentinels"] != self.sentinel_count - 1:
                return False
        return True

    def master_port(self) -> int:
        """The master's port as SENTINEL MASTER says (what clients ask; it changes at +switch-master, while
        GET-MASTER-ADDR-BY-NAME already names the replica being promoted)."""
        with self.client(self.sentinels[0].port) as c:
            return int(c.sentinel_master(SERVICE)["port"])

    def failover(self, timeout: float = 15) -> int:
        """Ask a sentinel for a failover (SENTINEL FAILOVER); returns the master's port before it.

        A sentinel refuses while a previous failover is still settling (INPROG, NOGOODSLAVE): asked again until
        `timeout` s.
        """
        old = self.master_port()

        def asked() -> bool:
            with self.client(self.sentinels[0].port) as c:
                try:
                    return bool(c.sentinel_failover(SERVICE))
                except redis.ResponseError as exc:
                    if str(exc).startswith(("INPROG", "NOGOODSLAVE")):
                        return False
                    raise

        wait_until(asked, timeout, "no sentinel accepted SENTINEL FAILOVER")
        return old

    def wait_for_switch(self, old_port: int, timeout: float = 15) -> int:
        """Wait until every sentinel names a master other than `old_port`; returns the new master's port."""

        def switched() -> bool:
            for sentinel in self.sentinels:
                with self.client(sentinel.port) as c:
                    if int(c.sentinel_master(SERVICE)["port"]) == old_port:
                        return False
            return True

        wait_until(switched, timeout, "the sentinels did not switch master")
        return self.master_port()

    def wait_settled(self, timeout: float = 20) -> None:
        """Make the former master a replica now (Sentinel does it some 10 s after a failover) and wait until the
        sentinels see every replica in sync, ready for the next failover."""
        master = self.master_port()
        for node in self.nodes:
            if node.port != master and self._role(node.port) == "master":
                with self.client(node.port) as c:
                    c.replicaof(HOST, master)
        replica_ports = [n.port for n in self.nodes if n.port != master]
        wait_until(lambda: all(self._link_up(p) for p in replica_ports), timeout, "the replicas did not resync")
        if self._ready():
            return
        self._info_period(200)  # the sentinels see the replicas within 0.2 s, not at the next 10 s INFO round
        try:
            wait_until(self._ready, timeout, "the sentinels did not settle")
        finally:
            self._info_period(10_000)  # back to the default: it also sets how long a demoted master stays writable

    def _role(self, port: int) -> str:
        with self.client(port) as c:
            role = c.execute_command("ROLE")[0]
        return role.decode() if isinstance(role, bytes) else str(role)

    def _link_up(self, port: int) -> bool:
        with self.client(port) as c:
            return bool(c.info("replication").get("master_link_status") == "up")

    def _info_period(self, ms: int) -> None:
        for sentinel in self.sentinels:
            with self.client(sentinel.port) as c:
                c.execute_command("SENTINEL", "DEBUG", "info-period", str(ms))  # Redis >= 7.0


class ClusterSetup(_Topology):
    """A Redis Cluster of `masters` masters (no replicas), created with `redis-cli --cluster create`."""

    def __init__(self, masters: int = 3, node_timeout_ms: int = 1000) -> None:
        super().__init__()
        args = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
        # Without replicas, a stopped node's slots stay uncovered: the other shards keep serving theirs.
        args += ["--cluster-node-timeout", str(node_timeout_ms), "--cluster-require-full-coverage", "no"]
        self.nodes = [Node(free_port(bus=True), args) for _ in range(masters)]

    def start(self, timeout: float = 60) -> Self:
        for node in self.nodes:
            self._start(node)
        addresses = [f"{HOST}:{node.port}" for node in self.nodes]
        create = [_binary("redis-cli"), "--cluster", "create", *addresses, "--cluster-yes"]
        done = subprocess.run(create, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {done.stdout[-2000:]} {done.stderr[-2000:]}")
        self.wait_ok(timeout)
        return self

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    def url(self, scheme: str = "redis+cluster") -> str:
        return f"{scheme}://" + ",".join(f"{HOST}:{port}" for port in self.ports)

    def wait_ok(self, timeout: float = 30) -> None:
        """Wait until every node says cluster_state:ok and knows every other node."""

        def ok() -> bool:
            for port in self.ports:
                with client(port) as c:
                    info = c.cluster("INFO")
                if info.get("cluster_state") != "ok" or int(info.get("cluster_known_nodes", 0)) != len(self.nodes):
                    return False
            return True

        wait_until(ok, timeout, "the cluster did not reach cluster_state:ok")

    def owner(self, key: str) -> int:
        """The port of the node that owns `key`'s slot (as that node's peers say)."""
        with client(self.ports[0]) as c:
            slot = int(c.cluster("KEYSLOT", key))
            for start, end, primary, *_ in c.execute_command("CLUSTER", "SLOTS"):
                if int(start) <= slot <= int(end):
                    return int(primary[1])
        raise LookupError(f"no node owns slot {slot}")


def tls_files(directory: Path, timeout: float = 30) -> tuple[str, str, str]:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it, made with the openssl CLI.

    Returns the paths of (CA certificate, server certificate, server key).
    """
    ca_key, ca, key, csr, cert, san = (
        str(directory / n) for n in ("ca.key", "ca.crt", "s.key", "s.csr", "s.crt", "san")
    )
    Path(san).write_text("subjectAltName=IP:127.0.0.1\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    sign = ["-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days", "1", "-extfile", san]
    openssl = _binary("openssl")
    for argv in (
        [openssl, "req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "1", "-subj", "/CN=test-ca"],
        [openssl, "req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"],
        [openssl, "x509", "-req", "-in", csr, *sign, "-out", cert],
    ):
        subprocess.run(argv, capture_output=True, timeout=timeout, check=True)
    return ca, cert, key
