"""HF → GGUF (prodqa.gguf_writer): tensor layout, the vocabulary and its pre-tokenizer, round trips."""

import json
from pathlib import Path

import numpy as np
import pytest

from prodqa import gguf_writer, llamacpp
from prodqa.gguf_writer import ExportError

from .conftest import needs_llama_cpp


def test_permute_interleaves_the_rotary_halves_of_each_head():
    w = np.arange(8 * 2).reshape(8, 2)  # 2 heads of 4 rows: halves [0,1],[2,3] per head
    out = gguf_writer.permute(w, n_head=2)
    assert out[:, 0].tolist() == [0, 4, 2, 6, 8, 12, 10, 14]


def test_smollm2_vocab_is_gpt2_bpe_with_control_tokens(tiny_model):
    v = gguf_writer.vocab(Path(tiny_model), 49152)
    # The tokenizer transformers rebuilds from SmolLM2's GGUF pre-tokenizes as GPT-2 does (ByteLevel regex).
    assert v["model"] == "gpt2" and v["pre"] == "gpt-2"
    assert len(v["tokens"]) == 49152 and len(v["merges"]) > 48000 and " " in v["merges"][0]
    im_end = v["tokens"].index("<|im_end|>")
    assert v["types"][im_end] == 3  # CONTROL: llama.cpp renders and stops on it as a special token


def _tokenizer_json(tmp_path, tok: dict) -> Path:
    (tmp_path / "tokenizer.json").write_text(json.dumps(tok))
    return tmp_path


def test_smollm2_hub_pre_tokenizer_is_recognised(tmp_path):
    tok = {"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "added_tokens": [],
           "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
               {"type": "Digits", "individual_digits": True}, {"type": "ByteLevel"}]}}
    assert gguf_writer.vocab(_tokenizer_json(tmp_path, tok), 1)["pre"] == "smollm"


# The pre_tokenizer block of Meta-Llama-3's tokenizer.json, as that file spells it (JSON text, not our constant).
LLAMA3_PRE_TOKENIZER_JSON = r"""{"type": "Sequence", "pretokenizers": [
  {"type": "Split", "pattern": {"Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
   "behavior": "Isolated", "invert": false},
  {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]}"""


def test_llama3_pre_tokenizer_is_recognised(tmp_path):
    tok = {"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "added_tokens": [],
           "pre_tokenizer": json.loads(LLAMA3_PRE_TOKENIZER_JSON)}
    assert gguf_writer.vocab(_tokenizer_json(tmp_path, tok), 1)["pre"] == "llama-bpe"
    tok["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] += "x"  # another regex is another pre-tokenizer
    with pytest.raises(ExportError, match="pre-tokenizer"):
        gguf_writer.vocab(_tokenizer_json(tmp_path, tok), 1)


def test_sentencepiece_style_vocab_gets_scores_and_byte_tokens(tmp_path):
    tok = {"model": {"type": "BPE", "byte_fallback": True, "unk_token": "<unk>",
                     "vocab": {"<unk>": 0, "<s>": 1, "</s>": 2, "<0x0A>": 3, "▁the": 4}, "merges": []},
           "added_tokens": [{"id": 1, "content": "<s>", "special": True}, {"id": 2, "content": "</s>", "special": True}]}
    v = gguf_writer.vocab(_tokenizer_json(tmp_path, tok), 5)
    assert v["model"] == "llama" and v["scores"] == [0.0, -1.0, -2.0, -3.0, -4.0]
    assert v["types"] == [2, 3, 3, 6, 1]  # unknown, control, control, byte, normal


def test_unknown_pre_tokenizer_is_a_clear_error(tmp_path):
    tok = {"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "Whitespace"}}
    with pytest.raises(ExportError, match="pre-tokenizer"):
        gguf_writer.vocab(_tokenizer_json(tmp_path, tok), 1)


@pytest.mark.parametrize("ftype, tolerance", [("f16", 1e-3), ("q8_0", 2e-2)])
def test_gguf_round_trip_through_transformers(tmp_path, tiny_model, ftype, tolerance):
    """transformers reads GGUF back (undoing the q/k permutation): same weights, same tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_writer.write(tiny_model, tmp_path / "m.gguf", ftype)
    original = AutoModelForCausalLM.from_pretrained(tiny_model).state_dict()
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="m.gguf").state_dict()
    assert set(loaded) == set(original)
    for name, tensor in original.items():
        assert np.allclose(loaded[name].float().numpy(), tensor.float().numpy(), atol=tolerance), name
    text = "Girls Ballet Tutu Neon Pink: it's 12\" & 5\u20ac"
    tok = AutoTokenizer.from_pretrained(tmp_path, gguf_file="m.gguf")
    assert tok(text)["input_ids"] == AutoTokenizer.from_pretrained(tiny_model)(text)["input_ids"]
    assert tok.chat_template == AutoTokenizer.from_pretrained(tiny_model).chat_template


@pytest.mark.slow
def test_llama3_rope_scaling_survives_export(tmp_path, tiny_model):
    """Llama 3.1+ models carry rope frequency factors; llama.cpp must compute the same logits as transformers."""
    needs_llama_cpp()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    config = LlamaConfig.from_pretrained(tiny_model)
    config.initializer_range = 0.3  # large weights, so attention (and so rope) dominates the random model's logits
    config.rope_parameters = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                              "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
    torch.manual_seed(1)
    model_dir = tmp_path / "llama3"
    LlamaForCausalLM(config).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    gguf_writer.write(model_dir, tmp_path / "m.gguf", "f32")
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    ids = tokenizer("A pink ballet tutu with three layers of tulle, twelve inches long, for dance class and play.")["input_ids"]
    with torch.no_grad():
        expected = model(input_ids=torch.tensor([ids])).logits[0].numpy()
    got = llamacpp.run(tmp_path / "m.gguf", score=[ids], keep_logits=True).logits[0]
    # Without the factors the rotations of later positions differ and so do their logits.
    assert np.abs(got - expected).max() < 1e-2 * np.abs(expected).max()  # measured: 0.012 of 8.2 with, 6.4 without
