"""Running GGUF files in llama.cpp (llama-cpp-python) in a child process, so a crash is an error, not the end.

A llama.cpp built for another CPU dies on an illegal instruction (SIGILL) the first time it runs a kernel
this CPU lacks; in-process that kills the stage or the whole test suite without a word. Every batch of
llama.cpp work the pipeline checks (``export_gguf`` verification, the set-up self-check, the tests) goes
through :func:`run`, which starts ``python -m prodqa.llamacpp`` on a request file and reads the results back;
a signal becomes :class:`LlamaCppError` saying what to do.

``python -m prodqa.llamacpp --selfcheck`` (the last step of ``make setup``) writes a tiny random Llama as
q8_0 and f16 GGUF files and runs a 40-token prompt through each.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .files import SetupError

REBUILD = "rebuild it for this CPU with `make clean-venv setup` (tools/llama_cpp_wheel.py builds a portable wheel)"
SELFCHECK_PROMPT_TOKENS = 40  # llama.cpp's AMX q8_0 kernels crashed on prompts of 8+ tokens; 1-token prompts ran


class LlamaCppError(SetupError):
    """llama.cpp is missing, crashed or failed on a file; the message names the file and what to do."""


@dataclass
class Result:
    greedy: list[list[int]] = field(default_factory=list)  # tokens generated for each greedy prompt
    argmax: list[list[int]] = field(default_factory=list)  # next-token argmax at every position of each scored sequence
    logits: list[np.ndarray] = field(default_factory=list)  # full logits of each scored sequence (with keep_logits)


def run(model: str | os.PathLike, *, greedy: list[list[int]] = (), n_tokens: int = 0, eos: set[int] = frozenset(),
        score: list[list[int]] = (), keep_logits: bool = False, timeout: float = 600) -> Result:
    """Greedy-decode ``greedy`` prompts (up to ``n_tokens``, stopping at ``eos``) and score ``score`` sequences.

    Runs in a child process; raises LlamaCppError naming ``model`` if llama.cpp is missing or dies.
    """
    request = {"model": str(model), "greedy": [list(map(int, p)) for p in greedy], "n_tokens": int(n_tokens),
               "eos": sorted(map(int, eos)), "score": [list(map(int, s)) for s in score], "keep_logits": keep_logits,
               "n_ctx": max([512, *(len(p) + n_tokens + 8 for p in greedy), *(len(s) + 8 for s in score)])}
    with tempfile.TemporaryDirectory(prefix="prodqa-llamacpp-") as tmp:
        req, out = Path(tmp) / "request.json", Path(tmp) / "result.npz"
        req.write_text(json.dumps(request))
        try:
            proc = subprocess.run([sys.executable, "-m", "prodqa.llamacpp", str(req), str(out)],
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise LlamaCppError(f"{model}: llama.cpp did not finish within {timeout:.0f} s") from None
        if proc.returncode < 0:
            name = signal.Signals(-proc.returncode).name
            why = " (illegal instruction: llama-cpp-python was built for another CPU)" if name == "SIGILL" else ""
            raise LlamaCppError(f"{model}: llama.cpp crashed with {name}{why}; {REBUILD}")
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
            raise LlamaCppError(f"{model}: llama.cpp failed ({last})")
        data = np.load(out)
        result = Result(greedy=[data[f"greedy_{i}"].tolist() for i in range(len(request["greedy"]))],
                        argmax=[data[f"argmax_{i}"].tolist() for i in range(len(request["score"]))])
        if keep_logits:
            result.logits = [data[f"logits_{i}"] for i in range(len(request["score"]))]
        return result


def _worker(request_path: str, out_path: str) -> None:
    """The child's side of :func:`run`: load the model once, do the work, write the arrays."""
    from .generate import greedy_tokens_gguf, threads

    try:
        from llama_cpp import Llama
    except ImportError:
        sys.exit("llama-cpp-python is not installed (`make setup` installs it)")
    req = json.loads(Path(request_path).read_text())
    if not Path(req["model"]).is_file():
        sys.exit(f"no such GGUF file: {req['model']}")
    llm = Llama(model_path=req["model"], n_ctx=req["n_ctx"], logits_all=bool(req["score"]), n_threads=threads(),
                verbose=False, seed=0)
    arrays, eos = {}, set(req["eos"])
    for i, prompt in enumerate(req["greedy"]):
        arrays[f"greedy_{i}"] = np.asarray(greedy_tokens_gguf(llm, prompt, req["n_tokens"], eos), dtype=np.int64)
    for i, seq in enumerate(req["score"]):
        llm.reset()
        llm.eval(seq)
        logits = np.asarray(llm.scores[: len(seq)], dtype=np.float32)
        arrays[f"argmax_{i}"] = logits.argmax(-1)
        if req["keep_logits"]:
            arrays[f"logits_{i}"] = logits
    with open(out_path, "wb") as f:
        np.savez(f, **arrays)


def tiny_model(out_dir: str | os.PathLike, vocab: int = 320) -> Path:
    """A random 2-layer Llama with a byte-level BPE tokenizer, small enough to write and run in a second."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = Path(out_dir)
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    merges = [("Ġ", "t"), ("h", "e")]  # llama.cpp refuses a BPE vocabulary without merges
    tokens = {c: i for i, c in enumerate([*alphabet, *("".join(m) for m in merges)])}
    tok = Tokenizer(models.BPE(vocab=tokens, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         eos_token_id=len(fast) - 1, bos_token_id=None, pad_token_id=None)
    LlamaForCausalLM(config).save_pretrained(out)
    fast.save_pretrained(out)
    return out


def selfcheck() -> list[str]:
    """Run a 40-token prompt through a tiny q8_0 and f16 GGUF in llama.cpp; return one line per file."""
    from .gguf_writer import write

    lines = []
    with tempfile.TemporaryDirectory(prefix="prodqa-selfcheck-") as tmp:
        model_dir = tiny_model(Path(tmp) / "model")
        prompt = [int(t) for t in np.random.default_rng(0).integers(0, 256, SELFCHECK_PROMPT_TOKENS)]
        for ftype in ("q8_0", "f16"):
            path = Path(tmp) / f"tiny-{ftype}.gguf"
            write(model_dir, path, ftype)
            result = run(path, greedy=[prompt], n_tokens=8, score=[prompt])
            lines.append(f"llama.cpp ok: {ftype} GGUF, {len(prompt)}-token prompt, "
                         f"{len(result.greedy[0])} tokens generated")
    return lines


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--selfcheck"]:
        try:
            print("\n".join(selfcheck()))
        except LlamaCppError as err:
            print(f"error: set-up self-check: {err}", file=sys.stderr)
            sys.exit(2)
        return
    if len(argv) != 2:
        sys.exit("usage: python -m prodqa.llamacpp --selfcheck | REQUEST.json RESULT.npz")
    _worker(*argv)


if __name__ == "__main__":
    main()
