"""Stage ``template``: turn products into question → description examples in TRL's prompt–completion format.

Reads the ``sample`` splits and the base model's tokenizer; writes ``train.jsonl`` and
``validation.jsonl`` plus token-length statistics. Because prompt and completion are separate fields,
TRL computes the loss on the answer tokens only.

``chat`` (default) keeps messages, so TRL renders them with the model's own chat template; ``alpaca``
writes plain-text prompts in the Alpaca layout, for models without a chat template.
"""

from __future__ import annotations

import random

import numpy as np

from .params import Template

ALPACA = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{question}\n\n### Response:\n"
)


def question(title: str, rng: random.Random, phrasings: list[str]) -> str:
    return rng.choice(phrasings).format(title=title)


def answered(prompt, answer: str) -> dict:
    """A prompt (messages or Alpaca text) and its answer, in TRL's prompt–completion layout."""
    if isinstance(prompt, list):
        return {"prompt": prompt, "completion": [{"role": "assistant", "content": answer}]}
    return {"prompt": prompt, "completion": answer}


def example(title: str, description: str, p: Template, rng: random.Random) -> dict:
    """One prompt–completion example; the same (title, rng state) always gives the same question."""
    q = question(title, rng, p.questions)
    if p.format == "alpaca":
        return answered(ALPACA.format(question=q), description)
    prompt = [{"role": "system", "content": p.system_prompt}] if p.system_prompt else []
    prompt.append({"role": "user", "content": q})
    return answered(prompt, description)


def prompt_messages(title: str, p: Template, rng: random.Random):
    """The prompt alone (for generation at evaluation and ask time), in the training layout."""
    return example(title, "", p, rng)["prompt"]


def build(rows: list[dict], p: Template, seed_offset: int = 0) -> list[dict]:
    rng = random.Random(p.seed + seed_offset)
    return [example(r["title"], r["content"], p, rng) for r in rows]


def render(ex: dict, tokenizer, eos: bool = True) -> tuple[list[int], list[int]]:
    """Token ids of (prompt, completion) as TRL will see them."""
    if isinstance(ex["prompt"], list):
        prompt = tokenizer.apply_chat_template(ex["prompt"], add_generation_prompt=True, tokenize=True,
                                               return_dict=False)
        full = tokenizer.apply_chat_template(ex["prompt"] + ex["completion"], tokenize=True, return_dict=False)
        return list(prompt), list(full[len(prompt):])
    prompt = tokenizer(ex["prompt"], add_special_tokens=False)["input_ids"]
    completion = tokenizer(ex["completion"], add_special_tokens=False)["input_ids"]
    return prompt, completion + ([tokenizer.eos_token_id] if eos else [])


def length_stats(examples: list[dict], tokenizer, max_seq_len: int) -> dict:
    lengths = np.array([sum(map(len, render(ex, tokenizer))) for ex in examples])
    if not len(lengths):
        return {"examples": 0}
    return {
        "examples": int(len(lengths)),
        "tokens_total": int(lengths.sum()),
        "tokens_mean": round(float(lengths.mean()), 1),
        "tokens_p50": int(np.percentile(lengths, 50)),
        "tokens_p95": int(np.percentile(lengths, 95)),
        "tokens_max": int(lengths.max()),
        "truncated": int((lengths > max_seq_len).sum()),
        "truncated_share": round(float((lengths > max_seq_len).mean()), 4),
    }
