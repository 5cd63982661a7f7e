"""Auth, TLS, limits against real servers."""
import ssl
import subprocess

import grpc
import httpx
import pytest

from opsledger.client.ledger_client import OpsledgerClient
from tests.helpers import REPO, ServerThread, ledger_lines, opsledger_cmd
from tests.ops.certs import make_pki

TOKEN = "tok-3f9a1c77e2b84d5e"


def logs(srv):
    return ledger_lines(srv)


@pytest.fixture
def secured(root):
    srv = ServerThread(root, token=TOKEN, http_addr="127.0.0.1:0").start()
    yield srv
    srv.stop()


def test_mutating_calls_need_the_token_reads_do_not(secured):
    with OpsledgerClient(secured.target, token=TOKEN, retries=0) as ok:
        rid = ok.submit("ACKNOWLEDGE", {"message_id": "m"}).request_id
    before = logs(secured)
    near_miss = TOKEN[:-1] + ("x" if TOKEN[-1] != "x" else "y")
    for token in (None, "wrong", near_miss, TOKEN + "x", f"{TOKEN} "):
        with OpsledgerClient(secured.target, token=token, retries=0) as c:
            for call in (lambda: c.submit("ACKNOWLEDGE", {"message_id": "m"}), lambda: c.consume(rid),
                         lambda: c.complete(rid, "DONE"), lambda: c.consume_next("w"), lambda: c.reap(),
                         lambda: c.run_cycle()):
                with pytest.raises(grpc.RpcError) as info:
                    call()
                assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, token
            assert c.board().total_count == 1  # reads stay open
            assert c.ticket(rid).row.request_id == rid
            assert c.latest_cycle().status == "no_cycle_yet"
    assert logs(secured) == before
    base = f"http://127.0.0.1:{secured.app.http_port}"
    r = httpx.post(base + "/api/tickets/consume", json={"request_id": rid})
    assert r.status_code == 401 and r.json()["result"] == "FAIL"
    r = httpx.post(base + "/api/tickets/consume", json={"request_id": rid}, headers={"Authorization": f"Bearer {near_miss}"})
    assert r.status_code == 401
    assert httpx.get(base + "/api/tickets/latest").status_code == 200
    assert logs(secured) == before
    r = httpx.post(base + "/api/tickets/consume", json={"request_id": rid}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200


def test_health_and_reflection_stay_open(secured):
    from tests.ledger.test_grpcurl import GRPCURL

    out = subprocess.run([GRPCURL, "-plaintext", secured.target, "list"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "opsledger.v1.TicketService" in out.stdout


def test_non_loopback_bind_without_token_is_refused(root):
    proc = subprocess.run(opsledger_cmd("serve", "--root", str(root), "--grpc-addr", "0.0.0.0:0", "--no-http"),
                          cwd=REPO, capture_output=True, text=True, timeout=30,
                          env={"PATH": "/usr/bin:/bin", "OPSLEDGER_TOKEN": ""})
    assert proc.returncode == 2 and "without a token" in proc.stderr
    assert not root.exists()  # refused settings create nothing


def test_insecure_no_auth_warns_at_start(root):
    from tests.helpers import ServerProcess

    p = ServerProcess(root, "--insecure-no-auth", grpc_addr="0.0.0.0:0")
    try:
        assert "--insecure-no-auth" in p.log() and '"auth": "off"' in p.log()
    finally:
        assert p.terminate() == 0


def test_tls_and_mutual_tls(root, tmp_path):
    pki = make_pki(tmp_path)
    srv = ServerThread(root, tls_cert=pki["server_cert"], tls_key=pki["server_key"],
                       http_addr="127.0.0.1:0").start()
    try:
        target = f"localhost:{srv.app.grpc_port}"
        with OpsledgerClient(target, tls_ca=pki["ca"], retries=0) as c:
            assert c.submit("ACKNOWLEDGE", {"message_id": "m"}).result == "OK"
        with OpsledgerClient(target, retries=0, timeout=3) as plain:
            with pytest.raises(grpc.RpcError) as info:
                plain.board()
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        r = httpx.get(f"https://localhost:{srv.app.http_port}/api/tickets/latest",
                      verify=ssl.create_default_context(cafile=str(pki["ca"])))
        assert r.status_code == 200 and r.json()["total_count"] == 1
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://localhost:{srv.app.http_port}/api/tickets/latest", timeout=3)
    finally:
        srv.stop()
    srv = ServerThread(root, tls_cert=pki["server_cert"], tls_key=pki["server_key"],
                       tls_client_ca=pki["ca"]).start()
    try:
        target = f"localhost:{srv.app.grpc_port}"
        with OpsledgerClient(target, tls_ca=pki["ca"], retries=0, timeout=3) as anonymous:
            with pytest.raises(grpc.RpcError) as info:
                anonymous.board()
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        with OpsledgerClient(target, tls_ca=pki["ca"], tls_cert=pki["client_cert"], tls_key=pki["client_key"],
                             retries=0) as known:
            assert known.board().total_count == 1
    finally:
        srv.stop()


def test_over_limit_message_is_resource_exhausted(server, client):
    with pytest.raises(grpc.RpcError) as info:
        client.complete("6f1c1f8e-6b51-4f8e-9a59-3b7f0a4c1d2e", "DONE", message="x" * (1 << 20))
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert logs(server) == ([], [])
