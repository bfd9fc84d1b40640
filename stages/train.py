"""DVC stage ``train``: LoRA fine-tuning (PEFT + TRL on CPU, Unsloth on CUDA); see prodqa.train.

With ``train.num_processes > 1`` this script re-runs itself under ``accelerate launch`` (DDP); each worker
then runs the very same code, and rank 0 writes the outputs.
"""

import subprocess
import sys

from prodqa import params, train
from prodqa.stage import parser, run


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parser(__doc__, "base", "data", "adapter", "merged", "checkpoints", "metrics").parse_args(argv)
    p = params.load(params.Train, args.params)
    template_p = params.load(params.Template, args.params)
    paths = train.Paths.of(base=args.base, data=args.data, adapter=args.adapter, merged=args.merged,
                           checkpoints=args.checkpoints, metrics=args.metrics)
    if p.num_processes > 1 and not train.launched():
        train.prepare(paths, p, template_p)  # once, before the workers start; they only look
        sys.exit(subprocess.call(train.launch_command(p.num_processes, argv)))
    summary = train.train(paths, p, template_p)
    if train.is_main_process():
        how = f"{summary['backend']}, compiled" if summary["compiled"] else summary["backend"]
        print(f"trained {summary['steps']} steps with {how} on {summary['processes']} process(es): "
              f"train loss {summary['train_loss']:.3f}, eval loss {summary['eval_loss']:.3f} "
              f"in {summary['runtime_s']:.0f} s")


if __name__ == "__main__":
    run(main)
