"""Idle connections on the gRPC port (no HTTP/2 preface ever sent) cannot exhaust
descriptors nor keep gRPC callers out for long: a real ``opsledger serve`` whose
RLIMIT_NOFILE is lowered to 1,024, and 1,100 real idle sockets."""
import time

import grpc
import httpx

from opsledger.client.ledger_client import OpsledgerClient
from opsledger.server.fdbudget import FD_RESERVE
from tests.cycle.conftest import write_bundle
from tests.helpers import ServerProcess
from tests.ops.descriptors import close_and_stop, open_idle, server_fds


def test_idle_grpc_sockets_are_capped_then_released_by_the_handshake_deadline(root):
    write_bundle(root)
    srv = ServerProcess(root, "--http-request-timeout", "3", nofile=(1024, 1024))
    pid, http = srv.proc.pid, f"http://127.0.0.1:{srv.info['http_port']}"
    idle = []
    try:
        idle = open_idle(srv.info["grpc_port"])
        time.sleep(1.0)  # let the server accept what it will
        assert server_fds(pid) <= 1024 - FD_RESERVE // 2, "connections took the descriptors kept for files"
        # The cap is full of idle sockets, yet the store and the cycle still open their files.
        r = httpx.post(f"{http}/api/live/cycle/run?confirm=true", timeout=60)
        assert r.status_code == 200 and r.json()["receipt"]["result"] == "OK", r.text[:500]
        assert httpx.get(f"{http}/healthz", timeout=10).status_code == 200
        # Sockets that never send the HTTP/2 preface are closed at the handshake deadline
        # (3 s here), so gRPC callers get in again (grpc's own default would hold them 120 s).
        deadline = time.monotonic() + 30  # a hang guard; the state below is what is checked
        while True:
            try:
                with OpsledgerClient(srv.target, retries=0, timeout=5) as c:
                    rid = c.submit("ACKNOWLEDGE", {"message_id": "after-idle"}).request_id
                break
            except grpc.RpcError as err:
                assert err.code() == grpc.StatusCode.UNAVAILABLE, err
                assert time.monotonic() < deadline, "idle sockets still keep gRPC callers out"
                time.sleep(0.5)
        assert rid
        assert server_fds(pid) < 200, f"{server_fds(pid)} descriptors still open"
    finally:
        close_and_stop(idle, srv)
