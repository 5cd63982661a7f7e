"""A route added to a proto shows up in the gateway and /openapi.json with no gateway code change."""
import asyncio
import importlib
import socket
import sys
import threading
from concurrent import futures

import grpc
import httpx
import uvicorn
from grpc_tools import protoc

from opsledger.server.api import package_services
from opsledger.server.gateway.app import build_app
from tests.helpers import REPO

PROTO = '''
syntax = "proto3";
package gwtest.v1;
import "google/api/annotations.proto";
service EchoService {
  rpc Echo(EchoRequest) returns (EchoResponse) {
    option (google.api.http) = { get: "/api/echo/{text}" };
  }
  rpc Shout(EchoRequest) returns (EchoResponse) {
    option (google.api.http) = { post: "/api/echo" body: "*" };
  }
  rpc Repeat(EchoRequest) returns (stream EchoResponse) {
    option (google.api.http) = { get: "/api/echo-stream/{text}" };
  }
}
message EchoRequest { string text = 1; int32 times = 2; }
message EchoResponse { string text = 1; optional string note = 2; }
'''


def _compile(tmp_path):
    (tmp_path / "gwtest" / "v1").mkdir(parents=True)
    (tmp_path / "gwtest" / "v1" / "echo.proto").write_text(PROTO)
    import sysconfig
    from pathlib import Path

    import grpc_tools
    site = sysconfig.get_paths()["purelib"]  # googleapis-common-protos ships google/api/*.proto here
    wkt = Path(grpc_tools.__file__).parent / "_proto"
    assert protoc.main(["protoc", f"-I{tmp_path}", f"-I{site}", f"-I{wkt}", f"--python_out={tmp_path}",
                        str(tmp_path / "gwtest/v1/echo.proto")]) == 0
    sys.path.insert(0, str(tmp_path))
    try:
        return importlib.import_module("gwtest.v1.echo_pb2")
    finally:
        sys.path.remove(str(tmp_path))


def test_compiled_test_proto_becomes_a_route(tmp_path):
    echo = _compile(tmp_path)

    def reply(request, context):
        return echo.EchoResponse(text=request.text * max(request.times, 1))

    grpc_server = grpc.server(futures.ThreadPoolExecutor(2))
    handler = {m: grpc.unary_unary_rpc_method_handler(reply, request_deserializer=echo.EchoRequest.FromString,
                                                      response_serializer=echo.EchoResponse.SerializeToString)
               for m in ("Echo", "Shout")}
    handler["Repeat"] = grpc.unary_stream_rpc_method_handler(
        lambda request, context: (echo.EchoResponse(text=f"{request.text}{i}") for i in range(request.times)),
        request_deserializer=echo.EchoRequest.FromString, response_serializer=echo.EchoResponse.SerializeToString)
    grpc_server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("gwtest.v1.EchoService", handler)])
    port = grpc_server.add_insecure_port("127.0.0.1:0")
    grpc_server.start()

    loop = asyncio.new_event_loop()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    http_port = sock.getsockname()[1]
    state = {}

    async def run():
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        services = [echo.DESCRIPTOR.services_by_name["EchoService"]] + package_services()
        server = uvicorn.Server(uvicorn.Config(build_app(channel, services), log_config=None, lifespan="off"))
        state["server"] = server
        await server._serve(sockets=[sock])
        await channel.close()

    thread = threading.Thread(target=lambda: loop.run_until_complete(run()), daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{http_port}"
        for _ in range(100):
            try:
                httpx.get(base + "/openapi.json")
                break
            except httpx.ConnectError:
                import time
                time.sleep(0.05)
        r = httpx.get(base + "/api/echo/hi", params={"times": "3"})
        assert r.status_code == 200 and r.json() == {"text": "hihihi", "note": None}
        r = httpx.post(base + "/api/echo", json={"text": "yo"})
        assert r.json()["text"] == "yo"
        r = httpx.post(base + "/api/echo", json={"txet": "yo"})
        assert r.status_code == 400 and "txet" in r.json()["message"]
        # A streaming RPC is a streaming route: NDJSON, or SSE when asked for.
        r = httpx.get(base + "/api/echo-stream/x", params={"times": "3"})
        assert r.headers["content-type"].startswith("application/x-ndjson"), r.text
        assert [line for line in r.text.splitlines()] == [
            '{"result":{"text":"x0","note":null}}', '{"result":{"text":"x1","note":null}}',
            '{"result":{"text":"x2","note":null}}']
        r = httpx.get(base + "/api/echo-stream/y", params={"times": "2"}, headers={"accept": "text/event-stream"})
        assert r.text == 'data: {"text":"y0","note":null}\n\ndata: {"text":"y1","note":null}\n\n'
        doc = httpx.get(base + "/openapi.json").json()
        assert "/api/echo/{text}" in doc["paths"] and "post" in doc["paths"]["/api/echo"]
        assert "gwtest.v1.EchoResponse" in doc["components"]["schemas"]
        assert "/api/tickets/latest" in doc["paths"]
    finally:
        state["server"].should_exit = True
        thread.join(10)
        grpc_server.stop(0)
    # the gateway code was not touched: the only route source is the descriptor
    assert "echo" not in (REPO / "server" / "gateway" / "app.py").read_text().lower()
