"""Benchmark of the data stages at full scale: unpack + clean on 2,250,000 generated records (gzipped).

    python -m benchmarks.data_stages [--records 2250000] [--workdir /tmp/prodqa-bench]

Each stage runs in its own process (as under `dvc repro`), timed from outside; peak RSS is the
largest resident set of either process. Prints records/s end to end and writes a JSON result.
Target (issue 2): >= 250,000 records/s end to end and peak RSS <= 1 GiB on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import record

ROOT = Path(__file__).resolve().parents[1]


def run_stage(args: list[str]) -> tuple[float, int]:
    """Run a stage in a child process; return its wall time and peak RSS in bytes."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", "import resource, runpy, sys; sys.argv = sys.argv[1:];"
                           "runpy.run_module(sys.argv[0], run_name='__main__')", *args], cwd=ROOT)
    elapsed = time.perf_counter() - start
    if proc.returncode:
        sys.exit(f"stage {args[0]} failed with status {proc.returncode}")
    # ru_maxrss of RUSAGE_CHILDREN is the peak of the largest child so far, in KiB on Linux.
    return elapsed, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=2_250_000)
    ap.add_argument("--workdir", default="/tmp/prodqa-bench")
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--result", default=str(ROOT / "benchmarks" / "results" / "data_stages.json"))
    args = ap.parse_args(argv)

    work = Path(args.workdir)
    raw = work / f"trn-{args.records}.json.gz"
    if not raw.exists():
        from prodqa import synth

        print(f"generating {args.records:,} records into {raw} (once; cached)…", file=sys.stderr)
        work.mkdir(parents=True, exist_ok=True)
        synth.write(str(raw), args.records, seed=2024)
    os.environ.setdefault("CI", "1")  # no progress bars in the timed runs
    t_unpack, rss_unpack = run_stage(["stages.unpack", "--params", args.params, "--raw", str(raw),
                                      "--out", str(work / "unpack.parquet"), "--metrics", str(work / "unpack.json")])
    t_clean, rss_peak = run_stage(["stages.clean", "--params", args.params, "--src", str(work / "unpack.parquet"),
                                   "--out", str(work / "clean.parquet"), "--metrics", str(work / "clean.json")])
    total = t_unpack + t_clean
    result = {
        "records": args.records,
        "input_bytes": raw.stat().st_size,
        "unpack_s": round(t_unpack, 2),
        "clean_s": round(t_clean, 2),
        "records_per_s_end_to_end": round(args.records / total),
        "records_per_s_unpack": round(args.records / t_unpack),
        "records_per_s_clean": round(args.records / t_clean),
        "peak_rss_mib": round(rss_peak / 2**20),
        "rows_after_clean": json.loads((work / "clean.json").read_text())["rows_out"],
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
    }
    record(result, args.result)


if __name__ == "__main__":
    main()
