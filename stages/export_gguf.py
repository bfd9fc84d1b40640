"""DVC stage ``export_gguf``: merged model → GGUF files + Ollama Modelfile, verified in llama.cpp (see prodqa.export_gguf)."""

import pyarrow.parquet as pq

from prodqa import export_gguf, params
from prodqa.files import write_json
from prodqa.stage import parser, run


def main(argv=None):
    args = parser(__doc__, "merged", "base", "test", "out", "metrics").parse_args(argv)
    p = params.load(params.ExportGguf, args.params)
    tp = params.load(params.Template, args.params)
    gp = params.load(params.Generate, args.params)
    rows = pq.read_table(args.test, columns=["title", "content"]).to_pylist()
    write_json(args.metrics, export_gguf.export(args.merged, rows, args.out, p, tp, gp, base_dir=args.base))


if __name__ == "__main__":
    run(main)
