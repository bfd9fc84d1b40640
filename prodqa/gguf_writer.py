"""HF → GGUF for Llama-family models, offline: gguf-py's ``GGUFWriter`` and its own quantizers.

Nothing is downloaded or compiled at export time (unlike Unsloth's ``save_pretrained_gguf``, which fetches
and builds llama.cpp). It follows the Llama path of llama.cpp's ``convert_hf_to_gguf.py`` from the llama.cpp tree
that gguf-py 0.19.0 (pinned in requirements.txt) was released from, and writes files that llama-cpp-python
0.3.36 (requirements-llama.txt) reads: the rotary q/k weight permutation,
gpt2-style BPE vocabularies (SmolLM2, Llama 3.x) and SentencePiece-style ones stored as tokenizer.json
(TinyLlama), special tokens, the chat template and Llama 3.1+ rope factors. K-quants (``q4_k_m``…) are
made from the f16 file by llama.cpp's own quantizer, through llama-cpp-python.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .files import DataError
from .params import GGUF_TYPES

# Pre-tokenizers llama.cpp knows, recognised from tokenizer.json (llama.cpp itself hashes a test string).
LLAMA3_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"


class ExportError(DataError):
    """The model cannot be exported (unsupported architecture or tokenizer); the message says why."""


def permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF stores rotary q/k weights as two halves per head; llama.cpp wants them interleaved."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _pre_tokenizer_parts(tok: dict) -> list[dict]:
    pre = tok.get("pre_tokenizer") or {}
    return pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]


def _byte_level(tok: dict) -> bool:
    return any(p.get("type") == "ByteLevel" for p in _pre_tokenizer_parts(tok))


def _pre_tokenizer(tok: dict) -> str:
    parts = _pre_tokenizer_parts(tok)
    types = [p.get("type") for p in parts]
    if types == ["Digits", "ByteLevel"] and parts[0].get("individual_digits"):
        return "smollm"
    if types and types[0] == "Split" and parts[0].get("pattern", {}).get("Regex") == LLAMA3_SPLIT:
        return "llama-bpe"
    if types == ["ByteLevel"]:
        return "gpt-2"
    raise ExportError(f"tokenizer.json: pre-tokenizer {types} is not one llama.cpp knows by this exporter")


def vocab(model_dir: Path, vocab_size: int) -> dict:
    """Tokenizer metadata for GGUF from tokenizer.json: tokens, types, merges/scores, model and pre."""
    import gguf

    tok = json.loads((model_dir / "tokenizer.json").read_text())
    model = tok["model"]
    if model.get("type") != "BPE":
        raise ExportError(f"tokenizer.json: model type {model.get('type')!r}; only BPE vocabularies are supported")
    by_id = {i: t for t, i in model["vocab"].items()}
    added = {a["id"]: a for a in tok.get("added_tokens", [])}
    by_id.update({i: a["content"] for i, a in added.items()})
    tokens, types = [], []
    # Llama 2 / TinyLlama style: ▁ pieces and <0xNN> bytes. A byte-level pre-tokenizer means GPT-2 style BPE
    # even where byte_fallback is set (transformers 5.17 sets it when it rebuilds SmolLM2's vocab from GGUF).
    spm = bool(model.get("byte_fallback")) and not _byte_level(tok)
    for i in range(vocab_size):
        text = by_id.get(i, f"[PAD{i}]")
        if i in added:
            kind = gguf.TokenType.CONTROL if added[i].get("special") else gguf.TokenType.USER_DEFINED
        elif i not in by_id:
            kind = gguf.TokenType.UNUSED
        elif spm and text.startswith("<0x") and text.endswith(">") and len(text) == 6:
            kind = gguf.TokenType.BYTE
        elif spm and text == model.get("unk_token"):
            kind = gguf.TokenType.UNKNOWN
        else:
            kind = gguf.TokenType.NORMAL
        tokens.append(text)
        types.append(int(kind))
    if spm:  # llama.cpp's SPM tokenizer ranks pieces by score; the merge rank order is the vocab order
        return {"model": "llama", "pre": "default", "tokens": tokens, "types": types,
                "scores": [-float(i) for i in range(vocab_size)]}
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    return {"model": "gpt2", "pre": _pre_tokenizer(tok), "tokens": tokens, "types": types, "merges": merges}


def llama3_rope_factors(rope: dict, head_dim: int) -> np.ndarray:
    """Per-frequency scaling of Llama 3.1+ rope, as llama.cpp's converter computes it."""
    import math

    freqs = 1.0 / (rope["rope_theta"] ** (np.arange(0, head_dim, 2, dtype=np.float32) / head_dim))
    factor, low, high = rope.get("factor", 8.0), rope.get("low_freq_factor", 1.0), rope.get("high_freq_factor", 4.0)
    old_context = rope.get("original_max_position_embeddings", 8192)
    low_wavelen, high_wavelen = old_context / low, old_context / high
    out = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < high_wavelen:
            out.append(1.0)
        elif wavelen > low_wavelen:
            out.append(factor)
        else:
            smooth = (old_context / wavelen - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.asarray(out, dtype=np.float32)


def _tensor_type(data: np.ndarray, ftype: str):
    import gguf

    Q = gguf.GGMLQuantizationType
    if data.ndim == 1 or ftype == "f32":
        return Q.F32
    if ftype == "q8_0" and data.shape[-1] % 32 == 0:
        return Q.Q8_0
    return Q.BF16 if ftype == "bf16" else Q.F16


def write(model_dir: str | os.PathLike, out: str | os.PathLike, ftype: str, name: str = "prodqa") -> dict:
    """Write the Llama-family model in ``model_dir`` as a GGUF file of type ``ftype`` at ``out``."""
    import gguf
    from safetensors.numpy import load_file
    from transformers import AutoConfig, AutoTokenizer

    model_dir = Path(model_dir)
    config = AutoConfig.from_pretrained(model_dir)
    if config.model_type != "llama":
        raise ExportError(f"{model_dir}: model_type {config.model_type!r}; this exporter writes Llama-family models")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    n_head, n_kv = config.num_attention_heads, config.num_key_value_heads or config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // n_head
    maker, member = GGUF_TYPES[ftype]
    if maker != "gguf-py":
        raise ExportError(f"{ftype} is made from the f16 file by llama.cpp (quantize_k), not written here")
    file_type = gguf.LlamaFileType[member]

    w = gguf.GGUFWriter(str(out), "llama")
    w.add_name(name)
    w.add_context_length(config.max_position_embeddings)
    w.add_embedding_length(config.hidden_size)
    w.add_block_count(config.num_hidden_layers)
    w.add_feed_forward_length(config.intermediate_size)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_rope_dimension_count(head_dim)
    rope = dict(getattr(config, "rope_parameters", None) or {"rope_theta": config.rope_theta})
    w.add_rope_freq_base(float(rope["rope_theta"]))
    if rope.get("rope_type", "default") not in ("default", "llama3"):
        raise ExportError(f"{model_dir}: rope scaling {rope['rope_type']!r} is not supported by this exporter")
    w.add_layer_norm_rms_eps(config.rms_norm_eps)
    w.add_vocab_size(config.vocab_size)
    w.add_file_type(file_type)

    v = vocab(model_dir, config.vocab_size)
    w.add_tokenizer_model(v["model"])
    w.add_tokenizer_pre(v["pre"])
    w.add_token_list(v["tokens"])
    w.add_token_types(v["types"])
    if "merges" in v:
        w.add_token_merges(v["merges"])
    else:
        w.add_token_scores(v["scores"])
    for token_id, add in ((tokenizer.bos_token_id, w.add_bos_token_id), (tokenizer.eos_token_id, w.add_eos_token_id),
                          (tokenizer.unk_token_id, w.add_unk_token_id), (tokenizer.pad_token_id, w.add_pad_token_id)):
        if token_id is not None:
            add(token_id)
    w.add_add_bos_token(bool(getattr(tokenizer, "add_bos_token", False)))
    if tokenizer.chat_template:
        w.add_chat_template(tokenizer.chat_template)

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    tensors = {}
    for f in sorted(model_dir.glob("*.safetensors")):
        tensors.update(load_file(f))
    if not tensors:
        raise ExportError(f"{model_dir}: no safetensors weights")
    for hf_name, data in tensors.items():
        if hf_name.endswith("rotary_emb.inv_freq"):
            continue
        data = data.astype(np.float32)
        if hf_name.endswith("q_proj.weight"):
            data = permute(data, n_head)
        elif hf_name.endswith("k_proj.weight"):
            data = permute(data, n_kv)
        name_ = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name_ is None:
            raise ExportError(f"{model_dir}: no GGUF name for tensor {hf_name}")
        qtype = _tensor_type(data, ftype)
        if qtype == gguf.GGMLQuantizationType.F32:
            w.add_tensor(name_, data)
        elif qtype == gguf.GGMLQuantizationType.F16:
            w.add_tensor(name_, data.astype(np.float16))
        else:
            q = gguf.quants.quantize(data, qtype)
            w.add_tensor(name_, q, raw_dtype=qtype)  # the byte shape; gguf-py derives the element shape
    if rope.get("rope_type") == "llama3":  # Llama 3.1+: llama.cpp reads the frequency factors as a tensor
        w.add_tensor(gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight", llama3_rope_factors(rope, head_dim))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return {"tensors": len(tensors), "bytes": Path(out).stat().st_size}


def quantize_k(f16_path: str | os.PathLike, out: str | os.PathLike, ftype: str) -> None:
    """Make a k-quant from the f16 file with llama.cpp's quantizer (through llama-cpp-python)."""
    import ctypes

    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, GGUF_TYPES[ftype][1])
    rc = llama_cpp.llama_model_quantize(str(f16_path).encode(), str(out).encode(), ctypes.byref(params))
    if rc != 0:
        raise ExportError(f"{f16_path}: llama.cpp quantize to {ftype} failed (status {rc})")
