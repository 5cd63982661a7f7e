"""`opsledger watch` as a real subprocess against a real server."""
import json
import signal
import subprocess

from tests.helpers import REPO, opsledger_cmd


def _start(server, *flags):
    return subprocess.Popen(opsledger_cmd("watch", "--target", server.target, *flags), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_watch_prints_lines_then_resumes(server, client):
    rid = client.submit("ACKNOWLEDGE", {"message_id": "m1"}).request_id
    client.consume(rid, "w1", "picked up")
    proc = _start(server, "--from-beginning", "--json")
    try:
        first, second = json.loads(proc.stdout.readline()), json.loads(proc.stdout.readline())
    finally:
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert first["kind"] == "SUBMITTED" and first["request"]["payload"] == {"message_id": "m1"}
    assert second["kind"] == "TRANSITION" and second["result"]["processor_id"] == "w1"
    assert f"--after {second['revision']}" in err
    # A readable line per event; --after resumes after the given one.
    client.complete(rid, "DONE", "w1", "all good")
    proc = _start(server, "--from-beginning")
    try:
        line = proc.stdout.readline()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
    assert "SUBMITTED" in line and rid in line and '{"message_id":"m1"}' in line and f"@{first['revision']}" in line
    proc = _start(server, "--after", first["revision"])
    try:
        lines = [proc.stdout.readline(), proc.stdout.readline()]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
    assert "TRANSITION" in lines[0] and "IN_PROGRESS" in lines[0] and "by w1: picked up" in lines[0]
    assert rid in lines[1] and "DONE" in lines[1] and "all good" in lines[1] and lines[1].rstrip().split("@")[-1]


def test_watch_refuses_bad_input(server):
    bad = subprocess.run(opsledger_cmd("watch", "--target", server.target, "--status", "BOGUS"), cwd=REPO,
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "--status" in bad.stderr
    bad = subprocess.run(opsledger_cmd("watch", "--target", server.target, "--after", "garbage"), cwd=REPO,
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 1 and "INVALID_ARGUMENT: after:" in bad.stderr
