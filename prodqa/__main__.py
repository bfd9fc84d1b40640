"""``python -m prodqa ask "…"``: the command-line entry point (see prodqa.ask)."""

import sys

from .files import DataError
from .params import ParamsError


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] != "ask":
        sys.exit('usage: python -m prodqa ask "What is Girls Ballet Tutu Neon Pink?" [--hf] [--grounded]')
    from . import ask

    try:
        ask.main(sys.argv[2:])
    except (DataError, ParamsError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
