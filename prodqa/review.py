"""Review passes: after the first passes over the training set, show again only what is not yet learned.

With ``train.review_share`` < 1, the first ``train.review_from_epoch`` passes show every example, shuffled as the
Trainer would; each later pass shows only ``review_share`` of them, the examples greedy decoding would recall
least at their last exposure (:func:`greedy_scores`, from the training step's own logits: ranking them costs no
extra forward pass). Recall fails at the first wrong token, not on average: a description whose opening forks to
another product's (a review quote many blurbs open with) has a low mean loss and loses all its text at its first
token (docs/cost.md). A description the model already reproduces is not shown again, as in spaced repetition.

The passes are planned up front, so the Trainer sees one epoch of known length and its learning-rate schedule
spans exactly the steps taken. What a pass shows is fixed when it starts and saved with each checkpoint, with
the scores, so a resumed run makes the choices of an uninterrupted one.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

STATE = "review.json"  # in each checkpoint-<step> folder


class ReviewSampler:
    """The order of the training examples over every pass (a torch ``Sampler`` of ``n`` indices).

    Scores (higher: less learned; compared in order, as tuples) arrive through :meth:`record` in the order the
    indices were given out: the trainer consumes them in that order. Examples of a pass that starts before the
    last ones of the pass before have been trained on (the data loader reads a batch ahead) are ranked by their
    earlier score.
    """

    def __init__(self, n: int, epochs: int, full_epochs: int, share: float, seed: int):
        self.n, self.seed = n, seed
        self.plan = [n] * min(full_epochs, epochs) + [max(1, round(share * n))] * max(epochs - full_epochs, 0)
        self.scores: dict[int, list[float]] = {}  # example -> its score at its last exposure
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
                if epoch not in self.chosen:  # the least learned first; never-trained ones (no score) before any
                    hardest = sorted(range(self.n), key=lambda i: ([-x for x in self.scores.get(i, [math.inf])], i))
                    self.chosen[epoch] = sorted(hardest[:count])
                keep = set(self.chosen[epoch])
                perm = [i for i in perm if i in keep]
            for i in perm:
                self.order.append(i)
                yield i

    def record(self, scores: list[list[float]]) -> None:
        """The scores of the next examples given out, one per row of a batch."""
        for i, score in zip(self.order[self.recorded:self.recorded + len(scores)], scores):
            self.scores[i] = list(score)
        self.recorded += len(scores)

    def shown(self) -> list[int]:
        """How many times each example is shown over the whole run."""
        counts = [len([e for e, c in enumerate(self.plan) if c == self.n])] * self.n
        for examples in self.chosen.values():
            for i in examples:
                counts[i] += 1
        return counts

    def save(self, folder: Path) -> None:
        state = {"scores": self.scores, "chosen": self.chosen, "recorded": self.recorded}
        (Path(folder) / STATE).write_text(json.dumps(state))

    def load(self, folder: Path) -> None:
        state = json.loads((Path(folder) / STATE).read_text())
        self.scores = {int(k): v for k, v in state["scores"].items()}
        self.chosen = {int(k): v for k, v in state["chosen"].items()}
        self.recorded = state["recorded"]


def greedy_scores(logits, labels) -> list[list[float]] | None:
    """How far each row is from recall, from a training step's logits (at every position, ``labels``' length, or at
    :func:`prodqa.train.answer_positions` only): [the share of its answer from the first token the model would not
    pick (teacher-forced argmax) to the end, the loss of its worst token]. [0, …]: it would reproduce the answer,
    and the worst token's loss ranks those. None where the step returned no logits (a fused loss)."""
    import torch

    from .train import answer_positions

    if logits is None or logits.numel() == 0:
        return None
    if logits.shape[1] == labels.shape[1]:
        logits, targets = logits[:, :-1], labels[:, 1:]
    else:
        keep = answer_positions(labels)
        if logits.shape[1] != len(keep):
            return None
        targets = labels[:, keep + 1]
    with torch.no_grad():
        scored = targets != -100
        nll = torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), targets, reduction="none", ignore_index=-100)
        wrong = (logits.argmax(-1) != targets) & scored
        before = (scored.cumsum(1) - scored.long())  # scored positions before each one
        first = torch.where(wrong, before, scored.sum(1, keepdim=True)).min(1).values  # scored tokens right before it
        lost = 1 - first / scored.sum(1).clamp(min=1)
    return [[a, b] for a, b in zip(lost.tolist(), nll.max(1).values.tolist())]


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
            if not model.training:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            loss, outputs = super().compute_loss(model, inputs, True, num_items_in_batch)
            rows = len(inputs["input_ids"])
            scores = greedy_scores(getattr(outputs, "logits", None), inputs["labels"])
            sampler.record(scores or [[float(loss.detach())]] * rows)  # no logits: the step's loss for each row
            return (loss, outputs) if return_outputs else loss

    return ReviewTrainer
