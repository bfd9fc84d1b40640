import json

import pytest

from prodqa import export_gguf, generate, gguf_writer, llamacpp, params
from prodqa.export_gguf import ExportError
from stages import export_gguf as stage

from .conftest import needs_llama_cpp



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
