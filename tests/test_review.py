"""Review passes (train.review_share): which examples later passes show, and that a resumed run chooses alike."""

import json
import math
from collections import Counter
from pathlib import Path

import pytest

from prodqa import params, train
from prodqa.params import ParamsError
from prodqa.review import ReviewSampler, greedy_scores


def consume(sampler: ReviewSampler, loss_of, rows: int = 1) -> list[int]:
    """Iterate as the trainer does: each batch's loss is recorded before the next batch after it is read."""
    order, pending = [], []
    for i in sampler:  # the data loader reads one batch ahead
        order.append(i)
        pending.append(i)
        if len(pending) == 2 * rows:
            batch, pending = pending[:rows], pending[rows:]
            sampler.record([[loss_of(j)] for j in batch])
    while pending:
        batch, pending = pending[:rows], pending[rows:]
        sampler.record([[loss_of(j)] for j in batch])
    return order


def test_full_passes_show_every_example_and_review_passes_the_highest_losses_only():
    sampler = ReviewSampler(10, epochs=4, full_epochs=2, share=0.3, seed=0)
    assert len(sampler) == 10 + 10 + 3 + 3
    order = consume(sampler, loss_of=lambda i: i / 10)  # example 9 is the least learned
    assert len(order) == len(sampler)
    assert sorted(order[:10]) == sorted(order[10:20]) == list(range(10)) and order[:10] != order[10:20]  # reshuffled
    assert sorted(order[20:23]) == sorted(order[23:]) == [7, 8, 9]
    assert sampler.shown() == [2] * 7 + [4] * 3 == [Counter(order)[i] for i in range(10)]


def test_the_losses_go_to_the_examples_given_out_in_order():
    sampler = ReviewSampler(6, epochs=3, full_epochs=2, share=0.5, seed=1)
    order = consume(sampler, loss_of=lambda i: {0: 3.0, 4: 2.0, 5: 1.0}.get(i, 0.0), rows=2)
    assert sampler.chosen[2] == [0, 4, 5] and sorted(order[12:]) == [0, 4, 5]


def train_on(sampler: ReviewSampler, seen: Counter, skip: int = 0, stop: int | None = None) -> list[int]:
    """A model that learns each example a little at each exposure; the first ``skip`` were trained before."""
    order = []
    for k, i in enumerate(sampler):
        order.append(i)
        if k >= skip:
            sampler.record([[(1 + i % 4) / (1 + seen[i])]])
            seen[i] += 1
        if len(order) == stop:
            break
    return order


def test_a_resumed_sampler_gives_out_what_the_uninterrupted_one_did(tmp_path):
    def sampler():
        return ReviewSampler(10, epochs=5, full_epochs=2, share=0.4, seed=3)

    expected = train_on(sampler(), Counter())
    first, seen = sampler(), Counter()
    taken = train_on(first, seen, stop=22)  # killed inside the first review pass, after a checkpoint
    first.save(tmp_path)
    resumed = sampler()
    resumed.load(tmp_path)
    assert train_on(resumed, seen, skip=22) == expected and expected[:22] == taken


def test_greedy_score_is_the_answer_share_lost_from_the_first_wrong_token_then_the_worst_token():
    """A row whose opening forks to another description loses all of it, and ranks above a row a little unsure
    everywhere but right at every token (a lower worst-token loss) and a row wrong only at its last token."""
    import torch

    labels = torch.tensor([[-100, -100, 1, 2, 3, 4], [-100, -100, 1, 2, 3, 4], [-100, -100, 1, 2, 3, -100]])
    logits = torch.zeros(3, 6, 5)
    for row in range(3):
        for pos in range(5):
            if labels[row, pos + 1] >= 0:
                logits[row, pos, labels[row, pos + 1]] = 9.0
    logits[0, 1, 0] = 10.5  # row 0: its first answer token would be another's
    logits[1, 4, 0] = 11.5  # row 1: its last, and surer of it
    logits[2, 1:4] /= 9  # row 2: right everywhere, p = 0.40
    full = greedy_scores(logits, labels)
    assert [round(lost, 3) for lost, _ in full] == [1.0, 0.25, 0.0] and 0 < full[2][1] < 1 < full[0][1] < full[1][1]
    keep = torch.tensor([1, 2, 3, 4])  # prodqa.train.answer_positions: the positions whose next token is scored
    assert sum(greedy_scores(logits[:, keep], labels), []) == pytest.approx(sum(full, []))
    assert greedy_scores(torch.empty(0), labels) is None
    sampler, given = ReviewSampler(3, epochs=3, full_epochs=2, share=0.34, seed=0), []
    for i in sampler:  # the three rows are examples 0-2: the review pass shows the one that forks
        given.append(i)
        sampler.record([full[i]])
    assert given[6:] == [0]


def test_review_share_needs_whole_passes_and_names_the_key(shipped):
    ok = params.parse("train", {**shipped["train"], "review_share": 0.5, "num_train_epochs": 4, "review_from_epoch": 2})
    assert ok.review_share == 0.5
    for bad in ({"num_train_epochs": 3.5}, {"num_train_epochs": 2}, {"max_steps": 10}, {"packing": True}):
        with pytest.raises(ParamsError, match="train: .*review_share"):
            params.parse("train", {**shipped["train"], "review_share": 0.5, "num_train_epochs": 4, **bad})


@pytest.mark.slow
def test_a_review_run_trains_its_planned_passes_and_resumes_them_exactly(tmp_path, tiny_model, tiny_run):
    """24 examples, 2 a step: two whole passes and a review pass of a quarter, 27 steps; killed in the review pass
    and resumed, the run logs the losses the uninterrupted one did (the same examples, in the same order)."""
    from transformers import TrainerCallback

    p, tp, data, out = tiny_run
    p = p.model_copy(update={"max_steps": -1, "num_train_epochs": 3, "review_share": 0.25, "review_from_epoch": 2,
                             "eval_steps": 100, "save_steps": 5})

    class Kill(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 26:  # after checkpoint 25, inside the review pass (steps 25-27)
                raise KeyboardInterrupt

    def curve(name, **kw):
        dirs = {k: str(tmp_path / name / k) for k in out}
        summary = train.train(train.Paths.of(base=tiny_model, data=data, **dirs), p, tp, **kw)
        metrics = json.loads((Path(dirs["metrics"]) / "metrics.json").read_text())
        return summary, metrics, (Path(dirs["metrics"]) / "plots" / "metrics" / "train" / "loss.tsv").read_text()

    summary, metrics, whole = curve("whole")
    assert summary["steps"] == 27 and metrics["train/exposures_per_example"] == 54 / 24
    with pytest.raises(KeyboardInterrupt):
        curve("killed", extra_callbacks=(Kill(),))
    summary, _, resumed = curve("killed")
    assert summary["resumed_from"].endswith("checkpoint-25") and resumed.splitlines()[-2:] == whole.splitlines()[-2:]
