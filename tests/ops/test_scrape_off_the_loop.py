"""A /metrics scrape that waits on the ledger waits off the event loop.

The ticket gauge asks the store for its counts at scrape time; on the JSONL
store that first takes in another process's appends, under the root's
cross-process lock. Here another real process appended, and the test holds
that lock as a writer mid-batch would: the scrape waits, and gRPC health,
/healthz and reads keep answering meanwhile.
"""
import fcntl
import os
import re
import threading
import time

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from opsledger.client.ledger_client import OpsledgerClient
from opsledger.server.ledger.jsonl.files import LOCK
from tests.helpers import ServerProcess, ServerThread


def lock_waiters(path) -> int:
    """How many processes wait for a flock on ``path`` (the kernel's own list, /proc/locks)."""
    st = os.stat(path)
    inode = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    return sum(1 for line in open("/proc/locks") if "->" in line and line.split()[-3] == inode)


def test_a_scrape_waiting_for_the_ledger_lock_leaves_health_answering(root):
    srv = ServerThread(root, http_addr="127.0.0.1:0").start()
    base = f"http://127.0.0.1:{srv.app.http_port}"
    other = ServerProcess(root, http=False)
    try:
        with OpsledgerClient(other.target, retries=0, timeout=30) as c:
            c.submit("ACKNOWLEDGE", {"message_id": "from-the-other-process"})
    finally:
        assert other.terminate() == 0
    assert srv.app.store.changed_elsewhere()  # the next count takes those lines in first

    lock = os.open(root / LOCK, os.O_RDWR)
    fcntl.flock(lock, fcntl.LOCK_EX)
    scraped: list = []
    scrape = threading.Thread(target=lambda: scraped.append(httpx.get(base + "/metrics", timeout=60)), daemon=True)
    try:
        scrape.start()
        deadline = time.monotonic() + 30
        while not lock_waiters(root / LOCK):  # the scrape has reached the store and waits for the lock
            assert time.monotonic() < deadline and scrape.is_alive(), scraped
            time.sleep(0.02)
        channel = grpc.insecure_channel(srv.target)
        health = health_pb2_grpc.HealthStub(channel)
        # Each of these is served by the server's event loop; a scrape blocking it would hang them all.
        for _ in range(5):
            reply = health.Check(health_pb2.HealthCheckRequest(), timeout=20)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        assert httpx.get(base + "/healthz", timeout=20).json()["status"] == "SERVING"
        channel.close()
        assert scrape.is_alive() and not scraped  # the scrape itself is still waiting for the lock
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        os.close(lock)
    try:
        scrape.join(60)
        (r,) = scraped
        assert r.status_code == 200
        assert re.search(r'^opsledger_tickets\{status="OPEN"\} 1\.0$', r.text, re.M), r.text[-2000:]
    finally:
        srv.stop()
