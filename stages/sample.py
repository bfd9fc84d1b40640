"""DVC stage ``sample``: cleaned catalog → train/validation/test Parquet splits (see prodqa.sample)."""

from pathlib import Path

import pyarrow.parquet as pq

from prodqa import params, sample
from prodqa.files import atomic_path, write_json
from prodqa.stage import parser, run


def main(argv=None):
    args = parser(__doc__, "src", "out", "metrics").parse_args(argv)
    p = params.load(params.Sample, args.params)
    parts, metrics = sample.sample(pq.read_table(args.src), p)
    with atomic_path(args.out, is_dir=True) as tmp:
        for name, table in parts.items():
            pq.write_table(table, Path(tmp) / f"{name}.parquet")
    write_json(args.metrics, metrics)


if __name__ == "__main__":
    run(main)
