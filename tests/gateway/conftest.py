import httpx
import pytest

from tests.helpers import ServerThread


@pytest.fixture
def gw(root):
    srv = ServerThread(root, http_addr="127.0.0.1:0").start()
    srv.base = f"http://127.0.0.1:{srv.app.http_port}"
    srv.http = httpx.Client(base_url=srv.base, timeout=30)
    yield srv
    srv.http.close()
    srv.stop()
