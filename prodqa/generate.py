"""The only decoder: every answer the project generates comes from here, in transformers or in llama.cpp.

- :func:`generate`: many answers at once from a transformers model (evaluate), in batches an answer leaves
  as soon as it ends (:func:`greedy_batch`; :func:`generate_padded`: ``model.generate``'s padded batches, for
  sampling and a repetition penalty).
- :func:`load_hf` / :func:`stream_hf`: one answer from a transformers model, piece by piece (``ask --hf``).
- :func:`load_gguf` / :func:`stream_gguf`: one answer from a GGUF file in llama.cpp (``ask``, ``serve``).
- :func:`greedy_tokens` / :func:`greedy_tokens_gguf`: greedy token ids, for the GGUF verification.

The ``generate`` params become each backend's arguments in one place (:func:`hf_kwargs`,
:func:`llama_kwargs`, :func:`processors`); with ``stop_loops`` an answer caught in a loop ends there
(:func:`looping`). Every answer carries its **confidence** (:func:`confidence`): the geometric mean
probability the model gave the first tokens it chose, recorded by :class:`TokenLogprobs` the same way in
both backends. A memorised description starts with near-certain tokens; a guessed one does not.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from . import template
from .files import DataError, SetupError

if TYPE_CHECKING:  # transformers is imported lazily: a stage's --help and params errors come back at once
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from .params import Generate


def threads() -> int:
    """The cores this process may run on (llama-cpp-python's own default is half the cores)."""
    return len(os.sched_getaffinity(0))


def hf_kwargs(gp: Generate, pad_token_id: int) -> dict:
    """``model.generate`` arguments for the ``generate`` params."""
    return dict(max_new_tokens=gp.max_new_tokens, do_sample=gp.temperature > 0, temperature=gp.temperature or None,
                top_p=gp.top_p, repetition_penalty=gp.repetition_penalty, pad_token_id=pad_token_id)


def llama_kwargs(gp: Generate) -> dict:
    """llama-cpp-python completion arguments for the ``generate`` params."""
    return dict(max_tokens=gp.max_new_tokens, temperature=gp.temperature, top_p=gp.top_p,
                repeat_penalty=gp.repetition_penalty)


def batched(values) -> bool:
    """Whether a logits processor was handed transformers' torch rows ([batch, …]) rather than llama.cpp's one
    numpy row: the processors below serve both backends."""
    return hasattr(values, "log_softmax")


def log_softmax(logits):
    """Log-probabilities of numpy logits (llama.cpp's), over the last axis: a row, or a row per position."""
    import numpy as np

    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


class TokenLogprobs:
    """A logits processor for both backends that records the log-probability of each token chosen.

    It is called before each new token with the tokens so far and the next token's logits: the last of
    those tokens was chosen from the previous call's logits, so its log-probability is read there. The
    final token (the stop token, or the last one at the length limit) is not scored. It sees the logits as
    each backend hands them to a processor: raw in llama.cpp (one row, numpy); in transformers (a row per batch
    row, torch) after its own processors, which leave them raw for the default greedy decoding without a
    repetition penalty (with sampling, temperature and top-p have been applied).
    """

    def __init__(self):
        self.steps: list = []  # per generated token: its log-probability (a float, or a tensor per batch row)
        self._previous = None

    def __call__(self, input_ids, scores):
        if self._previous is not None:
            if batched(scores):  # torch: [batch, vocab]
                self.steps.append(self._previous.gather(1, input_ids[:, -1:]).squeeze(1))
            else:  # numpy: [vocab]
                self.steps.append(float(self._previous[int(input_ids[-1])]))
        self._previous = scores.float().log_softmax(-1) if batched(scores) else log_softmax(scores)
        return scores

    def row(self, r: int) -> list[float]:
        """The log-probabilities of batch row ``r`` (torch)."""
        return [float(step[r]) for step in self.steps]


CONFIDENCE_TOKENS = 16  # an answer's confidence is read from its first tokens, so `ask` can decide, then stream


def confidence(logprobs: list[float]) -> float:
    """How sure the model was of its answer, in (0, 1]: the geometric mean probability of its first
    ``CONFIDENCE_TOKENS`` tokens; 0 when empty.

    On real records (benchmarks/confidence.py, docs/confidence.md) the first 16 tokens separated trained from
    untrained products as well as the whole answer did (AUROC 0.94 on the selection sets, either way) and
    better than a low percentile or the minimum; they are known early, and a guess that falls into a
    confident loop later is not mistaken for a recall.
    """
    head = logprobs[:CONFIDENCE_TOKENS]
    return round(math.exp(sum(head) / len(head)), 4) if head else 0.0


LOOP_COPIES, LOOP_MIN_TOKENS, LOOP_MAX_PERIOD = 4, 32, 64


def looping(tokens: list[int]) -> bool:
    """True once an answer is caught in a loop: its last tokens are ``LOOP_COPIES`` or more copies of one block
    of up to ``LOOP_MAX_PERIOD`` tokens, ``LOOP_MIN_TOKENS`` tokens at the least.

    A greedy answer that has come this far rarely leaves the loop: 30 of the base model's 70 evaluation answers on
    the generated catalog were such loops, run on to the 320-token limit. None of the 459 real descriptions of
    ``../shared/real_dev`` nor of 3,000 generated ones has one (docs/cost.md). Four copies keep an answer that is
    cut there :func:`prodqa.evaluate.is_degenerate`, as it was.
    """
    n = len(tokens)
    for period in range(1, LOOP_MAX_PERIOD + 1):
        span = max((LOOP_COPIES - 1) * period, LOOP_MIN_TOKENS)  # the tokens that repeat the block before them
        if n < span + period:
            return False
        if tokens[-1] == tokens[-1 - period] and tokens[n - span:] == tokens[n - span - period:n - period]:
            return True
    return False


class EndLoops:
    """A logits processor for both backends that ends an answer caught in a loop (:func:`looping`) by forcing
    its end-of-turn token. The first call sees the prompt alone: what comes after it is the answer."""

    def __init__(self, end: int):
        self.end, self._start = end, None

    def __call__(self, input_ids, scores):
        rows = input_ids if batched(input_ids) else [input_ids]  # torch [batch, tokens]; numpy [tokens]
        if self._start is None:
            self._start = len(rows[0])
        for r, row in enumerate(rows):
            if looping(row[self._start:].tolist()):
                forced = scores[r] if batched(scores) else scores  # llama.cpp: one row
                forced[:] = -math.inf
                forced[self.end] = 0.0
        return scores


def processors(logprobs: TokenLogprobs, gp: Generate, end: int) -> list:
    """An answer's logits processors, in either backend: its log-probabilities recorded, and with
    ``generate.stop_loops`` the answer ended by the token ``end`` once it is caught in a loop."""
    return [logprobs, *([EndLoops(end)] if gp.stop_loops else [])]


@dataclass
class Generated:
    text: str
    logprobs: list[float]  # of the answer's tokens, as chosen (the stop token not included)

    @property
    def confidence(self) -> float:
        return confidence(self.logprobs)


def _pad_and_stops(tokenizer) -> tuple[int, set[int]]:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return pad, {t for t in (tokenizer.eos_token_id, pad) if t is not None}


def _answer(tokenizer, new: list[int], logprobs: list[float], stops: set[int]) -> Generated:
    """The answer in generated tokens ``new``: up to the first stop token, special tokens removed."""
    n = next((k for k, t in enumerate(new) if t in stops), len(new))
    return Generated(tokenizer.decode(new[:n], skip_special_tokens=True).strip(), logprobs[:n])


def _ends(model) -> set[int]:
    """The end-of-turn token(s), as ``model.generate`` stops at them."""
    eos = model.generation_config.eos_token_id
    return {t for t in (eos if isinstance(eos, list) else [eos]) if t is not None}


def left_pad(seqs: list[list[int]], pad: int):
    """Token-id rows left-padded into one batch, as ``model.generate`` pads them (every row ends in the last
    column): the ids, the attention mask, and position ids counted from each row's first real token."""
    import torch

    width = max(map(len, seqs))
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for r, seq in enumerate(seqs):
        ids[r, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
        mask[r, width - len(seq):] = 1
    return ids, mask, (mask.cumsum(1) - 1).clamp(min=0)


def generate(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompt_ids: list[list[int]], gp: Generate,
             batch_size: int, bar=None) -> list[Generated]:
    """Answers to token-id prompts, special tokens and the prompt removed, in the prompts' order.

    Greedy answers are decoded ``batch_size`` at a time, and an answer that ends leaves its batch at once
    (:func:`greedy_batch`): a step costs the answers still being written, not the batch's first size. Sampling
    or a repetition penalty answer by padded batches instead (:func:`generate_padded`, ``model.generate``).
    """
    if gp.temperature > 0 or gp.repetition_penalty != 1.0:
        return generate_padded(model, tokenizer, prompt_ids, gp, batch_size, bar)
    pad, stops = _pad_and_stops(tokenizer)
    ends = _ends(model)
    # Similar lengths together waste less padding; the output order is restored below.
    order = sorted(range(len(prompt_ids)), key=lambda i: len(prompt_ids[i]))
    by_index: dict[int, Generated] = {}
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        answers = greedy_batch(model, [prompt_ids[i] for i in rows], gp.max_new_tokens, ends, pad, bar,
                               stop_loops=gp.stop_loops)
        for i, (new, logprobs) in zip(rows, answers):
            by_index[i] = _answer(tokenizer, new, logprobs, stops)
    return [by_index[i] for i in range(len(prompt_ids))]


def greedy_batch(model, prompt_ids: list[list[int]], max_new_tokens: int, stops: set[int], pad: int,
                 bar=None, stop_loops: bool = False) -> list[tuple[list[int], list[float]]]:
    """Greedy token ids after each prompt (up to a stop token, which is left out, or ``max_new_tokens``, or with
    ``stop_loops`` the point where it is caught in a loop: :func:`looping`), each with its log-probability.

    The prompts are left-padded into one batch, as ``model.generate`` pads them, and decoded with a KV cache; a
    row whose answer ends is dropped from the batch and its cache at once. transformers' own continuous batching
    (paged attention) ran 2-3x slower per token on a CPU, and ``model.generate`` decodes every row until the
    longest answer ends (benchmarks/generation.py).
    """
    import torch
    from transformers import DynamicCache

    device = model.device
    ids, mask, position = (t.to(device) for t in left_pad(prompt_ids, pad))
    cache = DynamicCache(config=model.config)
    live = list(range(len(prompt_ids)))  # batch row -> prompt
    out: list[tuple[list[int], list[float]]] = [([], []) for _ in prompt_ids]
    with torch.inference_mode():
        logits = model(input_ids=ids, attention_mask=mask, position_ids=position, past_key_values=cache,
                       use_cache=True, logits_to_keep=1).logits
        position = position[:, -1:]
        for _ in range(max_new_tokens):
            logprobs = logits[:, -1].float().log_softmax(-1)
            best = logprobs.argmax(-1)
            chosen = logprobs.gather(1, best[:, None]).squeeze(1)
            keep = []
            for r, (token, logprob) in enumerate(zip(best.tolist(), chosen.tolist())):
                tokens, scores = out[live[r]]
                if token not in stops:
                    tokens.append(token)
                    scores.append(logprob)
                if token not in stops and len(tokens) < max_new_tokens and not (stop_loops and looping(tokens)):
                    keep.append(r)
                elif bar is not None:
                    bar.update(1)
            if not keep:
                break
            if len(keep) < len(live):
                index = torch.tensor(keep, device=device)
                cache.batch_select_indices(index)
                best, mask, position = best[index], mask[index], position[index]
                live = [live[r] for r in keep]
            mask = torch.cat([mask, mask.new_ones((len(live), 1))], dim=1)
            position = position + 1
            logits = model(input_ids=best[:, None], attention_mask=mask, position_ids=position, past_key_values=cache,
                           use_cache=True).logits
    return out


def generate_padded(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompt_ids: list[list[int]],
                    gp: Generate, batch_size: int, bar=None) -> list[Generated]:
    """:func:`generate` by padded batches (``model.generate``): prompts left-padded so every row's next token
    sits in the same column; a batch decodes until its longest answer ends."""
    import torch
    from transformers import LogitsProcessorList

    pad, stops = _pad_and_stops(tokenizer)
    # Similar lengths together waste less padding; the output order is restored below.
    order = sorted(range(len(prompt_ids)), key=lambda i: len(prompt_ids[i]))
    by_index: dict[int, Generated] = {}
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        ids, mask, _ = left_pad([prompt_ids[i] for i in rows], pad)
        width = ids.shape[1]
        logprobs = TokenLogprobs()
        ids, mask = ids.to(model.device), mask.to(model.device)
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=mask, use_cache=True, **hf_kwargs(gp, pad),
                                 logits_processor=LogitsProcessorList(processors(logprobs, gp, min(_ends(model)))))
        for r, i in enumerate(rows):
            by_index[i] = _answer(tokenizer, out[r, width:].tolist(), logprobs.row(r), stops)
        if bar is not None:
            bar.update(len(rows))
    return [by_index[i] for i in range(len(prompt_ids))]


def greedy_tokens(model, prompt_ids: list[int], n: int, eos: set[int]) -> list[int]:
    """Up to ``n`` greedy token ids after ``prompt_ids``, through the first of ``eos``."""
    import torch

    with torch.inference_mode():
        # an explicit mask: else generate masks prompt tokens equal to the pad id
        ids = torch.tensor([prompt_ids], device=model.device)
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, do_sample=False,
                             repetition_penalty=1.0, pad_token_id=min(eos))
    new = out[0, len(prompt_ids):].tolist()
    return new[: next((i + 1 for i, t in enumerate(new) if t in eos), len(new))]


def greedy_tokens_gguf(llm, prompt_ids: list[int], n: int, eos: set[int]) -> list[int]:
    """:func:`greedy_tokens` in llama.cpp: up to ``n`` greedy token ids, through the first of ``eos``."""
    llm.reset()
    out: list[int] = []
    for token in llm.generate(prompt_ids, top_k=1, top_p=1.0, min_p=0.0, temp=0.0, repeat_penalty=1.0):
        out.append(token)
        if token in eos or len(out) >= n:
            break
    return out


class Stream:
    """An answer streamed piece by piece; ``confidence`` is known once the pieces are exhausted."""

    def __init__(self, pieces: Iterator[str], logprobs: TokenLogprobs, stop=None):
        self._pieces, self._logprobs, self._stop = pieces, logprobs, stop

    def __iter__(self) -> Iterator[str]:
        return self._pieces

    def __next__(self) -> str:
        return next(self._pieces)

    def close(self) -> None:
        """Stop generating: the rest of the answer is not wanted."""
        if self._stop is not None:
            self._stop.set()
        if hasattr(self._pieces, "close"):
            self._pieces.close()

    @property
    def scored(self) -> int:
        """Tokens whose log-probability is known so far."""
        return len(self._logprobs.steps)

    @property
    def confidence(self) -> float:
        return confidence([float(s if isinstance(s, float) else s[0]) for s in self._logprobs.steps])


GQA_SDPA = "sdpa_gqa"  # the attention load_hf picks on a CPU (:func:`sdpa_gqa`)


def sdpa_gqa(module, query, key, value, attention_mask, dropout: float = 0.0, scaling: float | None = None,
             is_causal: bool | None = None, **kwargs):
    """transformers' ``sdpa`` attention with grouped-query heads kept grouped under a padding mask too.

    transformers' own ``sdpa`` copies each layer's keys and values once per query head that shares them
    (``repeat_kv``) whenever there is a mask, as a padded batch always has: on a CPU those copies of the whole
    KV cache were 29% of a decode step. PyTorch's CPU kernel takes the mask and ``enable_gqa`` together, with the
    same results (benchmarks/generation.py). Registered as :data:`GQA_SDPA`, with ``sdpa``'s masks.
    """
    import torch

    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    out = torch.nn.functional.scaled_dot_product_attention(
        query, key, value, attn_mask=attention_mask, dropout_p=dropout, scale=scaling,
        is_causal=query.shape[2] > 1 and attention_mask is None and causal, enable_gqa=key.shape[1] != query.shape[1])
    return out.transpose(1, 2).contiguous(), None


def attention(device: str) -> str:
    """The attention implementation for decoding on ``device``: :data:`GQA_SDPA` on a CPU (registered here), else
    ``sdpa`` (a CUDA kernel given a mask and ``enable_gqa`` falls back to its slowest path)."""
    if device != "cpu":
        return "sdpa"
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.masking_utils import sdpa_mask

    AttentionInterface.register(GQA_SDPA, sdpa_gqa)
    AttentionMaskInterface.register(GQA_SDPA, sdpa_mask)
    return GQA_SDPA


def load_hf(path: str | os.PathLike, gp: Generate):
    """A transformers model folder and its tokenizer, in ``generate.precision``, with :func:`attention`."""
    if not (Path(path) / "config.json").exists():
        raise DataError(f"{path}: no trained model; run `make repro` (or `dvc repro train`) first")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from . import precision

    tokenizer = AutoTokenizer.from_pretrained(path)
    device = precision.device()
    model = AutoModelForCausalLM.from_pretrained(path, dtype=precision.torch_dtype(gp.precision),
                                                 attn_implementation=attention(device))
    return model.to(device).eval(), tokenizer


def stream_hf(model, tokenizer, prompt, gp: Generate, max_tokens: int | None = None) -> Stream:
    """The answer to a prompt of ``template.prompt``, piece by piece, from a transformers model."""
    from threading import Event, Thread

    import torch
    from transformers import LogitsProcessorList, StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

    class Stopped(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            return torch.full((input_ids.shape[0],), stop.is_set(), dtype=torch.bool)

    stop = Event()
    ids = torch.tensor([template.encode(prompt, tokenizer)], device=model.device)
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    logprobs = TokenLogprobs()
    kw = dict(input_ids=ids, attention_mask=torch.ones_like(ids), streamer=streamer,
              logits_processor=LogitsProcessorList(processors(logprobs, gp, min(_ends(model)))),
              stopping_criteria=StoppingCriteriaList([Stopped()]),
              **{**hf_kwargs(gp, tokenizer.eos_token_id), **({"max_new_tokens": max_tokens} if max_tokens else {})})
    Thread(target=model.generate, kwargs=kw, daemon=True).start()
    return Stream(iter(streamer), logprobs, stop)


def load_gguf(path: str | os.PathLike, n_ctx: int = 4096, logits_all: bool = False):
    """A GGUF file in llama.cpp (llama-cpp-python); DataError for a missing or unreadable file. ``logits_all``: every
    position's logits are kept (prodqa.read scores continuations with them)."""
    if not Path(path).exists():
        raise DataError(f"{path}: no GGUF model; run `make repro` (or `dvc repro export_gguf`) first, or use --hf")
    try:
        from llama_cpp import Llama
    except ImportError:
        raise SetupError("llama-cpp-python is not installed (make setup installs it); or use --hf") from None
    try:
        return Llama(model_path=str(path), n_ctx=n_ctx, n_threads=threads(), n_threads_batch=threads(),
                     logits_all=logits_all, verbose=False)
    except ValueError as err:  # llama-cpp-python: "Failed to load model from file: …" (truncated, not a GGUF)
        raise DataError(f"{path}: not a GGUF model llama.cpp can load ({err}); re-run `dvc repro export_gguf`") from None


def stream_gguf(llm, prompt, gp: Generate, max_tokens: int | None = None) -> Stream:
    """The answer to a prompt of ``template.prompt`` (messages, or Alpaca text), piece by piece, in llama.cpp."""
    logprobs = TokenLogprobs()
    kw = {**llama_kwargs(gp), **({"max_tokens": max_tokens} if max_tokens else {}), "stream": True,
          "logits_processor": processors(logprobs, gp, llm.token_eos())}

    def pieces() -> Iterator[str]:
        try:
            if template.is_chat(prompt):
                for chunk in llm.create_chat_completion(prompt, **kw):
                    text = chunk["choices"][0]["delta"].get("content")
                    if text:
                        yield text
            else:  # template.format alpaca: plain text, as trained
                for chunk in llm.create_completion(prompt, **kw):
                    yield chunk["choices"][0]["text"]
        except ValueError as err:  # llama-cpp-python: "Requested tokens (…) exceed context window of …"
            raise DataError(f"the prompt does not fit the model: {err}") from None

    return Stream(pieces(), logprobs)
