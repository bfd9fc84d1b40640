"""Benchmark scripts: each measures one speed target and records its result under benchmarks/results/."""

import json
from pathlib import Path


def record(result: dict, path: str | Path) -> None:
    """Print the result and keep it as JSON, so the figure quoted in docs/benchmarks.md has a source."""
    print(json.dumps(result, indent=2))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(result, indent=2) + "\n")
