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
    for row in ("P1 c=1", "P1 c=8", "P1 c=32", "P1 c=8, tracing on", "P2 c=1", "P2 c=32", "P3 ", "P4 ", "P5 ", "P6 "):
        assert f"| {row}" in text, row
    assert "nan" not in text.split("## What each row measures")[0]
    traced = next(line for line in text.splitlines() if line.startswith("| P1 c=8, tracing on"))
    assert " 0 spans" not in traced  # the traced server really exported to the receiver
