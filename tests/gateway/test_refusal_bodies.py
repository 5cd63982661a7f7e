"""The gateway's own refusals: the FAIL body a gRPC refusal gets.

Real HTTP to a real server (uvicorn on port 0, grpc.aio behind).
"""
import socket
import time

import httpx

from tests.helpers import ServerThread

BAD_REQUEST = "google.rpc.BadRequest"


def violation(r: httpx.Response) -> tuple[str, str]:
    body = r.json()
    assert body["result"] == "FAIL", body
    (detail,) = body["details"]
    assert detail["@type"] == BAD_REQUEST, detail
    (v,) = detail["field_violations"]
    return v["field"], v["description"]


def test_over_the_connection_cap_anything_but_health_gets_the_busy_body(root):
    """Every connection busy: a further one may ask /healthz only; anything else is 503 in the FAIL shape."""
    srv = ServerThread(root, http_addr="127.0.0.1:0", http_max_connections=2).start()
    port = srv.app.http_port
    held = []
    try:
        for i in range(2):  # two HTTP long-polls keep both connections busy
            s = socket.create_connection(("127.0.0.1", port))
            body = b'{"processor_id":"w%d","wait_seconds":30}' % i
            s.sendall(b"POST /api/tickets/consume-next HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
                      b"content-length: %d\r\n\r\n" % len(body) + body)
            held.append(s)
        deadline = time.monotonic() + 30
        while srv.app.metrics.registry.get_sample_value(
                "opsledger_calls_in_progress", {"budget": "long-polls"}) != 2:
            assert time.monotonic() < deadline, "the two long-polls never arrived"
            time.sleep(0.05)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            r = http.get("/api/tickets/latest")
        assert r.status_code == 503 and r.headers["retry-after"] == "1", r.text
        assert r.headers["content-type"] == "application/json"
        assert r.json() == {"result": "FAIL", "message": "server at its connection limit; retry later",
                            "code": "UNAVAILABLE", "details": []}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            assert http.get("/healthz").json()["status"] == "SERVING"
    finally:
        for s in held:
            s.close()
        srv.stop()
