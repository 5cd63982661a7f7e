"""The short form of `make torture`: kill loop, I/O faults, corrupt files, fuzzing, soak."""
import subprocess
import sys

from tests.helpers import REPO


def test_short_torture_passes_every_check(tmp_path):
    out = tmp_path / "RELIABILITY.md"
    proc = subprocess.run([sys.executable, "-m", "torture.run", "--short", "--out", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    report = out.read_text() if out.exists() else ""
    assert proc.returncode == 0, (proc.stdout[-3000:] + proc.stderr[-3000:] + report)
    assert "all checks passed" in report
    assert "| 3 |" in report  # three kill rounds
    assert "**0**" in report  # calls lost
