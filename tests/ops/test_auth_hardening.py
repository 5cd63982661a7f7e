"""Tokens, the Bearer scheme, forwarded addresses and protected reads (issue 12: D12).

Real servers (threads and ``opsledger serve`` subprocesses), real gRPC,
real HTTP, the real grpcurl binary.
"""
import json
import logging
import subprocess

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from opsledger.client.ledger_client import OpsledgerClient
from opsledger.server.observability import RepeatFilter
from opsledger.server.settings import MIN_TOKEN_CHARS
from opsledger.v1 import tickets_pb2 as pb
from opsledger.v1 import tickets_pb2_grpc
from tests.helpers import REPO, ServerProcess, ServerThread, opsledger_cmd
from tests.ledger.test_grpcurl import GRPCURL

TOKEN = "tok-5d0c2b9e41f74a8c"


def serve_refused(root, env: dict, *extra: str) -> subprocess.CompletedProcess:
    root.mkdir(parents=True, exist_ok=True)
    return subprocess.run(opsledger_cmd("serve", "--root", str(root), "--grpc-addr", "127.0.0.1:0", "--no-http",
                                        *extra),
                          cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", **env})


@pytest.mark.parametrize("token,needle", [
    ("   ", "blank"),
    ("\t \n", "blank"),
    ("short-token", f"at least {MIN_TOKEN_CHARS} characters"),
    ("has a space in the middle", "without spaces"),
])
def test_blank_short_or_spaced_tokens_are_refused_at_start(root, tmp_path, token, needle):
    for grpc_addr in ("127.0.0.1:0", "0.0.0.0:0"):
        out = serve_refused(root, {"OPSLEDGER_TOKEN": token}, "--grpc-addr", grpc_addr)
        assert out.returncode == 2 and needle in out.stderr and "Traceback" not in out.stderr, out.stderr
    token_file = tmp_path / "token"
    token_file.write_text(token)
    out = serve_refused(root, {}, "--token-file", str(token_file))
    assert out.returncode == 2 and needle in out.stderr and str(token_file) in out.stderr, out.stderr
    with pytest.raises(Exception, match=needle):
        ServerThread(root, token=token).start()


def test_token_file_is_stripped(root, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(f"  {TOKEN}\n\n")
    srv = ServerProcess(root, "--token-file", str(token_file), http=False)
    try:
        with OpsledgerClient(srv.target, token=TOKEN, retries=0) as c:
            assert c.submit("ACKNOWLEDGE", {"message_id": "m"}).result == "OK"
    finally:
        assert srv.terminate() == 0


def test_bearer_scheme_is_case_insensitive_and_credentials_exact(root):
    srv = ServerThread(root, token=TOKEN, http_addr="127.0.0.1:0").start()
    base = f"http://127.0.0.1:{srv.app.http_port}"
    try:
        channel = grpc.insecure_channel(srv.target)
        stub = tickets_pb2_grpc.TicketServiceStub(channel)
        req = pb.SubmitTicketRequest(request_type=pb.RequestType.ACKNOWLEDGE)
        req.payload.update({"message_id": "m"})
        for header in (f"Bearer {TOKEN}", f"bearer {TOKEN}", f"BEARER {TOKEN}", f"bEaReR  {TOKEN}"):
            assert stub.SubmitTicket(req, metadata=[("authorization", header)], timeout=10).result == "OK", header
            r = httpx.post(base + "/api/tickets", json={"request_type": "ACKNOWLEDGE", "payload": {"message_id": "m"}},
                           headers={"authorization": header})
            assert r.status_code == 200, (header, r.text)
        for header in ("Bearer ", "Bearer    ", f"Basic {TOKEN}", f"Bearer{TOKEN}", f"Bearer {TOKEN} x", TOKEN):
            with pytest.raises(grpc.RpcError) as info:
                stub.SubmitTicket(req, metadata=[("authorization", header)], timeout=10)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, header
        channel.close()
    finally:
        srv.stop()


def rpc_lines(log: str, method: str) -> list[dict]:
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    return [x for x in lines if x.get("event") == "rpc" and x.get("method", "").endswith(method)]


def test_forwarded_for_is_trusted_only_from_the_in_process_gateway(root):
    srv = ServerProcess(root)
    try:
        channel = grpc.insecure_channel(srv.target)
        stub = tickets_pb2_grpc.TicketServiceStub(channel)
        stub.GetBoard(pb.GetBoardRequest(), timeout=10,
                      metadata=[("x-forwarded-for", "203.0.113.66"), ("x-opsledger-gateway", "guessed")])
        channel.close()
        assert httpx.get(srv.http_base + "/api/tickets/consume-next", timeout=10).status_code == 405
        httpx.post(srv.http_base + "/api/tickets/consume-next", json={"wait_seconds": 0}, timeout=10)
    finally:
        assert srv.terminate() == 0
    log = srv.log()
    assert "203.0.113.66" not in log
    (direct,) = rpc_lines(log, "/GetBoard")
    assert direct["via"] is None
    (gateway,) = rpc_lines(log, "/ConsumeNext")
    assert gateway["via"] == "127.0.0.1"


def test_protect_reads_guards_reads_metrics_and_reflection_but_not_health(root):
    srv = ServerThread(root, token=TOKEN, protect_reads=True, http_addr="127.0.0.1:0").start()
    base = f"http://127.0.0.1:{srv.app.http_port}"
    try:
        with OpsledgerClient(srv.target, retries=0) as anonymous:
            for read in (anonymous.board, lambda: anonymous.ticket("6f1c1f8e-6b51-4f8e-9a59-3b7f0a4c1d2e"),
                         anonymous.latest_cycle):
                with pytest.raises(grpc.RpcError) as info:
                    read()
                assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with OpsledgerClient(srv.target, token=TOKEN, retries=0) as c:
            assert c.board().status == "ready"
        for path in ("/api/tickets/latest", "/api/live/cycle/latest", "/metrics"):
            assert httpx.get(base + path).status_code == 401, path
            assert httpx.get(base + path, headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200, path
        assert httpx.get(base + "/healthz").json()["status"] == "SERVING"
        channel = grpc.insecure_channel(srv.target)
        check = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert check.status == health_pb2.HealthCheckResponse.SERVING
        channel.close()
        refused = subprocess.run([GRPCURL, "-plaintext", srv.target, "list"], capture_output=True, text=True, timeout=30)
        assert refused.returncode != 0 and "Unauthenticated" in refused.stderr + refused.stdout
        allowed = subprocess.run([GRPCURL, "-plaintext", "-H", f"authorization: Bearer {TOKEN}", srv.target, "list"],
                                 capture_output=True, text=True, timeout=30)
        assert allowed.returncode == 0 and "opsledger.v1.TicketService" in allowed.stdout
    finally:
        srv.stop()


def test_protect_reads_needs_a_token(root):
    out = serve_refused(root, {"OPSLEDGER_PROTECT_READS": "1"})
    assert out.returncode == 2 and "--protect-reads needs a token" in out.stderr


def test_repeated_error_lines_are_rate_limited():
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    now = [0.0]
    handler = Keep()
    handler.addFilter(RepeatFilter(burst=5, window=10, clock=lambda: now[0]))
    logger = logging.getLogger("opsledger.test.repeats")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        for _ in range(10_000):
            logger.error("socket.accept() out of system resource")
        logger.error("a different line")
        logger.info("info lines are never filtered")
        logger.info("info lines are never filtered")
        now[0] = 11.0
        logger.error("socket.accept() out of system resource")
    finally:
        logger.removeHandler(handler)
    assert records[:5] == ["socket.accept() out of system resource"] * 5
    assert records[5:8] == ["a different line", "info lines are never filtered", "info lines are never filtered"]
    assert records[8] == ("socket.accept() out of system resource [and 9995 identical lines suppressed "
                          "in the last 10s]")
    assert len(records) == 9
