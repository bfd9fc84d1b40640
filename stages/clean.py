"""DVC stage ``clean``: unpacked products → cleaned catalog and per-rule counts (see prodqa.clean)."""

from prodqa import clean, params
from prodqa.files import write_json
from prodqa.stage import parser, run


def main(argv=None):
    args = parser(__doc__, "src", "out", "metrics").parse_args(argv)
    p = params.load(params.Clean, args.params)
    write_json(args.metrics, clean.clean(args.src, args.out, p))


if __name__ == "__main__":
    run(main)
