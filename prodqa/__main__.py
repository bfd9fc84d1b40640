"""``python -m prodqa ask "…"`` and ``python -m prodqa serve``: the command-line entry points."""

import sys

from .files import DataError, SetupError
from .params import ParamsError

USAGE = ('usage: python -m prodqa ask "What is Girls Ballet Tutu Neon Pink?" [--hf] [--grounded]\n'
         '       python -m prodqa serve [--port 7860] [--host 127.0.0.1]')


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in ("ask", "serve"):
        sys.exit(USAGE)
    command = sys.argv[1]
    try:
        if command == "ask":
            from . import ask

            ask.main(sys.argv[2:])
        else:
            from . import serve

            serve.main(sys.argv[2:])
    except (DataError, ParamsError, SetupError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
