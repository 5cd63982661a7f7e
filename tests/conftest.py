import pytest

from client.ledger_client import OpsledgerClient
from tests.helpers import ServerThread


@pytest.fixture
def root(tmp_path):
    return tmp_path / "root"


@pytest.fixture
def server(root):
    srv = ServerThread(root).start()
    yield srv
    srv.stop()


@pytest.fixture
def client(server):
    with OpsledgerClient(server.target, retries=0, timeout=10) as c:
        yield c
