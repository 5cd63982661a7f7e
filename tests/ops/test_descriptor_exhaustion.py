"""Idle and half-open HTTP connections cannot exhaust descriptors (issue 12: B5).

A real ``opsledger serve`` subprocess whose RLIMIT_NOFILE is lowered to
1,024, real sockets: 1,100 idle connections, a slowloris, then a live cycle
that must still write its receipt.
"""
import socket
import time

import httpx

from opsledger.client.ledger_client import OpsledgerClient
from opsledger.server.fdbudget import FD_RESERVE
from opsledger.v1 import cycle_pb2
from tests.cycle.conftest import write_bundle
from tests.helpers import ServerProcess
from tests.ops.descriptors import close_and_stop, open_idle, server_fds, soft_nofile


def test_idle_sockets_leave_descriptors_for_the_cycle_and_health(root):
    write_bundle(root)
    srv = ServerProcess(root, "--http-request-timeout", "3", nofile=(1024, 1024))
    host, port = "127.0.0.1", srv.info["http_port"]
    pid = srv.proc.pid
    idle = []
    try:
        assert soft_nofile(pid) == 1024
        idle = open_idle(port)
        slow = socket.create_connection((host, port))
        slow.sendall(b"GET /api/tickets/latest HTTP/1.1\r\nHost: x\r\n")  # headers never finished
        time.sleep(1.0)  # let the server accept what it will
        assert server_fds(pid) <= 1024 - FD_RESERVE // 2, "connections took the descriptors kept for files"

        with OpsledgerClient(srv.target, retries=0, timeout=60) as c:
            receipt = c.run_cycle().receipt
        assert receipt.result == cycle_pb2.CycleResult.OK and receipt.snapshot_ref, receipt
        assert (root / receipt.snapshot_ref).exists()
        r = httpx.get(f"http://{host}:{port}/healthz", timeout=10)
        assert r.status_code == 200 and r.json()["status"] == "SERVING"

        slow.settimeout(30)
        try:
            closed = slow.recv(1024) == b""
        except ConnectionResetError:
            closed = True  # closed by the deadline or evicted as idle: either way the server let go
        assert closed, "a request that never finished its headers was not closed"
        deadline = time.monotonic() + 30
        while server_fds(pid) > 200:  # every idle connection is closed by the request deadline
            assert time.monotonic() < deadline, f"{server_fds(pid)} descriptors still open"
            time.sleep(0.2)
        assert httpx.get(f"http://{host}:{port}/api/tickets/latest", timeout=10).status_code == 200
    finally:
        log = close_and_stop(idle, srv)
    assert len(log) < 200_000, f"{len(log)} bytes of log"


def test_soft_descriptor_limit_is_raised_to_the_hard_limit(root):
    srv = ServerProcess(root, nofile=(256, 4096))
    try:
        assert soft_nofile(srv.proc.pid) == 4096
    finally:
        assert srv.terminate() == 0
    assert '"nofile": 4096' in srv.log()
