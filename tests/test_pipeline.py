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

from prodqa import params

ROOT = Path(__file__).resolve().parents[1]

TINY = {
    "synth": {"n_products": 400},
    "sample": {"n_products": 60, "val_frac": 0.1, "test_frac": 0.1},
    "template": {"max_seq_len": 64},
    "train": {"max_steps": 2, "per_device_train_batch_size": 2, "eval_steps": 2, "save_steps": 2, "logging_steps": 1,
              "lora_r": 4, "lora_alpha": 8, "lora_first_layer": 1, "torch_compile": False},
    "evaluate": {"seen_examples": 2, "unseen_examples": 2, "typed_examples": 2},
    "generate": {"max_new_tokens": 4},
    "report": {"examples": 2},
    "export_gguf": {"verify_questions": 1, "verify_tokens": 4, "min_top1_agreement": 0.0,
                    "verify": importlib.util.find_spec("llama_cpp") is not None},
}


def sh(*cmd, cwd, check=True, **extra_env):
    env = {**extra_env, **os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "CI": "1",
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


def repro_traced(project: Path) -> Path:
    """The first full `dvc repro` of the tiny project, recording every params key each stage reads."""
    trace = project.parent / "params_read.txt"
    if not (project / "dvc.lock").exists():
        sh("dvc", "repro", cwd=project, **{params.TRACE_ENV: str(trace)})
    return trace


@pytest.mark.slow
def test_repro_noop_push_and_pull_in_a_fresh_clone(project):
    repro_traced(project)
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


# Read by the decoder only when it samples (generate.temperature > 0): greedy answers, the evaluations' default,
# never touch it.
SAMPLING_ONLY = {"generate.top_p"}


@pytest.mark.slow
def test_every_stage_declares_exactly_the_params_keys_it_reads(project):
    """dvc.yaml's params of each stage (a section stands for all its keys) are exactly the keys it read."""
    trace = repro_traced(project)
    read: dict[str, set[str]] = {}
    for line in trace.read_text().splitlines():
        script, key = line.split()
        read.setdefault(script, set()).add(key)
    stages = YAML(typ="safe").load((project / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        declared = set()
        for entry in stage.get("params", []):
            section, _, field = entry.partition(".")
            declared |= {f"{section}.{f}" for f in ([field] if field else params.SECTIONS[section].model_fields)}
        script = stage["cmd"].split("python -m stages.", 1)[1].split()[0]
        got = read.get(script, set())
        # Declared yet unread in this greedy run: keys only sampling reads (the stage's answers depend on them then).
        assert got <= declared and declared - got <= SAMPLING_ONLY, (name, sorted(got ^ declared))


# The stages that read each key: `dvc status` must list exactly these after the key is edited (the stages
# below them follow once their inputs change, which status cannot know before anything runs).
EDITS = {
    "synth.seed": {"synth"},
    "unpack.max_reported_errors": {"unpack"},
    "clean.min_chars": {"clean"},
    "sample.n_products": {"sample"},
    "model.base": {"base_model"},
    "template.seed": {"template", "evaluate_base", "evaluate", "evaluate_typed", "export_gguf"},
    "template.max_seq_len": {"template", "train", "evaluate_base", "evaluate", "evaluate_typed"},
    "train.learning_rate": {"train"},
    "evaluate.seen_examples": {"evaluate_base", "evaluate"},
    "generate.temperature": {"evaluate_base", "evaluate", "evaluate_typed", "export_gguf"},
    "generate.min_confidence": {"evaluate_base", "evaluate", "evaluate_typed"},
    "generate.stop_loops": {"evaluate_base", "evaluate", "evaluate_typed"},
    "evaluate.typed_examples": {"evaluate_typed"},
    "generate.precision": {"evaluate_base", "evaluate", "evaluate_typed"},
    "report.examples": {"report"},
    "export_gguf.verify_tokens": {"export_gguf"},
}


def _bump(value):
    if isinstance(value, bool):
        return not value
    return value + 1 if isinstance(value, int) else value * 0.5 if isinstance(value, float) else value


@pytest.mark.slow
@pytest.mark.parametrize("key", list(EDITS))
def test_editing_one_key_reruns_exactly_the_stages_that_read_it(project, key):
    """After a full repro, editing one key makes `dvc status` list exactly the stages that read it."""
    if not (project / "dvc.lock").exists():
        sh("dvc", "repro", cwd=project)
    yaml = YAML()
    path = project / "params.yaml"
    original = path.read_text()
    doc = yaml.load(original)
    section, field = key.split(".")
    doc[section][field] = {"temperature": 0.5, "precision": "fp32", "base": "another-model"}.get(field) \
        or _bump(doc[section][field])
    try:
        with open(path, "w") as f:
            yaml.dump(doc, f)
        status = json.loads(sh("dvc", "status", "--json", cwd=project).stdout)
        assert set(status) == EDITS[key]
    finally:
        path.write_text(original)


@pytest.mark.slow
def test_a_changed_data_param_produces_new_output_after_a_run_with_the_old_one(project):
    """sample.n_products was once invisible to DVC's run-cache (a key named `size`): the old sample came back."""
    if not (project / "dvc.lock").exists():
        sh("dvc", "repro", cwd=project)
    before = json.loads((project / "metrics" / "sample.json").read_text())["sampled"]
    path = project / "params.yaml"
    original = path.read_text()
    try:
        path.write_text(original.replace(f"n_products: {TINY['sample']['n_products']}", "n_products: 40"))
        sh("dvc", "repro", "sample", cwd=project)
        assert json.loads((project / "metrics" / "sample.json").read_text())["sampled"] == 40 != before
    finally:
        path.write_text(original)
        sh("dvc", "repro", "sample", cwd=project)


@pytest.mark.slow
def test_sigkill_of_dvc_repro_during_train_then_repro_ends_with_the_same_result(project):
    """A real `kill -9` of `dvc repro` mid-train: the next `dvc repro` resumes from a checkpoint and ends
    where an uninterrupted run ends."""
    import signal

    if not (project / "dvc.lock").exists():
        sh("dvc", "repro", cwd=project)
    path = project / "params.yaml"
    original = path.read_text()
    yaml = YAML()
    doc = yaml.load(original)
    doc["train"].update({"max_steps": 8, "save_steps": 1, "eval_steps": 8, "logging_steps": 1})
    try:
        with open(path, "w") as f:
            yaml.dump(doc, f)
        sh("dvc", "repro", "train", cwd=project)  # uninterrupted
        reference = json.loads((project / "metrics" / "train" / "metrics.json").read_text())
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "CI": "1"}
        proc = subprocess.Popen(["dvc", "repro", "-f", "train"], cwd=project, env=env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 300
        while not (project / "checkpoints" / "checkpoint-4").exists() and time.time() < deadline:
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)  # dvc and the stage under it, no chance to clean up
        proc.wait()
        assert not (project / "checkpoints" / "COMPLETE").exists()
        sh("dvc", "repro", "train", cwd=project)
        resumed = json.loads((project / "metrics" / "train" / "metrics.json").read_text())
        # It resumed (from checkpoint 4, or 3 when the kill landed while 4 was being saved) and ended as the reference.
        assert 3 <= resumed["train/resumed_from_step"] < 8 and resumed["step"] == reference["step"] == 8
        assert resumed["eval"]["loss"] == pytest.approx(reference["eval"]["loss"], rel=1e-5)
    finally:
        path.write_text(original)
