import httpx
import pytest

from opsledger.server.common.clock import Clock, FixedClock
from tests.helpers import ServerThread


@pytest.fixture
def ev(root):
    """A real server (gRPC + HTTP gateway) whose clock the test moves (for the reaper)."""
    clock = FixedClock(Clock().now())
    srv = ServerThread(root, clock=clock, http_addr="127.0.0.1:0").start()
    srv.clock = clock
    srv.base = f"http://127.0.0.1:{srv.app.http_port}"
    srv.http = httpx.Client(base_url=srv.base, timeout=30)
    yield srv
    srv.http.close()
    srv.stop()
