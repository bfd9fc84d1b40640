"""DVC stage ``catalog``: the cleaned catalog as a SQLite FTS5 lookup file for ``ask`` and ``serve`` (see prodqa.catalog)."""

from prodqa import catalog
from prodqa.files import write_json
from prodqa.stage import parser, run


def main(argv=None):
    args = parser(__doc__, "src", "out", "metrics").parse_args(argv)
    write_json(args.metrics, catalog.build(args.src, args.out))


if __name__ == "__main__":
    run(main)
