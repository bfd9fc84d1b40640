"""Stages ``evaluate_base`` and ``evaluate``: the same command on two models, asking two sets of questions.

- ``seen``: products of the train split, each asked the phrasing it never had in training
  (``template.heldout_question``): closed-book recall of what the model was trained on.
- ``unseen``: products of the test split, never trained on: generalisation, or guessing.

Reads a model folder (the base model, or the merged fine-tuned one) and the ``sample`` splits; writes one
JSON line per question and answer (with per-example scores) per set, and dvclive metrics per set:
ROUGE-1/2/L (rouge-score, stemmed), BLEU (sacrebleu), the loss and perplexity of the real description
under the model, and how many answers were empty or degenerate (repetition loops).

Answers come from :func:`prodqa.generate.generate` (greedy batches an answer leaves as it ends), each with its
confidence.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import TYPE_CHECKING

from .generate import generate, left_pad
from .params import Evaluate, Generate, Template
from .template import answered, encode, prompt, question_text, render

if TYPE_CHECKING:  # transformers is imported lazily: a stage's --help and params errors come back at once
    from transformers import PreTrainedModel, PreTrainedTokenizerBase



REFERENCE_BATCH_TOKENS = 4096  # tokens per reference_loss forward (padding included): its answer logits stay < 1 GB


def reference_loss(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, examples: list[dict], max_seq_len: int,
                   batch_tokens: int = REFERENCE_BATCH_TOKENS) -> list[float]:
    """Mean token NLL of each reference answer given its question (answer tokens only), in the examples' order.

    Examples of similar length share a forward pass of at most ``batch_tokens`` tokens (padding included):
    one padded to the longest description computed every short one's padding too. They are left-padded, so
    every answer ends in the last column and only the answers' columns go through the output head
    (``logits_to_keep``): fp32 logits over the 49k vocabulary at every padded position were 4 GB a batch of 40.
    """
    import torch

    rendered = [render(ex, tokenizer) for ex in examples]
    seqs = [(p + c)[:max_seq_len] for p, c in rendered]
    answers = [max(len(s) - len(p), 0) for s, (p, _) in zip(seqs, rendered)]
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    batches: list[list[int]] = []
    for i in order:  # ascending lengths: the newest example is its batch's widest
        if batches and (len(batches[-1]) + 1) * len(seqs[i]) <= batch_tokens:
            batches[-1].append(i)
        else:
            batches.append([i])
    losses = [0.0] * len(seqs)
    for rows in batches:
        keep = max(answers[i] for i in rows) + 1  # the columns whose logits predict an answer token
        labels = torch.full((len(rows), keep), -100, dtype=torch.long)
        for r, i in enumerate(rows):
            seq, n = seqs[i], answers[i]
            if n:
                labels[r, keep - n:] = torch.tensor(seq[len(seq) - n:], dtype=torch.long)
        ids, mask, position = left_pad([seqs[i] for i in rows], pad=0)
        ids, mask, position, labels = (t.to(model.device) for t in (ids, mask, position, labels))
        with torch.inference_mode():
            logits = model(input_ids=ids, attention_mask=mask, position_ids=position, logits_to_keep=keep).logits
        # The answer tokens alone, one row each. cross_entropy over a transposed (row, vocab, column) view of every
        # column, shorter answers' padding included, took 2.5x as long on a CPU (docs/cost.md) and strayed ~10x
        # further from a float64 loss.
        targets = labels[:, 1:]
        scored = targets != -100
        nll = torch.nn.functional.cross_entropy(logits[:, :-1][scored].float(), targets[scored], reduction="none")
        sums = nll.new_zeros(len(rows)).index_add_(0, scored.nonzero()[:, 0], nll)
        for i, loss in zip(rows, (sums / scored.sum(1).clamp(min=1)).cpu().tolist()):
            losses[i] = loss
    return losses


def auroc(positive: list[float], negative: list[float]) -> float:
    """Probability that a random positive scores above a random negative (ties count half): 1 separates fully."""
    if not positive or not negative:
        return float("nan")
    wins = sum((p > n) + 0.5 * (p == n) for p in positive for n in negative)
    return round(wins / (len(positive) * len(negative)), 4)


def confidence_metrics(seen: list[float], unseen: list[float], threshold: float, seen_another: list[bool] | None = None,
                       unseen_another: list[bool] | None = None) -> dict:
    """How well answer confidence tells recalled (seen) from guessed (unseen) answers, and at ``threshold``
    (``generate.min_confidence``) the share of each set that would be answered from memory: confident, and not
    another trained product's description (``*_another``: per answer, from :class:`prodqa.learned.Learned`)."""
    def share(xs, another):
        kept = [x >= threshold and not a for x, a in zip(xs, another or [False] * len(xs))]
        return round(sum(kept) / len(kept), 4) if kept else float("nan")

    vetoed = [x >= threshold and a for x, a in zip(unseen, unseen_another or [False] * len(unseen))]
    return {"auroc": auroc(seen, unseen), "threshold": threshold,
            "seen_from_memory": share(seen, seen_another),  # should be ~1: recalled answers kept
            "unseen_from_memory": share(unseen, unseen_another),  # should be ~0: confident guesses
            "unseen_another_product": round(sum(vetoed) / len(vetoed), 4) if vetoed else float("nan")}  # confident, but another's


def is_degenerate(text: str, n: int = 4, repeats: int = 4) -> bool:
    """Empty, or stuck in a loop: some n-word phrase comes back `repeats` times or more."""
    words = re.findall(r"\w+", text.lower())
    if not words:
        return True
    grams = Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
    return bool(grams) and max(grams.values()) >= repeats


def score(answers: list[str], references: list[str]) -> tuple[dict, list[dict]]:
    """Corpus metrics and per-example ROUGE for answers against reference descriptions."""
    import sacrebleu
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    per = []
    for answer, ref in zip(answers, references):
        s = scorer.score(ref, answer)
        per.append({k: round(v.fmeasure, 4) for k, v in s.items()})
    n = max(len(per), 1)
    metrics = {k: round(sum(e[k] for e in per) / n, 4) for k in ("rouge1", "rouge2", "rougeL")}
    metrics["bleu"] = round(sacrebleu.corpus_bleu(answers, [references]).score, 2) if answers else 0.0
    metrics["empty_answers"] = sum(1 for a in answers if not a.strip())
    metrics["degenerate_answers"] = sum(1 for a in answers if a.strip() and is_degenerate(a))
    return metrics, per


def evaluate_sets(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, sets: dict[str, tuple[list[dict], list[str]]],
                  p: Evaluate, gp: Generate, tp: Template, bar=None) -> dict[str, tuple[dict, list[dict]]]:
    """Answer each set's questions (one per product of its rows) and score them against the real descriptions.
    All sets at once: their answers share the decoder's batches (a decode step costs about as much for a few
    rows as for many, so fuller batches cost less); each set gets its own metrics and records."""
    rows = [r for rs, _ in sets.values() for r in rs]
    ps = [prompt(q, tp) for _, asked in sets.values() for q in asked]
    generated = generate(model, tokenizer, [encode(x, tokenizer) for x in ps], gp, p.batch_size, bar=bar)
    refs = [r["content"] for r in rows]
    losses = reference_loss(model, tokenizer, [answered(x, ref) for x, ref in zip(ps, refs)], tp.max_seq_len)
    out, start = {}, 0
    for name, (rs, _) in sets.items():
        part = slice(start, start + len(rs))
        start += len(rs)
        metrics, per = score([g.text for g in generated[part]], refs[part])
        metrics["loss"] = round(sum(losses[part]) / max(len(rs), 1), 4)
        metrics["perplexity"] = round(math.exp(metrics["loss"]), 3)
        metrics["examples"] = len(rs)
        metrics["confidence"] = round(sum(g.confidence for g in generated[part]) / max(len(rs), 1), 4)
        records = [{"uid": r.get("uid"), "title": r["title"], "question": question_text(x), "reference": ref,
                    "answer": g.text, "confidence": g.confidence, "loss": round(lo, 4), **s}
                   for r, x, ref, g, lo, s in zip(rs, ps[part], refs[part], generated[part], losses[part], per)]
        out[name] = (metrics, records)
    return out
