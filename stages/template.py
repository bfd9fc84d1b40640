"""DVC stage ``template``: sample splits → prompt–completion JSONL for TRL (see prodqa.template)."""

from pathlib import Path

import pyarrow.parquet as pq

from prodqa import params, template
from prodqa.files import atomic_path, write_json, write_jsonl
from prodqa.stage import parser, run


def main(argv=None):
    args = parser(__doc__, "src", "base", "out", "metrics").parse_args(argv)
    p = params.load(params.Template, args.params)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.base)
    metrics = {}
    with atomic_path(args.out, is_dir=True) as tmp:
        for split in ("train", "validation"):
            rows = pq.read_table(Path(args.src) / f"{split}.parquet", columns=["title", "content"]).to_pylist()
            readers = Path(args.src) / "reading.parquet"  # a sample from before the reading split has none
            readers = (pq.read_table(readers, columns=["title", "content"]).to_pylist()
                       if split == "train" and readers.exists() else [])
            examples = template.build(rows, p, train=split == "train", readers=readers)
            write_jsonl(Path(tmp) / f"{split}.jsonl", examples)
            metrics[split] = template.length_stats(examples, tokenizer, p.max_seq_len)
    write_json(args.metrics, metrics)


if __name__ == "__main__":
    run(main)
