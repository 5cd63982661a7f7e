"""The benchmark's code paths on tiny sizes, so `make bench` cannot rot (no timing is checked)."""
import subprocess
import sys

from tests.helpers import REPO


def test_bench_smoke_runs_every_row(tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    proc = subprocess.run([sys.executable, "-m", "bench.run", "--smoke", "--out", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    table = text.split("## What each row measures")[0]  # the notes below quote old rows too
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| row ")]
    for row in ("P1 c=1 |", "P1 c=8 |", "P1 c=32 |", "P1 c=8, tracing on", "P2 c=1", "P2 c=32",
                "P3a ", "P3b ", "P3c ", "P3d ", "P4 ", "P5 ", "P6 ", "P13 whole board", "P13 one",
                "P11 submit -> event, 1 watcher", "P11 submit -> event, 100 watchers", "P12 ",
                "P8 c=1", "P8 c=32", "P9 ticket life", "P9 the same life", "P10 pairs/s", "P10 ConsumeNext"):
        assert sum(line.startswith(f"| {row}") for line in rows) == 1, row
    assert any("idle watchers" in line for line in rows)
    assert "nan" not in table
    traced = next(line for line in rows if line.startswith("| P1 c=8, tracing on"))
    assert " 0 spans" not in traced  # the traced server really exported to the receiver
