"""Benchmark: how long a newcomer's command takes here (``make repro``, ``make test``, ``dvc repro``), as a record.

    python -m benchmarks.timed [--name repro_fresh] [--emulated-avx2] [--cwd /tmp/clone] -- make repro

Runs the command in this checkout (or in ``--cwd``: a fresh clone of it, as a newcomer has) and records its wall time, exit status and what was already there (a set-up
.venv; DVC outputs in the cache, which a fresh clone has not), so a time in the README is a run, not prose.
``--emulated-avx2`` runs it with ``ATEN_CPU_CAPABILITY=avx2`` (torch's AVX2 kernels; the command's own
``-S ...precision=fp32`` overrides are up to it): faster than a real AVX2-only EPYC, and recorded as emulated.
Result: benchmarks/results/timed_{name}.json, and a line of the results table.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from pathlib import Path

from benchmarks import RESULTS, ROOT, record


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", required=True, help="what was timed, e.g. repro_fresh, test, dvc_repro_after_sample")
    ap.add_argument("--emulated-avx2", action="store_true")
    ap.add_argument("--cwd", default=str(ROOT), help="where to run it: this checkout, or a fresh clone of it")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        ap.error("give the command to time after --")
    env = {**os.environ, **({"ATEN_CPU_CAPABILITY": "avx2"} if args.emulated_avx2 else {})}
    where = Path(args.cwd).resolve()
    before = {"venv_set_up": (where / ".venv" / ".installed").exists(),
              "dvc_outputs_present": (where / "models").exists() or (where / "data" / "template").exists(),
              "pip_cache": os.environ.get("PIP_CACHE_DIR", "default"), "fresh_clone": where != ROOT}
    start = time.perf_counter()
    rc = subprocess.run(command, cwd=where, env=env).returncode
    seconds = time.perf_counter() - start
    record({"timed": " ".join(command), "name": args.name, "rc": rc, "seconds": round(seconds, 1),
            "minutes": f"{int(seconds // 60)} min {round(seconds % 60)} s", "emulated_avx2": args.emulated_avx2,
            "before": before}, RESULTS / f"timed_{args.name}.json")
    raise SystemExit(rc)


if __name__ == "__main__":
    main()
