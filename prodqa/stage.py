"""What every ``stages/*.py`` script shares: argument parsing and turning known failures into one line.

A stage that fails on bad params or bad input prints ``error: <file or key>: <problem>`` and exits 2,
with no traceback; its outputs are left as they were (see ``files.atomic_path``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from .files import DataError, SetupError
from .params import ParamsError


def parser(doc: str | None, *paths: str) -> argparse.ArgumentParser:
    """An argument parser with ``--params`` and one required ``--<name>`` per path the stage uses."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    for name in paths:
        ap.add_argument(f"--{name}", required=True)
    return ap


def run(main: Callable[[Sequence[str] | None], None]) -> None:
    """Run a stage's ``main``; known failures become one line on stderr and exit status 2."""
    try:
        main(None)
    except (ParamsError, DataError, SetupError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: no output was replaced", file=sys.stderr)
        sys.exit(130)
