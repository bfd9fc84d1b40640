"""What every stage script shares (prodqa.stage): one-line errors with exit 2, and Ctrl-C with exit 130."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_interrupted_stage_exits_130_and_replaces_nothing(tmp_path, shipped):
    out = tmp_path / "trn.json.gz"
    out.write_bytes(b"the previous output")
    prm = tmp_path / "params.yaml"
    prm.write_text(json.dumps({**shipped, "synth": {**shipped["synth"], "n_products": 10**8}}))
    proc = subprocess.Popen([sys.executable, "-m", "stages.synth", "--params", str(prm), "--out", str(out)],
                            cwd=ROOT, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not list(tmp_path.glob(".trn.json.gz.*")) and time.time() < deadline:  # writing has begun
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1] == "interrupted: no output was replaced"
    assert out.read_bytes() == b"the previous output" and not list(tmp_path.glob(".trn.json.gz.*"))


def test_failed_stage_keeps_the_previous_output(tmp_path, params_file):
    out = tmp_path / "products.parquet"
    out.write_bytes(b"the previous output")
    bad = tmp_path / "trn.json"
    bad.write_text("not json\n[]\n")
    proc = subprocess.run([sys.executable, "-m", "stages.unpack", "--params", params_file(), "--raw", str(bad),
                           "--out", str(out), "--metrics", str(tmp_path / "m.json")], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith(f"error: {bad}: none of its 2 lines is a usable record")
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert out.read_bytes() == b"the previous output" and not (tmp_path / "m.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml", "products.parquet", "trn.json"]
