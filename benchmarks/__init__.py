"""Benchmark scripts: each measures one target and records its result (``record``).

A result lands twice: in full in its own JSON file under benchmarks/results/ (what docs link to), and as one
line of the results table, benchmarks/results/runs.jsonl, which says which code ran it (the commit, and
``code``: a digest of the files a result depends on, so "today's code" is a comparison, not a date), when, on which
CPU and with which command, beside its figures (per-example lists left in the JSON file).
``python -m benchmarks.table`` renders the current figures from it.
"""

import hashlib
import json
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
RUNS = RESULTS / "runs.jsonl"
README = ROOT / "README.md"
LONG_LIST = 20  # a list of more dicts than this is per-example detail: kept in the JSON file, not in the table


def commit() -> str:
    """The code that ran: HEAD, and "+changes" when the work tree differed from it."""
    def git(*a):
        return subprocess.run(["git", *a], capture_output=True, text=True, cwd=ROOT).stdout.strip()

    return git("rev-parse", "--short", "HEAD") + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")


CODE = ("prodqa", "stages", "params.yaml", "requirements.txt", "dvc.yaml")  # what every result depends on


def code(module: str) -> str:
    """A digest of the tracked files under :data:`CODE` and of the benchmark ``module``'s own file, as they are in the
    work tree (committed or not): two runs with the same digest ran the same code and defaults."""
    listed = subprocess.run(["git", "ls-files", "--", *CODE], capture_output=True, text=True, cwd=ROOT).stdout.split()
    digest = hashlib.sha256()
    for name in sorted({*listed, f"benchmarks/{module}.py"}):
        path = ROOT / name
        digest.update(name.encode() + b"\0" + (path.read_bytes() if path.exists() else b"") + b"\0")
    return digest.hexdigest()[:12]


def cpu() -> dict:
    """The CPU kind: its model name and the flags that pick the code path (AMX, AVX-512; none: AVX2 only)."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    name = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    return {"model": name.group(1).strip() if name else "unknown",
            "flags": sorted(set(re.findall(r"\b(amx\w*|avx512\w*)\b", text)))}


def provenance() -> dict:
    """Who ran what: computed on import, when ``sys.argv`` is still ``["-m", …]`` under ``python -m``; the
    interpreter's own arguments (``sys.orig_argv``) name the module."""
    argv = sys.orig_argv[sys.orig_argv.index("-m") + 1:] if "-m" in sys.orig_argv else sys.argv
    module = argv[0].removeprefix("benchmarks.") if argv and "." in argv[0] else Path(argv[0]).stem if argv else "?"
    return {"commit": commit(), "code": code(module), "date": time.strftime("%Y-%m-%d"), "cpu": cpu(),
            "command": " ".join([f"python -m benchmarks.{module}", *argv[1:]])}


STARTED = provenance()  # as the run began: the code may be committed on while a long benchmark runs


def figures(value):
    """``value`` without its per-example lists (more than LONG_LIST dicts)."""
    if isinstance(value, dict):
        return {k: figures(v) for k, v in value.items()
                if not (isinstance(v, list) and len(v) > LONG_LIST and all(isinstance(x, dict) for x in v))}
    return value


def record(result: dict, path: str | Path, final: bool = True) -> None:
    """Print the result and keep it as JSON at ``path``; a ``final`` one also becomes a line of the results table."""
    result = {**STARTED, **result}
    print(json.dumps(result, indent=2))
    path = Path(path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    if final:
        name = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
        with RUNS.open("a") as table:
            table.write(json.dumps({"benchmark": path.stem, "file": name, **figures(result)}) + "\n")
