"""A quick, seeded run of the fuzz harness (benchmarks/fuzz.py; 5,000 inputs for the README figures)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_seeded_fuzz_batch_finds_nothing(tmp_path):
    out = tmp_path / "fuzz.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fuzz.py"), "--count", "80", "--batch", "20",
                           "--seed", "7", "--timeout", "300", "--out", str(out)], capture_output=True, text=True,
                          timeout=900, cwd=ROOT)
    result = json.loads(out.read_text())
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert result["count"] == 80 and not any(result["failures"].values())
    assert result["peak_rss_mb"] < 3000
