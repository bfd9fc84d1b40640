"""Shared fixtures: the shipped params.yaml, overridable per test, and tiny trn.json files."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
from pathlib import Path

import pytest

from prodqa import params, template

ROOT = Path(__file__).resolve().parents[1]


def needs_llama_cpp():
    """llama-cpp-python, or a skip; under CI a failure: `make setup` installs it, so missing there means broken."""
    if importlib.util.find_spec("llama_cpp") is None:
        if os.environ.get("CI"):
            pytest.fail("llama-cpp-python is missing: `make setup` installs it (tools/llama_cpp_wheel.py)")
        pytest.skip("needs llama-cpp-python (make setup installs it)")
    import llama_cpp

    return llama_cpp


@pytest.fixture
def llama_cpp_installed():
    """For ``@pytest.mark.usefixtures``: :func:`needs_llama_cpp` before the test."""
    return needs_llama_cpp()


@pytest.fixture
def shipped() -> dict:
    return params.read_yaml(ROOT / "params.yaml")


@pytest.fixture
def params_file(tmp_path, shipped):
    """Write params.yaml with dotted overrides, e.g. params_file({"sample.n_products": 10})."""

    def write(overrides: dict | None = None) -> str:
        doc = copy.deepcopy(shipped)
        for dotted, value in (overrides or {}).items():
            section, key = dotted.split(".", 1)
            doc[section][key] = value
        path = tmp_path / "params.yaml"
        path.write_text(json.dumps(doc))  # JSON is YAML
        return str(path)

    return write


def jsonl(path: Path, rows: list) -> Path:
    """Write rows (dicts, or raw strings/bytes written verbatim) as JSON lines."""
    with open(path, "wb") as f:
        for row in rows:
            if isinstance(row, bytes):
                f.write(row + b"\n")
            elif isinstance(row, str):
                f.write(row.encode() + b"\n")
            else:
                f.write(json.dumps(row).encode() + b"\n")
    return path


def product(i: int, **kw) -> dict:
    return {"uid": f"{i:010d}", "title": f"Product number {i}", "content": f"Description of product {i}. " * 6,
            "target_ind": [i], "target_rel": [1.0], **kw}


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """A randomly initialised 2-layer Llama with SmolLM2's real tokenizer and chat template, on disk."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from prodqa.base_model import locate

    where, gguf = locate("smollm2-135m-instruct")
    tokenizer = AutoTokenizer.from_pretrained(where, gguf_file=gguf)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    out = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return str(out)


def _lively(tmp_path_factory, tiny_model, seed: int) -> str:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    torch.manual_seed(seed)
    with torch.no_grad():
        for weight in model.parameters():
            if weight.dim() == 2:
                weight.normal_(0, 0.5)
    out = tmp_path_factory.mktemp(f"lively-llama-{seed}")
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(out)
    return str(out)


@pytest.fixture(scope="session")
def lively_model(tmp_path_factory, tiny_model):
    """The tiny model with larger random weights: its greedy answers are words that depend on the prompt
    (the tiny model's own initialisation answers every prompt with newlines, which checks nothing)."""
    return _lively(tmp_path_factory, tiny_model, seed=1)


@pytest.fixture(scope="session")
def other_model(tmp_path_factory, tiny_model):
    """Another lively model (other weights): where a test has a base and a fine-tuned model, they must
    answer differently, so a swapped model or panel shows."""
    return _lively(tmp_path_factory, tiny_model, seed=2)


TUTU = "This neon pink ballet tutu from Dickies is made of nylon. It features two side pockets."


@pytest.fixture
def tiny_run(tmp_path, shipped, tiny_model):
    """Params and templated data for a 4-step run of the tiny model."""
    tp = params.parse("template", {**shipped["template"], "max_seq_len": 64})
    p = params.parse("train", {**shipped["train"], "max_steps": 4, "per_device_train_batch_size": 2, "eval_steps": 2, "save_steps": 1,
                               "logging_steps": 1, "warmup_steps": 0, "lora_r": 4, "lora_alpha": 8, "learning_rate": 1e-2,
                               "lora_first_layer": 1, "torch_compile": False})
    data = tmp_path / "template"
    data.mkdir()
    rows = [{"title": f"Dickies Ballet Tutu Size {i}", "content": TUTU} for i in range(12)]
    for split in ("train", "validation"):
        (data / f"{split}.jsonl").write_text("".join(json.dumps(ex) + "\n" for ex in template.build(rows, tp, train=split == "train")))
    out = {k: str(tmp_path / k) for k in ("adapter", "merged", "checkpoints", "metrics")}
    return p, tp, str(data), out


# The decoder and prompt params most tests use: short answers, short rows.
@pytest.fixture
def gp(shipped):
    return params.parse("generate", {**shipped["generate"], "max_new_tokens": 8})


@pytest.fixture
def tp(shipped):
    return params.parse("template", {**shipped["template"], "max_seq_len": 64})
