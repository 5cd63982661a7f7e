"""A network topology the tests build themselves: PostgreSQL in its own
network namespace, reached by each replica over its own veth pair.

    with Topology(replicas=2) as topo:          # as root
        url = topo.url(0, "opsledger")          # replica 0's way to the database
        topo.partition(0); topo.heal(0)         # its link down / up
        topo.drop_replies(0); topo.restore_replies(0)  # one way: the database's packets to it dropped
        topo.local_url("opsledger")             # unix socket: the checker's way in

The database namespace holds one end of every pair (10.213.B.4i+1/30) and
PostgreSQL listens on exactly those addresses (trust only for that /24). The
other end (10.213.B.4i+2/30) stays in this process's namespace, so replicas
run as ordinary processes whose gRPC/HTTP ports stay on 127.0.0.1. Replica i
reaches the database only through pair i, so pair i down cuts off replica i
alone: packets stop and nothing closes (a partition, not a crash). Only the
namespace, the veth pairs and their addresses are created, and all of them
are removed on exit, on an exception, and at interpreter exit.

``drop_replies(i)`` is the one-way partition: a blackhole route in the
database namespace for replica i's address drops every packet PostgreSQL
sends it (answers, ACKs, SYN-ACKs) while replica i's packets still arrive
(rp_filter is 0 in a new namespace). A COMMIT sent then lands, and its
answer is lost. The route lives in the database namespace, so removing the
namespace removes it too.
"""
from __future__ import annotations

import atexit
import fcntl
import os
import re
import subprocess
import time
from pathlib import Path

from tests.pg import PORT, PgCluster, _as_owner, pg_bin

_LOCK = Path("/tmp/opsledger-netns.lock")  # two harnesses never pick the same block


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def _free_block() -> int:
    used = set(int(m) for m in re.findall(r"10\.213\.(\d+)\.", _ip("-4", "addr").stdout + _ip("-4", "route").stdout))
    for block in range(os.getpid() % 200, 256):
        if block not in used:
            return block
    for block in range(256):
        if block not in used:
            return block
    raise RuntimeError("no free 10.213.x.0/24 block")


class Topology:
    def __init__(self, replicas: int, folder: Path | None = None, settings: dict[str, str] | None = None) -> None:
        """``settings``: extra postgresql.conf lines for this cluster (e.g. logging a checker reads)."""
        if os.geteuid() != 0:
            raise RuntimeError("the partition topology needs root (ip netns)")
        self.n = replicas
        self.tag = f"{os.getpid() % 100000}"
        self.ns = f"olpg{self.tag}"
        self.cluster = PgCluster(folder)
        self.block: int | None = None
        self._made: list[tuple[str, ...]] = []  # undo commands, newest last
        self._closed = False
        self.settings = dict(settings or {})
        self._dropping: set[int] = set()

    # -- addresses ----------------------------------------------------------------
    def db_addr(self, i: int) -> str:
        return f"10.213.{self.block}.{4 * i + 1}"

    def replica_addr(self, i: int) -> str:
        return f"10.213.{self.block}.{4 * i + 2}"

    def _near(self, i: int) -> str:
        return f"olr{self.tag}x{i}"  # this namespace's end (<= 15 chars)

    def _far(self, i: int) -> str:
        return f"old{self.tag}x{i}"  # the database namespace's end

    def url(self, i: int, db: str) -> str:
        return f"postgresql://postgres@{self.db_addr(i)}:{PORT}/{db}"

    def local_url(self, db: str) -> str:
        return self.cluster.url(db)

    # -- life cycle -----------------------------------------------------------------
    def __enter__(self) -> Topology:
        atexit.register(self.close)
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _build(self) -> None:
        with open(_LOCK, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.block = _free_block()
            _ip("netns", "add", self.ns)
            self._made.append(("netns", "del", self.ns))
            _ip("-n", self.ns, "link", "set", "lo", "up")
            for i in range(self.n):
                near, far = self._near(i), self._far(i)
                _ip("link", "add", near, "type", "veth", "peer", "name", far)
                self._made.append(("link", "del", near))  # deletes both ends
                _ip("link", "set", far, "netns", self.ns)
                _ip("addr", "add", f"{self.replica_addr(i)}/30", "dev", near)
                _ip("-n", self.ns, "addr", "add", f"{self.db_addr(i)}/30", "dev", far)
                _ip("link", "set", near, "up")
                _ip("-n", self.ns, "link", "set", far, "up")
        self.cluster.init()
        hba = self.cluster.data / "pg_hba.conf"
        with open(hba, "a") as f:
            f.write(f"host all all 10.213.{self.block}.0/24 trust\n")
        if self.settings:
            with open(self.cluster.data / "postgresql.conf", "a") as f:
                f.writelines(f"{k} = {v}\n" for k, v in self.settings.items())
        listen = ",".join(self.db_addr(i) for i in range(self.n))
        opts = (f"-k {self.cluster.dir} -c listen_addresses='{listen}' -c port={PORT} -c max_connections=200"
                " -c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        subprocess.run(["ip", "netns", "exec", self.ns,
                        *_as_owner([pg_bin("pg_ctl"), "-D", str(self.cluster.data), "-l", str(self.cluster.logfile),
                                    "-w", "-t", "60", "-o", opts, "start"])],
                       check=True, capture_output=True)
        self.cluster.running = True

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            for i in sorted(self._dropping):
                self.restore_replies(i)
            self.cluster.destroy()  # stops PostgreSQL (immediate) before its namespace goes
        finally:
            for cmd in reversed(self._made):
                _ip(*cmd, check=False)
            self._made.clear()
            atexit.unregister(self.close)

    # -- faults -----------------------------------------------------------------------
    def partition(self, i: int) -> float:
        """Link i down on the database's side: packets stop, nothing closes."""
        _ip("-n", self.ns, "link", "set", self._far(i), "down")
        return time.monotonic()

    def heal(self, i: int) -> float:
        _ip("-n", self.ns, "link", "set", self._far(i), "up")
        return time.monotonic()

    def partition_all(self) -> float:
        for i in range(self.n):
            self.partition(i)
        return time.monotonic()

    def heal_all(self) -> float:
        for i in range(self.n):
            self.heal(i)
        return time.monotonic()

    def drop_replies(self, i: int) -> float:
        """Drop every packet the database sends to replica i; its own packets still arrive."""
        _ip("-n", self.ns, "route", "add", "blackhole", f"{self.replica_addr(i)}/32")
        self._dropping.add(i)
        return time.monotonic()

    def restore_replies(self, i: int) -> float:
        _ip("-n", self.ns, "route", "del", "blackhole", f"{self.replica_addr(i)}/32", check=False)
        self._dropping.discard(i)
        return time.monotonic()

    def made(self) -> dict:
        """What exists now that this topology made (for the clean-up test)."""
        netns = self.ns in _ip("netns", "list").stdout.split()
        links = [self._near(i) for i in range(self.n)
                 if _ip("link", "show", self._near(i), check=False).returncode == 0]
        routes = (_ip("-n", self.ns, "route", "show", "type", "blackhole", check=False).stdout.split("\n")
                  if netns else [])
        return {"netns": netns, "links": links, "blackholes": [r.split()[1] for r in routes if r.strip()]}
