"""DVC stage ``base_model``: model.base → a safetensors model folder (see prodqa.base_model)."""

from prodqa import base_model, params
from prodqa.files import write_json
from prodqa.stage import parser, run


def main(argv=None):
    args = parser(__doc__, "out", "metrics").parse_args(argv)
    p = params.load(params.Model, args.params)
    write_json(args.metrics, base_model.materialise(p.base, args.out))


if __name__ == "__main__":
    run(main)
