"""Stage ``export_gguf``: write the merged fine-tuned model as GGUF files, offline, and check them in llama.cpp.

Reads the merged model folder (safetensors + tokenizer.json + chat template); writes one GGUF file per
``export_gguf.types`` entry, an Ollama ``Modelfile``, and the verification results.

The writer is gguf-py's ``GGUFWriter`` with its own quantizers, so nothing is downloaded or compiled at
export time (unlike Unsloth's ``save_pretrained_gguf``, which fetches and builds llama.cpp). It follows
llama.cpp's ``convert_hf_to_gguf.py`` for Llama-family models: the rotary q/k weight permutation, gpt2-style
BPE vocabularies (SmolLM2, Llama 3.x) and SentencePiece-style ones stored as tokenizer.json (TinyLlama),
special tokens and the chat template. K-quants (``q4_k_m``…) are made from the f16 file with llama.cpp's
own quantizer, through llama-cpp-python.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .files import DataError
from .params import GGUF_FROM_F16

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from .params import ExportGguf, Generate, Template

GGUF_TYPES = {"f32", "f16", "bf16", "q8_0"}  # written by gguf-py
BASE_FILE = "base-q8_0.gguf"
# An f16 file may pick the other token where the HF model's top two are closer than this (in logits):
# rounding 135M weights to 16 bits moves logits by a few hundredths. A wrong file parts from the HF
# answers at clear choices, margins of 1 and more (tests/test_export_gguf.py writes one).
NEAR_TIE = 0.25
K_QUANTS = dict(zip(GGUF_FROM_F16, (15, 17, 18, 2, 8)))  # type -> llama_ftype: made from the f16 by llama.cpp

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
    file_type = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                 "bf16": gguf.LlamaFileType.MOSTLY_BF16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[ftype]

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
    params.ftype = K_QUANTS[ftype]
    rc = llama_cpp.llama_model_quantize(str(f16_path).encode(), str(out).encode(), ctypes.byref(params))
    if rc != 0:
        raise ExportError(f"{f16_path}: llama.cpp quantize to {ftype} failed (status {rc})")


def modelfile(gguf_name: str, tokenizer: PreTrainedTokenizerBase, tp: Template, gp: Generate) -> str:
    """An Ollama Modelfile that prompts the model in the layout it was trained on (``template.format``).

    chat: the model's own chat format (ChatML for SmolLM2, or Llama 3); alpaca: the Alpaca text of
    ``template.ALPACA``. Decoding defaults come from the ``generate`` params, as for evaluate and ask.
    """
    from .template import ALPACA

    chat = tokenizer.chat_template or ""
    system = tp.system_prompt
    if tp.format == "alpaca":
        template, system = ALPACA.replace("{question}", "{{ .Prompt }}"), ""  # prompt() adds no system text
    elif "<|start_header_id|>" in chat:  # Llama 3
        template = (
            '<|begin_of_text|>{{- if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>{{ end }}'
            '{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>{{ end }}'
            '<|start_header_id|>assistant<|end_header_id|>\n\n'
        )
    elif "<|im_start|>" in chat:
        template = (
            '{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}'
            '{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}'
            '<|im_start|>assistant\n'
        )
    else:
        raise ExportError("chat template is neither ChatML nor Llama 3: use template.format alpaca, "
                          "or write the Modelfile TEMPLATE by hand")
    stops = sorted({t for t in ("<|im_end|>", "<|im_start|>", "<|eot_id|>", "<|end_of_text|>", tokenizer.eos_token)
                    if t and t in chat + (tokenizer.eos_token or "")})
    lines = [f"FROM ./{gguf_name}", "", f'TEMPLATE """{template}"""', ""]
    lines += [f'SYSTEM """{system}"""', ""] if system else []
    lines += [f'PARAMETER stop "{s}"' for s in stops]
    lines += [f"PARAMETER temperature {gp.temperature}", f"PARAMETER top_p {gp.top_p}",
              f"PARAMETER repeat_penalty {gp.repetition_penalty}", f"PARAMETER num_predict {gp.max_new_tokens}"]
    return "\n".join(lines) + "\n"


def hf_greedy(model, prompt_ids: list[int], n: int, eos: set[int]) -> list[int]:
    import torch

    with torch.inference_mode():
        ids = torch.tensor([prompt_ids])  # an explicit mask: else generate masks prompt tokens equal to the pad id
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, do_sample=False,
                             repetition_penalty=1.0, pad_token_id=min(eos))
    new = out[0, len(prompt_ids):].tolist()
    return new[: next((i + 1 for i, t in enumerate(new) if t in eos), len(new))]


def top1_agreement(model, sequences: list[tuple[list[int], list[int]]], cpp_argmax: list[list[int]]) -> dict:
    """Share of answer positions where llama.cpp and the HF model predict the same next token: at every
    position, and at the positions where the HF model has a clear choice (top two ``NEAR_TIE`` or more apart).

    Quantization moves logits by tenths; where the HF model's own top two are closer than that, either token
    is the model's answer, so only the clear positions tell a faithful file from a broken one.
    """
    import torch

    same = total = clear_same = clear = 0
    for (prompt, answer), cpp in zip(sequences, cpp_argmax):
        ids = prompt + answer
        with torch.inference_mode():
            logits = model(input_ids=torch.tensor([ids])).logits[0].float()
        span = slice(len(prompt) - 1, len(ids) - 1)  # positions that predict answer tokens
        top2 = logits[span].topk(2).values
        agree = logits[span].argmax(-1).numpy() == np.asarray(cpp)[span]
        decided = (top2[:, 0] - top2[:, 1]).numpy() >= NEAR_TIE
        same, total = same + int(agree.sum()), total + len(answer)
        clear_same, clear = clear_same + int(agree[decided].sum()), clear + int(decided.sum())
    return {"top1_agreement": round(same / max(total, 1), 4),
            "top1_agreement_clear": round(clear_same / clear if clear else same / max(total, 1), 4),  # none clear: all
            "clear_positions": f"{clear}/{total}"}


def divergence_margin(model, prompt: list[int], ref: list[int], got: list[int], at: int) -> float:
    """How far the HF model prefers its greedy token over llama.cpp's where the two answers part (a full
    forward pass; its KV-cached generation can round the other way on a near tie, giving a margin < 0)."""
    import torch

    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([prompt + ref[:at]])).logits[0, -1].float()
    return float(logits[ref[at]] - logits[got[at]])


def verify(path: str | os.PathLike, model, tokenizer, prompts: list[list[int]], answers: list[list[int]],
           n_tokens: int) -> dict:
    """Greedy tokens of the GGUF in llama.cpp against the HF model's, and top-1 logit agreement.

    Where the two greedy answers part, ``near_tie`` says whether the HF model's own two candidates were
    within ``NEAR_TIE`` logits of each other: there, rounding the weights to 16 bits may pick either token.
    """
    from .llamacpp import run

    eos = {tokenizer.eos_token_id, *([tokenizer.convert_tokens_to_ids("<|im_end|>")] if "<|im_end|>" in tokenizer.get_vocab() else [])}
    sequences = list(zip(prompts, answers))
    cpp = run(path, greedy=prompts, n_tokens=n_tokens, eos=eos, score=[p + a for p, a in sequences])
    agree = []
    for prompt, got in zip(prompts, cpp.greedy):
        ref = hf_greedy(model, prompt, n_tokens, eos)
        prefix = next((i for i, (a, b) in enumerate(zip(ref, got)) if a != b), min(len(ref), len(got)))
        check = {"hf": len(ref), "gguf": len(got), "same_prefix": prefix, "identical": ref == got}
        if ref != got and prefix < min(len(ref), len(got)):
            check["margin"] = round(divergence_margin(model, prompt, ref, got, prefix), 4)
            check["near_tie"] = abs(check["margin"]) < NEAR_TIE  # < 0 only where cached and full decoding round a tie apart
        agree.append(check)
    return {
        "identical_greedy": all(a["identical"] for a in agree),
        "greedy_up_to_near_ties": all(a["identical"] or a.get("near_tie", False) for a in agree),
        "mean_same_prefix_tokens": round(sum(a["same_prefix"] for a in agree) / len(agree), 2),
        "greedy": agree,
        **top1_agreement(model, sequences, cpp.argmax),
    }


def export(model_dir: str | os.PathLike, test_rows: list[dict], out_dir: str | os.PathLike, p: ExportGguf,
           tp: Template, gp: Generate, base_dir: str | os.PathLike | None = None) -> dict:
    """Write every GGUF type of ``p.types`` and the Modelfile into ``out_dir`` (atomically); verify each file.

    ``tp`` gives the prompts as in training, ``gp`` the Modelfile's decoding defaults. ``base_dir``: the base
    model is written too, as ``BASE_FILE`` (q8_0, by the same writer), for side-by-side answers in ``serve``.
    An f16 file whose greedy tokens part from the HF model's anywhere but at a near tie (``NEAR_TIE``) fails
    the export; quantized files report their agreement.
    """
    import time

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .evaluate import encode_prompt, questions
    from .files import atomic_path
    from .template import answered, prompt, render

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    metrics: dict = {"files": {}}
    with atomic_path(out_dir, is_dir=True) as tmp:
        written: dict[str, Path] = {}
        for ftype in sorted(p.types, key=lambda t: t in K_QUANTS):  # k-quants are made from the f16 file
            path = Path(tmp) / f"model-{ftype}.gguf"
            start = time.perf_counter()
            if ftype in K_QUANTS:  # the schema made sure f16 is in the list
                quantize_k(written["f16"], path, ftype)
            else:
                write(model_dir, path, ftype)
            written[ftype] = path
            metrics["files"][ftype] = {"bytes": path.stat().st_size, "write_s": round(time.perf_counter() - start, 2)}
        if base_dir is not None:
            write(base_dir, Path(tmp) / BASE_FILE, "q8_0", name="base")
            metrics["base_file"] = BASE_FILE
        default = next((t for t in ("q8_0", "f16", *p.types) if t in written), None)
        (Path(tmp) / "Modelfile").write_text(modelfile(written[default].name, tokenizer, tp, gp))

        if p.verify:
            model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
            rows = test_rows[: p.verify_questions]
            ps = [prompt(q, tp) for q in questions(rows, tp, seen=False)]
            prompt_ids = [encode_prompt(x, tokenizer) for x in ps]
            answer_ids = [render(answered(x, r["content"]), tokenizer)[1][:64] for x, r in zip(ps, test_rows)]
            for ftype, path in written.items():
                check = verify(path, model, tokenizer, prompt_ids, answer_ids, p.verify_tokens)
                metrics["files"][ftype]["llama_cpp"] = check
                if ftype in ("f16", "f32") and not check["greedy_up_to_near_ties"]:
                    raise ExportError(f"{ftype} GGUF does not reproduce the HF model's greedy tokens in llama.cpp "
                                      f"(apart from near ties, < {NEAR_TIE} logits): {check['greedy']}")
                if check["top1_agreement_clear"] < p.min_top1_agreement:
                    raise ExportError(f"{ftype} GGUF: top-1 agreement {check['top1_agreement_clear']} at the "
                                      f"{check['clear_positions']} positions where the HF model's top two are >= "
                                      f"{NEAR_TIE} logits apart < export_gguf.min_top1_agreement {p.min_top1_agreement}")
        metrics["verified"] = p.verify
        metrics["modelfile_from"] = written[default].name
    return metrics
