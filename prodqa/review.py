"""Review passes: after the first passes over the training set, show again only what is not yet learned.

With ``train.review_share`` < 1, the first ``train.review_from_epoch`` passes show every example, shuffled as the
Trainer would; each later pass shows only ``review_share`` of them, the examples with the highest loss at their
last exposure (the training step's own loss: ranking them costs no compute). A description the model already
reproduces is not shown again, as in spaced repetition, and the tokens go to the long and confusable ones.

The passes are planned up front, so the Trainer sees one epoch of known length and its learning-rate schedule
spans exactly the steps taken. What a pass shows is fixed when it starts and saved with each checkpoint, with
the losses, so a resumed run makes the choices of an uninterrupted one.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

STATE = "review.json"  # in each checkpoint-<step> folder


class ReviewSampler:
    """The order of the training examples over every pass (a torch ``Sampler`` of ``n`` indices).

    Losses arrive through :meth:`record` in the order the indices were given out: the trainer consumes them in
    that order, ``rows`` at a time. Examples of a pass that starts before the last ones of the pass before have
    been trained on (the data loader reads a batch ahead) are ranked by their earlier loss.
    """

    def __init__(self, n: int, epochs: int, full_epochs: int, share: float, seed: int):
        self.n, self.seed = n, seed
        self.plan = [n] * min(full_epochs, epochs) + [max(1, round(share * n))] * max(epochs - full_epochs, 0)
        self.losses: dict[int, float] = {}  # example -> its loss at its last exposure
        self.chosen: dict[int, list[int]] = {}  # review pass -> the examples it shows, fixed when it starts
        self.order: list[int] = []  # the indices given out by the current iteration
        self.recorded = 0  # how many of them have had their loss recorded

    def __len__(self) -> int:
        return sum(self.plan)

    def __iter__(self):
        import torch

        self.order = []
        generator = torch.Generator().manual_seed(self.seed)
        for epoch, count in enumerate(self.plan):
            perm = torch.randperm(self.n, generator=generator).tolist()
            if count < self.n:
                if epoch not in self.chosen:  # the hardest first; never-trained ones (no loss yet) before any
                    hardest = sorted(range(self.n), key=lambda i: (-self.losses.get(i, math.inf), i))
                    self.chosen[epoch] = sorted(hardest[:count])
                keep = set(self.chosen[epoch])
                perm = [i for i in perm if i in keep]
            for i in perm:
                self.order.append(i)
                yield i

    def record(self, loss: float, rows: int) -> None:
        """The loss of the next ``rows`` examples given out (a batch's loss counts for each of its rows)."""
        for i in self.order[self.recorded:self.recorded + rows]:
            self.losses[i] = loss
        self.recorded += rows

    def shown(self) -> list[int]:
        """How many times each example is shown over the whole run."""
        counts = [len([e for e, c in enumerate(self.plan) if c == self.n])] * self.n
        for examples in self.chosen.values():
            for i in examples:
                counts[i] += 1
        return counts

    def save(self, folder: Path) -> None:
        state = {"losses": self.losses, "chosen": self.chosen, "recorded": self.recorded}
        (Path(folder) / STATE).write_text(json.dumps(state))

    def load(self, folder: Path) -> None:
        state = json.loads((Path(folder) / STATE).read_text())
        self.losses = {int(k): v for k, v in state["losses"].items()}
        self.chosen = {int(k): v for k, v in state["chosen"].items()}
        self.recorded = state["recorded"]


def review_trainer(trainer_cls, sampler: ReviewSampler):
    """The trainer drawing its examples from ``sampler`` and telling it each training step's loss."""
    from torch.utils.data import Sampler
    from transformers import TrainerCallback

    class _Sampler(Sampler):  # torch's base class, for the data loader's checks
        def __len__(self):
            return len(sampler)

        def __iter__(self):
            return iter(sampler)

    class Saver(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            sampler.save(Path(args.output_dir) / f"checkpoint-{state.global_step}")

    class ReviewTrainer(trainer_cls):
        def __init__(self, *args, callbacks=None, **kwargs):
            super().__init__(*args, callbacks=[*(callbacks or []), Saver()], **kwargs)

        def _get_train_sampler(self, train_dataset=None):
            return _Sampler()

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            out = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            if model.training:
                sampler.record(float((out[0] if return_outputs else out).detach()), len(inputs["input_ids"]))
            return out

    return ReviewTrainer
