"""Every failure an operator can cause: one line naming the cause and the fix, a
non-zero exit, never a traceback (the real `opsledger` command, real ports and files)."""
import os
import socket
import subprocess
import time

import pytest

from tests.helpers import REPO, opsledger_cmd


def run(*args, env=None, cwd=REPO):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("OPSLEDGER_")}
    full_env.update(env or {})
    return subprocess.run(opsledger_cmd(*args), cwd=cwd, capture_output=True, text=True, timeout=30, env=full_env)


def one_line(proc, *words):
    assert proc.returncode not in (0, None), proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def serve(root, *extra, **kw):
    return run("serve", "--root", str(root), *extra, **kw)


@pytest.fixture
def taken_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.fixture
def data_root(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    return root


def test_grpc_port_in_use(data_root, taken_port):
    one_line(serve(data_root, "--grpc-addr", f"127.0.0.1:{taken_port}", "--no-http"),
             "--grpc-addr", "in use", "choose another address")


def test_http_port_in_use(data_root, taken_port):
    one_line(serve(data_root, "--grpc-addr", "127.0.0.1:0", "--http-addr", f"127.0.0.1:{taken_port}"),
             "--http-addr", "in use", "choose another address")


@pytest.mark.parametrize("addr, why", [("nonsense", "expected HOST:PORT"), ("127.0.0.1:99999", "0-65535"),
                                       ("127.0.0.1:http", "expected HOST:PORT")])
def test_bad_grpc_addr(data_root, addr, why):
    one_line(serve(data_root, "--grpc-addr", addr, "--no-http"), "--grpc-addr", why, "e.g. 127.0.0.1:50051")


def test_unknown_request_type():
    one_line(run("submit", "--type", "FOO", "--payload", "{}", "--target", "127.0.0.1:1"),
             "--type", "'FOO'", "REQUEST_RECONCILE", "--help")


@pytest.mark.parametrize("payload, kind", [("[1]", "list"), ('"x"', "str"), ("{nope", "not JSON")])
def test_payload_that_is_not_an_object(payload, kind):
    one_line(run("submit", "--type", "ACKNOWLEDGE", "--payload", payload, "--target", "127.0.0.1:1"),
             "--payload", kind, "JSON object")


def test_unknown_time_zone(data_root):
    one_line(serve(data_root, "--grpc-addr", "127.0.0.1:0", "--no-http", env={"OPSLEDGER_TZ": "Mars/Base"}),
             "OPSLEDGER_TZ", "Mars/Base", "Asia/Seoul")
    assert not (data_root / "state").exists()


def test_corrupt_log_line(data_root):
    logs = data_root / "state" / "tickets"
    logs.mkdir(parents=True)
    (logs / "ticket_requests.jsonl").write_text('{"schema": "nope"}\n{"schema": "nope"}\n')
    one_line(serve(data_root, "--grpc-addr", "127.0.0.1:0", "--no-http"),
             "ticket_requests.jsonl:1", "schema", "opsledger fsck")


def test_log_path_is_a_directory(data_root):
    (data_root / "state" / "tickets" / "ticket_results.jsonl").mkdir(parents=True)
    one_line(serve(data_root, "--grpc-addr", "127.0.0.1:0", "--no-http"),
             "ticket_results.jsonl", "is a folder", "move the folder away")


def test_missing_root_is_an_error_unless_init(tmp_path):
    missing = tmp_path / "typo"
    one_line(serve(missing, "--grpc-addr", "127.0.0.1:0", "--no-http"), str(missing), "no such folder", "--init")
    one_line(run("fsck", "--root", str(missing)), "no such folder")
    one_line(run("reap", "--local", "--root", str(missing)), "no such folder")
    assert not missing.exists()
    ready = tmp_path / "ready.json"
    proc = subprocess.Popen(opsledger_cmd("serve", "--root", str(missing), "--init", "--grpc-addr", "127.0.0.1:0",
                                          "--no-http", "--ready-file", str(ready)), cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            if ready.exists() or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert ready.exists() and (missing / "state" / "tickets" / "ticket_requests.jsonl").is_file()
    finally:
        proc.terminate()
        assert proc.wait(30) == 0
