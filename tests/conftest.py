import pytest

from opsledger.client.ledger_client import OpsledgerClient
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


# -- PostgreSQL: one throwaway cluster per test session, a fresh database per test --
@pytest.fixture(scope="session")
def pg_cluster():
    from tests.pg import PgCluster

    # fsync off: these tests check behaviour, not durability across a power cut (the
    # database-crash test and the benchmarks run their own cluster with fsync on).
    cluster = PgCluster(fsync=False).start()
    yield cluster
    cluster.destroy()


@pytest.fixture(scope="session")
def pg_template(pg_cluster):
    """A migrated database that fresh test databases are copied from."""
    from opsledger.server.ledger.postgres import migrate

    name = "opsledger_template"
    migrate.migrate(pg_cluster.create_database(name), log=lambda _m: None)
    return name


@pytest.fixture
def pg_url(pg_cluster, pg_template):
    """A fresh, migrated database of its own for one test."""
    from tests.pg import fresh_name

    name = fresh_name()
    url = pg_cluster.create_database(name, template=pg_template)
    yield url
    pg_cluster.drop_database(name)


@pytest.fixture
def pg_empty_url(pg_cluster):
    """A fresh database with no schema at all."""
    from tests.pg import fresh_name

    name = fresh_name("e")
    url = pg_cluster.create_database(name)
    yield url
    pg_cluster.drop_database(name)
