"""DVC stage ``unpack``: data.raw (zip, .json.gz or JSON lines) → Parquet (see prodqa.unpack)."""

import sys

from prodqa import params, unpack
from prodqa.files import write_json
from prodqa.stage import parser, run


def main(argv=None):
    args = parser(__doc__, "raw", "out", "metrics").parse_args(argv)
    p = params.load(params.Unpack, args.params)
    metrics = unpack.unpack(args.raw, args.out, **p.model_dump())
    if metrics["skipped"]:
        print(f"{metrics['source']}: skipped {metrics['skipped']} bad lines {metrics['skipped_by_kind']}",
              *metrics["skipped_examples"], sep="\n  ", file=sys.stderr)
    write_json(args.metrics, metrics)


if __name__ == "__main__":
    run(main)
