"""DVC stage ``synth``: write the embedded default trn.json sample (see prodqa.synth)."""

from prodqa import params, synth
from prodqa.stage import parser, run


def main(argv=None):
    args = parser(__doc__, "out").parse_args(argv)
    p = params.load(params.Synth, args.params)
    synth.write(args.out, p.n_products, p.seed)


if __name__ == "__main__":
    run(main)
