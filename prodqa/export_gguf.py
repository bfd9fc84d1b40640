"""Stage ``export_gguf``: the merged model as GGUF files and an Ollama Modelfile, each file verified in llama.cpp.

Reads the merged model folder; writes one GGUF file per ``export_gguf.types`` entry (by
:mod:`prodqa.gguf_writer`), the base model as ``BASE_FILE`` (for side-by-side answers in ``serve``), a
``Modelfile``, and the verification results. The verification gate: each file's greedy tokens and
next-token choices in llama.cpp against the HF model's (:func:`verify`); an f16/f32 file that parts from the
HF model anywhere but at a near tie, or a quantized one below ``min_top1_agreement``, fails the stage.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .gguf_writer import ExportError, quantize_k, write
from .params import from_f16

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from .params import ExportGguf, Generate, Template

BASE_FILE = "base-q8_0.gguf"
# An f16 file may pick the other token where the HF model's top two are closer than this (in logits):
# rounding 135M weights to 16 bits moves logits by a few hundredths. A wrong file parts from the HF
# answers at clear choices, margins of 1 and more (tests/test_export_gguf.py writes one).
NEAR_TIE = 0.25


def modelfile(gguf_name: str, tokenizer: PreTrainedTokenizerBase, tp: Template, gp: Generate) -> str:
    """An Ollama Modelfile that prompts the model in the layout it was trained on (``template.format``).

    chat: the model's own chat format (ChatML for SmolLM2, or Llama 3), its system turn always there, empty when
    ``template.system_prompt`` is, as :func:`prodqa.template.prompt` writes it; alpaca and plain: the text layouts
    of ``template.TEXT_LAYOUTS``. Decoding defaults come from the ``generate`` params, as for evaluate and ask.
    """
    from .template import TEXT_LAYOUTS

    chat = tokenizer.chat_template or ""
    system = tp.system_prompt
    if tp.format in TEXT_LAYOUTS:
        template, system = TEXT_LAYOUTS[tp.format].replace("{question}", "{{ .Prompt }}"), ""  # prompt() adds no system text
    elif "<|start_header_id|>" in chat:  # Llama 3
        template = (
            '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>'
            '{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>{{ end }}'
            '<|start_header_id|>assistant<|end_header_id|>\n\n'
        )
    elif "<|im_start|>" in chat:
        template = (
            '<|im_start|>system\n{{ .System }}<|im_end|>\n'
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
    from .generate import greedy_tokens
    from .llamacpp import run

    eos = {tokenizer.eos_token_id, *([tokenizer.convert_tokens_to_ids("<|im_end|>")] if "<|im_end|>" in tokenizer.get_vocab() else [])}
    sequences = list(zip(prompts, answers))
    cpp = run(path, greedy=prompts, n_tokens=n_tokens, eos=eos, score=[p + a for p, a in sequences])
    agree = []
    for prompt, got in zip(prompts, cpp.greedy):
        ref = greedy_tokens(model, prompt, n_tokens, eos)
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

    from .template import questions
    from .files import atomic_path
    from .template import answered, encode, prompt, render

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    metrics: dict = {"files": {}}
    with atomic_path(out_dir, is_dir=True) as tmp:
        written: dict[str, Path] = {}
        for ftype in sorted(p.types, key=from_f16):  # k-quants are made from the f16 file
            path = Path(tmp) / f"model-{ftype}.gguf"
            start = time.perf_counter()
            if from_f16(ftype):  # the schema made sure f16 is in the list
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
            prompt_ids = [encode(x, tokenizer) for x in ps]
            answer_ids = [render(answered(x, r["content"]), tokenizer)[1][:p.verify_tokens] for x, r in zip(ps, rows)]
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
