"""The whole pipeline under DVC on a tiny config: repro, no-op repro, push, and pull into a fresh clone."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]

TINY = {
    "synth": {"n_products": 400},
    "sample": {"n_products": 60, "val_frac": 0.1, "test_frac": 0.1},
    "template": {"max_seq_len": 64},
    "train": {"max_steps": 2, "batch_size": 2, "eval_steps": 2, "save_steps": 2, "logging_steps": 1,
              "lora_r": 4, "lora_alpha": 8},
    "evaluate": {"seen_examples": 2, "unseen_examples": 2, "max_new_tokens": 4},
    "report": {"examples": 2},
    "export_gguf": {"verify_questions": 1, "verify_tokens": 4, "min_top1_agreement": 0.0,
                    "verify": importlib.util.find_spec("llama_cpp") is not None},
}


def sh(*cmd, cwd, check=True):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "CI": "1",
           "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
           "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.invalid"}
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    if check and proc.returncode:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny_model):
    """A git repo holding the project's tracked files with tiny params; the DVC remote sits beside it."""
    base = tmp_path_factory.mktemp("pipeline")
    work = base / "work"
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        if (ROOT / f).is_file() and not f.startswith(("metrics/", "benchmarks/results/")) and f != "dvc.lock":
            (work / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, work / f)
    yaml = YAML()
    doc = yaml.load((work / "params.yaml").read_text())
    for section, values in TINY.items():
        doc[section].update(values)
    doc["model"]["base"] = tiny_model
    with open(work / "params.yaml", "w") as f:
        yaml.dump(doc, f)
    sh("git", "init", "-q", "-b", "main", cwd=work)
    sh("git", "add", "-A", cwd=work)
    sh("git", "commit", "-qm", "tiny", cwd=work)
    return work


@pytest.mark.slow
def test_repro_noop_push_and_pull_in_a_fresh_clone(project):
    sh("dvc", "repro", cwd=project)
    tuned = json.loads((project / "metrics" / "eval" / "tuned" / "metrics.json").read_text())
    assert tuned["seen"]["examples"] == 2 and tuned["unseen"]["examples"] == 2
    assert (project / "models" / "gguf" / "Modelfile").exists()

    start = time.perf_counter()
    noop = sh("dvc", "repro", cwd=project).stdout
    noop_s = time.perf_counter() - start
    assert "Running stage" not in noop  # nothing re-runs
    print(f"no-op dvc repro: {noop_s:.1f} s")

    sh("dvc", "push", cwd=project)
    sh("git", "add", "-A", cwd=project)
    sh("git", "commit", "-qm", "results", cwd=project)
    clone = project.parent / "clone"
    sh("git", "clone", "-q", str(project), str(clone), cwd=project.parent)
    assert not (clone / "models").exists()
    sh("dvc", "pull", cwd=clone)
    status = sh("dvc", "status", cwd=clone).stdout
    assert "up to date" in status, status
    for out in ("data/sample/test.parquet", "models/merged/model.safetensors", "models/gguf/model-q8_0.gguf",
                "data/eval/tuned/seen.jsonl"):
        assert (clone / out).read_bytes() == (project / out).read_bytes(), out
    assert (clone / "checkpoints" / "fingerprint.json").exists()  # persisted, and restored like any output
