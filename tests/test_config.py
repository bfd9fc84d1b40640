"""params.yaml and dvc.yaml agree with the code: every stage names its script, the library modules it
imports (transitively) and the params it reads, so an edit re-runs exactly what it should."""

import ast
import re
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from prodqa import params

ROOT = Path(__file__).resolve().parents[1]
DVC = YAML(typ="safe").load((ROOT / "dvc.yaml").read_text())
STAGES = DVC["stages"]


def script_of(stage: dict) -> Path:
    match = re.search(r"python -m stages\.(\w+)", stage["cmd"])
    assert match, f"cmd does not run a stages/ script: {stage['cmd']}"
    return ROOT / "stages" / f"{match.group(1)}.py"


def library_imports(path: Path, seen: set | None = None) -> set[str]:
    """prodqa modules imported by a file, transitively, as repo-relative paths."""
    seen = set() if seen is None else seen
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 or node.module == "prodqa":  # from .x import / from prodqa import x
                names = [node.module] if node.level == 1 and node.module else [a.name for a in node.names]
            elif node.module and node.module.startswith("prodqa."):
                names = [node.module.split(".", 1)[1]]
        for name in names:
            rel = f"prodqa/{name}.py"
            if (ROOT / rel).exists() and rel not in seen:
                seen.add(rel)
                library_imports(ROOT / rel, seen)
    return seen


def loaded_sections(path: Path) -> set[str]:
    names = {cls.__name__: name for name, cls in params.SECTIONS.items()}
    return {names[c] for c in re.findall(r"params\.load\(params\.(\w+)", path.read_text())}


@pytest.mark.parametrize("name", list(STAGES))
def test_stage_deps_are_its_script_and_exactly_the_modules_it_imports(name):
    stage = STAGES[name]
    script = script_of(stage)
    code_deps = {d for d in stage["deps"] if d.startswith(("stages/", "prodqa/"))}
    assert code_deps == {str(script.relative_to(ROOT)), *library_imports(script)}  # no module is exempt


@pytest.mark.parametrize("name", list(STAGES))
def test_stage_params_are_exactly_the_sections_it_loads(name):
    stage = STAGES[name]
    declared = {p.split(".")[0] for p in stage.get("params", [])}
    assert declared == loaded_sections(script_of(stage))


@pytest.mark.parametrize("name", list(STAGES))
def test_declared_param_keys_exist_in_the_schema(name):
    for key in STAGES[name].get("params", []):
        section, _, field = key.partition(".")
        assert section in params.SECTIONS, key
        assert not field or field in params.SECTIONS[section].model_fields, f"{name}: {key} is not a params key"


def _keys(node, path=""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield f"{path}{k}"
            yield from _keys(v, f"{path}{k}.")


def test_no_params_key_is_invisible_to_dvc(shipped):
    """DVC 3.67's run-cache drops keys named size/nfiles from a stage's hash (treeverse/dvc#10296)."""
    hidden = [k for k in _keys(shipped) if k.rsplit(".", 1)[-1] in ("size", "nfiles")]
    assert hidden == []


def test_every_section_in_params_yaml_has_a_schema_and_vice_versa(shipped):
    assert set(shipped) == set(params.SECTIONS)


def test_stage_scripts_are_thin():
    for script in (ROOT / "stages").glob("[a-z]*.py"):
        assert len(script.read_text().splitlines()) <= 60, f"{script.name}: move logic into prodqa/"


def test_one_name_everywhere():
    for name, stage in STAGES.items():
        script = script_of(stage).stem
        assert name == script or name.startswith(script + "_"), (name, script)
        assert (ROOT / "prodqa" / f"{script}.py").exists() and (ROOT / "tests" / f"test_{script}.py").exists()


def _argv(stage: dict, params_path: str) -> list[str]:
    import shlex

    cmd = stage["cmd"].replace("${data.raw}", "data/synth/trn.json.gz")
    return [*shlex.split(cmd)[3:], "--params", params_path]  # after `python -m stages.x`


@pytest.mark.parametrize("name, section", [(n, s) for n in STAGES for s in sorted(loaded_sections(script_of(STAGES[n])))])
def test_bad_params_stop_every_stage_before_any_work(name, section, tmp_path, monkeypatch, shipped):
    """An unknown key in any section a stage reads stops it with ParamsError, before it writes anything."""
    import importlib
    import json

    doc = {**shipped, section: {**shipped[section], "bogus_key": 1}}
    prm = tmp_path / "params.yaml"
    prm.write_text(json.dumps(doc))
    monkeypatch.chdir(tmp_path)  # the stage's relative output paths would land here
    module = importlib.import_module(f"stages.{script_of(STAGES[name]).stem}")
    with pytest.raises(params.ParamsError, match=f"{section}.bogus_key: unknown key"):
        module.main(_argv(STAGES[name], str(prm)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]  # no output, no temporary
