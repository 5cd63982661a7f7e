"""A throwaway PostgreSQL cluster: initdb in a temp folder, unix socket only.

The one home of "start a real PostgreSQL" for the tests, the benchmarks, the
reliability suite and ``make cluster``. As root the server runs as the
``postgres`` user (``initdb`` refuses root) on a folder that user owns.
Nothing listens on TCP: the socket lives in the cluster's own folder.

    python -m tests.pg cluster DIR   # make cluster: PostgreSQL in DIR + two replicas, until Ctrl-C
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PG_BIN_DIRS = ("/usr/lib/postgresql/15/bin",)
PORT = 5432  # only names the socket file; the folder is private


def pg_bin(name: str) -> str:
    for folder in PG_BIN_DIRS:
        path = Path(folder) / name
        if path.exists():
            return str(path)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: install Debian's postgresql package (make test does)")
    return found


def _as_owner(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


class PgCluster:
    """One local cluster; ``url(db)`` names a database in it."""

    def __init__(self, folder: Path | None = None, fsync: bool = True) -> None:
        self.owned = folder is None
        # Short path: a unix socket path must stay under ~100 bytes.
        self.dir = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="opsledger-pg-"))
        self.data = self.dir / "data"
        self.logfile = self.dir / "log"
        self.fsync = fsync
        self.running = False

    def _prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")

    def init(self) -> PgCluster:
        self._prepare()
        if not (self.data / "PG_VERSION").exists():
            subprocess.run(_as_owner([pg_bin("initdb"), "-D", str(self.data), "-U", "postgres",
                                      "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"]),
                           check=True, capture_output=True)
        return self

    def start(self) -> PgCluster:
        if not (self.data / "PG_VERSION").exists():
            self.init()
        opts = (f"-k {self.dir} -c listen_addresses='' -c port={PORT} -c max_connections=200"
                f" -c fsync={'on' if self.fsync else 'off'}"
                + ("" if self.fsync else " -c synchronous_commit=off -c full_page_writes=off"))
        subprocess.run(_as_owner([pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.logfile),
                                  "-w", "-t", "60", "-o", opts, "start"]),
                       check=True, capture_output=True)
        self.running = True
        return self

    def stop(self, mode: str = "fast") -> None:
        """``mode`` "immediate" is a crash: no checkpoint, recovery at the next start."""
        subprocess.run(_as_owner([pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"]),
                       check=False, capture_output=True)
        self.running = False

    def destroy(self) -> None:
        if self.running:
            self.stop("immediate")
        if self.owned:
            shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@/{db}?host={self.dir}&port={PORT}"

    def create_database(self, name: str, template: str | None = None) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            tmpl = f" TEMPLATE {template}" if template else ""
            conn.execute(f'CREATE DATABASE "{name}"{tmpl}')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


_counter = 0


def fresh_name(prefix: str = "t") -> str:
    global _counter
    _counter += 1
    return f"{prefix}_{os.getpid()}_{_counter}_{int(time.time() * 1000) % 100000}"


def cluster_main(folder: Path) -> int:
    """PostgreSQL in ``folder`` and two replicas on it (gRPC 50051/50052, HTTP 8080/8081)."""
    import signal

    from opsledger.server.ledger.postgres import migrate

    folder = folder.resolve()
    cluster = PgCluster(folder / "pg").start()
    url = cluster.url("opsledger")
    try:
        cluster.create_database("opsledger")
    except Exception:  # noqa: BLE001 - already there from an earlier run
        pass
    migrate.migrate(url)
    procs = []
    # The example bundle goes where the replicas read artifacts: the database (once, for both).
    subprocess.run([sys.executable, "-m", "opsledger.server.cli", "bundle", "publish", "--if-missing",
                    "--root", str(folder), "--store", url, "examples/strategy_example.json"], check=False)
    try:
        for i, (grpc_port, http_port) in enumerate(((50051, 8080), (50052, 8081)), 1):
            root = folder / f"replica{i}"
            root.mkdir(parents=True, exist_ok=True)
            cli = [sys.executable, "-m", "opsledger.server.cli"]
            procs.append(subprocess.Popen(cli + ["serve", "--root", str(root), "--store", url,
                                                 "--grpc-addr", f"127.0.0.1:{grpc_port}",
                                                 "--http-addr", f"127.0.0.1:{http_port}"]))
        print(f"\nPostgreSQL: {url}\nreplica 1: gRPC 127.0.0.1:50051, HTTP http://127.0.0.1:8080/board\n"
              f"replica 2: gRPC 127.0.0.1:50052, HTTP http://127.0.0.1:8081/board\nCtrl-C stops all three.",
              flush=True)
        signal.signal(signal.SIGTERM, lambda *_a: (_ for _ in ()).throw(KeyboardInterrupt()))
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
        cluster.stop()
    return 0


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "cluster":
        return cluster_main(Path(argv[1]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
