"""DVC stage ``train``: LoRA fine-tuning (PEFT + TRL on CPU, Unsloth on CUDA); see prodqa.train."""

from prodqa import params, train
from prodqa.stage import parser, run


def main(argv=None):
    args = parser(__doc__, "model", "data", "adapter", "merged", "checkpoints", "metrics").parse_args(argv)
    p = params.load("train", args.params)
    template_p = params.load("template", args.params)
    summary = train.train(args.model, args.data, args.adapter, args.merged, args.checkpoints, args.metrics,
                          p, template_p)
    print(f"trained {summary['steps']} steps with {summary['backend']}: train loss {summary['train_loss']:.3f}, "
          f"eval loss {summary['eval_loss']:.3f} in {summary['runtime_s']:.0f} s")


if __name__ == "__main__":
    run(main)
