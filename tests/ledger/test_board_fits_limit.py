"""A board page is at most page_size rows and fits the 1 MiB message limit (issue 12: B6).

Real server on port 0; rows made long the way users make them (2,000-character
completion messages); read back over real gRPC and real HTTP.
"""
import httpx

from opsledger.client.ledger_client import OpsledgerClient
from opsledger.client.limits import MAX_MESSAGE_BYTES
from tests.helpers import ServerThread

TICKETS = 220
LONG = "가" * 2000  # the longest message the contract allows: 6,000 bytes in UTF-8


def test_default_page_of_long_rows_stops_early_with_a_token(root):
    srv = ServerThread(root, http_addr="127.0.0.1:0").start()
    try:
        with OpsledgerClient(srv.target, retries=0, timeout=30) as c:
            ids = set()
            for i in range(TICKETS):
                rid = c.submit("ACKNOWLEDGE", {"message_id": f"m{i}"}).request_id
                c.consume(rid, "w1")
                c.complete(rid, "DONE", "w1", LONG)
                ids.add(rid)
            assert TICKETS * len(LONG.encode()) > MAX_MESSAGE_BYTES  # one default page cannot hold them all

            seen, token, pages = [], "", 0
            while True:
                page = c.board(page_token=token)  # default page_size (1000)
                assert page.ByteSize() <= MAX_MESSAGE_BYTES
                assert 0 < page.row_count == len(page.rows) < TICKETS
                assert page.total_count == TICKETS
                seen += [r.request_id for r in page.rows]
                pages += 1
                token = page.next_page_token
                if not token:
                    break
            assert pages >= 2 and len(seen) == TICKETS and set(seen) == ids

            small = c.board(page_size=5)  # a page_size below the byte limit still wins
            assert small.row_count == 5 and small.next_page_token

        base = f"http://127.0.0.1:{srv.app.http_port}"
        http_seen, params = [], {}
        while True:
            r = httpx.get(base + "/api/tickets/latest", params=params, timeout=30)
            assert r.status_code == 200, r.text[:300]
            body = r.json()
            http_seen += [row["request_id"] for row in body["rows"]]
            if not body["next_page_token"]:
                break
            params = {"page_token": body["next_page_token"]}
        assert http_seen == seen
    finally:
        srv.stop()
