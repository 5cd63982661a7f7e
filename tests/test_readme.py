"""The README's grpcurl and curl lines, run as printed against a real server."""
import re
import subprocess

import pytest

from tests.cycle.conftest import write_bundle
from tests.helpers import REPO, VENV_BIN, ServerProcess


def block_after(heading: str) -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    after = text[text.index(heading):]
    return re.search(r"```sh\n(.*?)```", after, re.S).group(1)


@pytest.fixture
def live(root):
    root.mkdir(parents=True)
    write_bundle(root)
    srv = ServerProcess(root)
    yield srv
    assert srv.terminate() == 0


def run_block(live, heading: str) -> str:
    script = (block_after(heading)
              .replace("127.0.0.1:50051", live.target)
              .replace("127.0.0.1:8080", live.http_base.removeprefix("http://"))
              .replace(".venv/bin/", f"{VENV_BIN}/"))
    proc = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc.stdout


def test_readme_grpcurl_lines_work_as_printed(live):
    out = run_block(live, "### grpcurl")
    assert "opsledger.v1.TicketService" in out
    assert '"new_status": "IN_PROGRESS"' in out and '"new_status": "DONE"' in out
    assert '"decision": "COMPLETED"' in out and '"status": "SERVING"' in out
    assert '"schema": "EVIDENCE_VIEW_V1"' in out and '"kind": "JSON_FILE"' in out


def test_readme_curl_lines_work_as_printed(live):
    out = run_block(live, "### curl")
    assert '"new_status":"IN_PROGRESS"' in out
    assert '"result":"CONFLICT"' in out and '"current_status":"IN_PROGRESS"' in out
    assert '"new_status":"DONE"' in out and '"schema":"TICKETS_BOARD_V1"' in out
    assert '"openapi":"3.1.0"' in out and '{"status":"SERVING","store":"jsonl"}' in out
    # two runs (JSON body, ?confirm=true) and the latest envelope's rows[0]
    assert out.count('"result":"OK","decision":"COMPLETED"') == 3
    assert '"kind":"JSONL_LINE","path":"state/tickets/ticket_results.jsonl","line":1' in out
