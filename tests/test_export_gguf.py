import json
from pathlib import Path

import numpy as np
import pytest

from prodqa import export_gguf, generate, gguf_writer, llamacpp, params
from prodqa.export_gguf import ExportError
from stages import export_gguf as stage

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


def test_modelfile_matches_the_chat_format(tiny_model, shipped):
    from transformers import AutoTokenizer

    gp = params.parse("generate", shipped["generate"])
    tp = params.parse("template", {**shipped["template"], "system_prompt": "Be brief."})
    text = export_gguf.modelfile("model-q8_0.gguf", AutoTokenizer.from_pretrained(tiny_model), tp, gp)
    assert text.startswith("FROM ./model-q8_0.gguf\n")
    assert '<|im_start|>assistant\n"""' in text and 'SYSTEM """Be brief."""' in text
    assert 'PARAMETER stop "<|im_end|>"' in text and 'PARAMETER stop "<|im_start|>"' in text
    plain = export_gguf.modelfile("m.gguf", AutoTokenizer.from_pretrained(tiny_model), tp.model_copy(update={"format": "plain"}), gp)
    assert 'TEMPLATE """{{ .Prompt }}\n"""' in plain and "SYSTEM" not in plain  # the question alone, as trained


def test_modelfile_renders_the_trained_prompt_with_an_empty_system_turn(tiny_model, shipped):
    """With template.system_prompt '' the Modelfile writes the empty system turn the model was trained with."""
    from transformers import AutoTokenizer

    from prodqa import template

    tok = AutoTokenizer.from_pretrained(tiny_model)
    tp = params.parse("template", {**shipped["template"], "system_prompt": ""})
    text = export_gguf.modelfile("m.gguf", tok, tp, params.parse("generate", shipped["generate"]))
    head, rest = text.split('TEMPLATE """', 1)[1].split('"""', 1)[0].split("{{- range .Messages }}")
    turn, tail = rest.split("{{ end }}")  # Ollama's Go template, rendered for one user message and no system
    rendered = head.replace("{{ .System }}", "") + turn.replace("{{ .Role }}", "user").replace("{{ .Content }}", "Hi?") + tail
    assert "SYSTEM" not in text and rendered == tok.decode(template.encode(template.prompt("Hi?", tp), tok))


def test_unknown_type_is_a_params_error_naming_the_key(shipped):
    with pytest.raises(params.ParamsError, match=r"export_gguf\.types\.0: Input should be 'f32'"):
        params.parse("export_gguf", {**shipped["export_gguf"], "types": ["q3_weird"]})


def test_a_k_quant_without_f16_is_a_params_error_before_any_work(shipped):
    with pytest.raises(params.ParamsError, match=r"export_gguf: .*q4_k_m is quantized from the f16 file"):
        params.parse("export_gguf", {**shipped["export_gguf"], "types": ["q8_0", "q4_k_m"]})


def test_schema_types_are_exactly_the_ones_export_writes():
    from typing import get_args

    import gguf

    assert set(get_args(params.GgufType)) == set(params.GGUF_TYPES)
    for ftype, (maker, name) in params.GGUF_TYPES.items():  # every name resolves, to the type it is listed as
        if maker == "gguf-py":
            assert gguf.LlamaFileType[name].name.lower().endswith(ftype.replace("f32", "all_f32")), ftype
        else:
            llama_cpp = needs_llama_cpp()
            assert name.lower().endswith(ftype) and isinstance(getattr(llama_cpp, name), int), ftype


@pytest.mark.slow
def test_stage_writes_verified_f16_and_q8_0_in_llama_cpp(tmp_path, lively_model, other_model, params_file):
    """Fine-tuned (lively_model) and base (other_model) answer differently: each file holds its own model."""
    needs_llama_cpp()
    from transformers import AutoModelForCausalLM

    import pyarrow as pa
    import pyarrow.parquet as pq

    test = tmp_path / "test.parquet"
    pq.write_table(pa.Table.from_pylist([{"title": f"Tutu {i}", "content": "A pink tutu with three layers."}
                                         for i in range(2)]), test)
    prm = params_file({"export_gguf.verify_questions": 2, "export_gguf.verify_tokens": 12,
                       "export_gguf.min_top1_agreement": 0.5})
    stage.main(["--params", prm, "--merged", lively_model, "--base", other_model, "--test", str(test),
                "--out", str(tmp_path / "gguf"), "--metrics", str(tmp_path / "export.json")])
    m = json.loads((tmp_path / "export.json").read_text())
    assert m["verified"] and m["files"]["f16"]["llama_cpp"]["identical_greedy"]
    assert m["files"]["q8_0"]["llama_cpp"]["top1_agreement"] >= 0.5
    assert m["files"]["f16"]["llama_cpp"]["top1_agreement_clear"] == 1.0
    assert sorted(p.name for p in (tmp_path / "gguf").iterdir()) == ["Modelfile", export_gguf.BASE_FILE,
                                                                   "model-f16.gguf", "model-q8_0.gguf"]
    assert m["base_file"] == export_gguf.BASE_FILE
    prompt, n = [40, 41, 42, 43, 44], 3  # q8_0 rounding of these large random weights may part later on
    greedy = {model: generate.greedy_tokens(AutoModelForCausalLM.from_pretrained(model).eval(), prompt, n, eos={-1})
              for model in (lively_model, other_model)}
    assert greedy[lively_model] != greedy[other_model]
    for file, model in (("model-f16.gguf", lively_model), (export_gguf.BASE_FILE, other_model)):
        assert llamacpp.run(tmp_path / "gguf" / file, greedy=[prompt], n_tokens=n).greedy[0] == greedy[model], file


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


def _one_test_row(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    test = tmp_path / "test.parquet"
    pq.write_table(pa.Table.from_pylist([{"title": "Tutu", "content": "A pink tutu with three layers."}]), test)
    return test


def _export(tmp_path, model, prm):
    stage.main(["--params", prm, "--merged", model, "--base", model, "--test", str(_one_test_row(tmp_path)), "--out",
                str(tmp_path / "gguf"), "--metrics", str(tmp_path / "export.json")])


def _write_from_tampered_weights(tmp_path, tiny_model, monkeypatch):
    """Make export_gguf.write write another model's weights: a GGUF file that is not the model it claims."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    other = tmp_path / "other"
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    torch.manual_seed(3)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    model.save_pretrained(other)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(other)
    real_write = gguf_writer.write
    monkeypatch.setattr(export_gguf, "write", lambda model_dir, out, ftype, **kw: real_write(other, out, ftype, **kw))


@pytest.mark.slow
def test_an_f16_file_that_is_not_the_model_fails_the_stage(tmp_path, tiny_model, params_file, monkeypatch):
    """Verification is real: an f16 GGUF written from other weights does not reproduce the HF model's tokens."""
    needs_llama_cpp()
    _write_from_tampered_weights(tmp_path, tiny_model, monkeypatch)
    (tmp_path / "gguf").mkdir()
    (tmp_path / "gguf" / "Modelfile").write_text("the previous export")
    prm = params_file({"export_gguf.types": ["f16"], "export_gguf.verify_questions": 1, "export_gguf.verify_tokens": 8})
    with pytest.raises(ExportError, match="f16 GGUF does not reproduce the HF model's greedy tokens"):
        _export(tmp_path, tiny_model, prm)
    assert (tmp_path / "gguf" / "Modelfile").read_text() == "the previous export"  # nothing replaced
    assert not (tmp_path / "export.json").exists()


@pytest.mark.slow
def test_a_quantized_file_under_min_top1_agreement_fails_the_stage(tmp_path, tiny_model, params_file, monkeypatch):
    needs_llama_cpp()
    _write_from_tampered_weights(tmp_path, tiny_model, monkeypatch)
    prm = params_file({"export_gguf.types": ["q8_0"], "export_gguf.verify_questions": 1})
    with pytest.raises(ExportError, match=r"q8_0 GGUF: top-1 agreement 0\.\d+ at the [1-9]\d*/\d+ positions where the HF model's top two "
                                         r"are >= 0.25 logits apart < export_gguf.min_top1_agreement 0.9"):
        _export(tmp_path, tiny_model, prm)
    assert not (tmp_path / "gguf").exists()


def test_verify_false_writes_the_files_without_running_llama_cpp(tmp_path, tiny_model, params_file, monkeypatch):
    from prodqa import llamacpp

    monkeypatch.setattr(llamacpp, "run", lambda *a, **k: pytest.fail("llama.cpp ran with verify: false"))
    _export(tmp_path, tiny_model, params_file({"export_gguf.verify": False}))
    m = json.loads((tmp_path / "export.json").read_text())
    assert m["verified"] is False and all("llama_cpp" not in f for f in m["files"].values())
    assert sorted(p.name for p in (tmp_path / "gguf").iterdir()) == ["Modelfile", export_gguf.BASE_FILE,
                                                                   "model-f16.gguf", "model-q8_0.gguf"]
    assert m["base_file"] == export_gguf.BASE_FILE


def test_llama3_modelfile_uses_its_headers_and_stop_tokens(tiny_model, shipped):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    tok.chat_template = ("{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
                         "{{ m['content'] }}<|eot_id|>{% endfor %}")
    gp = params.parse("generate", shipped["generate"])
    tp = params.parse("template", {**shipped["template"], "system_prompt": "Be brief."})
    text = export_gguf.modelfile("model-q8_0.gguf", tok, tp, gp)
    template = text.split('TEMPLATE """', 1)[1].split('"""', 1)[0]
    assert template.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n") and "<|im_start|>" not in template
    assert 'PARAMETER stop "<|eot_id|>"' in text and 'SYSTEM """Be brief."""' in text


@pytest.mark.slow
def test_k_quant_is_made_from_the_f16_file_and_verified(tmp_path, params_file):
    """q4_k_m needs rows that are multiples of 256: a 256-wide tiny Llama."""
    needs_llama_cpp()
    from prodqa import llamacpp

    model = llamacpp.tiny_model(tmp_path / "wide", vocab=512)
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig.from_pretrained(model)
    cfg.hidden_size, cfg.intermediate_size, cfg.num_attention_heads, cfg.num_key_value_heads = 256, 512, 4, 2
    cfg.head_dim = 64
    LlamaForCausalLM(cfg).save_pretrained(model)
    prm = params_file({"export_gguf.types": ["f16", "q4_k_m"], "export_gguf.verify_questions": 1,
                       "export_gguf.min_top1_agreement": 0.0, "template.format": "alpaca"})
    import pyarrow as pa
    import pyarrow.parquet as pq

    test = tmp_path / "test.parquet"
    pq.write_table(pa.Table.from_pylist([{"title": "Tutu", "content": "A pink tutu."}]), test)
    stage.main(["--params", prm, "--merged", str(model), "--base", str(model), "--test", str(test), "--out", str(tmp_path / "g"),
                "--metrics", str(tmp_path / "m.json")])
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["files"]["q4_k_m"]["bytes"] < m["files"]["f16"]["bytes"] / 2
    assert m["files"]["f16"]["llama_cpp"]["identical_greedy"] and "top1_agreement" in m["files"]["q4_k_m"]["llama_cpp"]
    modelfile = (tmp_path / "g" / "Modelfile").read_text()  # alpaca: the layout it was trained on, no chat markup
    assert "### Instruction:\n{{ .Prompt }}\n\n### Response:\n" in modelfile and "<|im_start|>" not in modelfile


def test_hf_reference_attends_to_prompt_tokens_equal_to_the_pad_id(lively_model):
    """The reference answers come from full-context greedy decoding, even where the prompt holds the token
    used for padding (a chat prompt's <|im_start|> once was: generate masked them and the reference drifted)."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(lively_model).eval()
    prompt = [40, 41, 7, 42, 43, 7, 44]  # token 7 stands for the pad id inside the prompt
    expected = []
    with torch.inference_mode():
        for _ in range(8):
            expected.append(int(model(input_ids=torch.tensor([prompt + expected])).logits[0, -1].argmax()))
    assert generate.greedy_tokens(model, prompt, 8, eos={7, 300}) == expected[: expected.index(7) + 1 if 7 in expected else 8]
