import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ruamel.yaml import YAML

from prodqa import ask, generate, params, template
from prodqa.catalog import Catalog, build
from prodqa.files import DataError
from prodqa.learned import Learned

from .conftest import needs_llama_cpp

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "prodqa", *args], capture_output=True, text=True, cwd=cwd)


@pytest.fixture
def catalog(tmp_path):
    path = tmp_path / "products.parquet"
    pq.write_table(pa.Table.from_pylist([
        {"uid": "1", "title": "Girls Ballet Tutu Neon Pink", "content": "High quality 3 layer ballet tutu."},
        {"uid": "2", "title": "Lodge Pre-Seasoned Cast Iron Skillet", "content": "A 12-inch skillet."},
        {"uid": "3", "title": "Harry Potter and the Goblet of Fire", "content": "The fourth book."},
        {"uid": "4", "title": "Harry Potter and the Order of the Phoenix", "content": "The fifth book."},
    ]), path)
    build(path, tmp_path / "catalog.sqlite")
    return str(tmp_path / "catalog.sqlite")


def test_empty_question_is_a_one_line_error():
    proc = cli("ask", "   ")
    assert proc.returncode == 2 and proc.stderr.startswith("error: the question is empty")
    assert proc.stderr.count("\n") == 1


def test_long_question_is_truncated_with_a_note():
    question, note = ask.check_question("why " * 1000)
    assert len(question) == ask.MAX_QUESTION_CHARS and "truncated" in note


@pytest.mark.parametrize("flags, message", [
    ([], "no GGUF model"),
    (["--hf"], "no trained model"),
])
def test_missing_model_says_what_to_run(tmp_path, flags, message):
    proc = cli("ask", "What is a tutu?", "--model", str(tmp_path / "nope"), *flags)
    assert proc.returncode == 2 and message in proc.stderr and "make repro" in proc.stderr


class FakeStream(generate.Stream):
    """A stream of fixed pieces whose tokens had the given log-probabilities (one token per piece)."""

    def __init__(self, pieces, logprob):
        logprobs = generate.TokenLogprobs()
        self.closed = False

        def gen():
            for piece in pieces:
                logprobs.steps.append(logprob)
                yield piece

        super().__init__(gen(), logprobs)

    def close(self):
        self.closed = True
        super().close()


def _route(catalog, shipped, question, closed_logprob, learned=None):
    tp, gp = params.parse("template", shipped["template"]), params.parse("generate", shipped["generate"])
    asked = []

    def answer(prompt):
        asked.append(prompt)
        return FakeStream([f"w{i} " for i in range(40)], closed_logprob)

    def read(question, title, description):  # the reader (prodqa.read): a short answer
        asked.append(("read", question, title, description))
        return "3 layers"

    routed = ask.route(question, tp, gp, answer, read, Catalog(catalog) if catalog else None, learned)
    return routed, "".join(routed.pieces), asked


def test_a_confident_answer_comes_from_memory_whole(catalog, shipped):
    routed, text, asked = _route(catalog, shipped, "What is Girls Ballet Tutu Neon Pink?", -0.01)  # p 0.99
    assert routed.source == "memory" and routed.label == "from memory: Girls Ballet Tutu Neon Pink (confidence 0.99)"
    assert text == "".join(f"w{i} " for i in range(40)) and len(asked) == 1  # nothing lost while deciding


def test_a_confident_answer_that_recalls_another_trained_product_is_not_given_from_memory(catalog, shipped):
    """The closed-book answer opens "w0 w1 … w7": the trained Skillet's description, not the Tutu's."""
    recalled = " ".join(f"w{i}" for i in range(12))
    learned = Learned([{"title": "Lodge Pre-Seasoned Cast Iron Skillet", "content": recalled}])
    routed, text, asked = _route(catalog, shipped, "What is Girls Ballet Tutu Neon Pink?", -0.01, learned)
    assert routed.source == "catalog" and "confidence 0.99, but it recalls Lodge Pre-Seasoned Cast Iron Skillet" in routed.label
    assert text == "High quality 3 layer ballet tutu." and len(asked) == 1  # an overview: the stored description
    routed, _, _ = _route(catalog, shipped, "What is Lodge Pre-Seasoned Cast Iron Skillet?", -0.01, learned)
    assert routed.source == "memory"  # its own description: recalled


@pytest.mark.parametrize("question", ["tell me about the girls balelt tutu neon pink", "Is Girls Ballet Tutu Neon Pink any good?"])
def test_the_model_is_asked_by_the_catalogs_name_for_the_product(catalog, shipped, question):
    """Lower case, a typo or other words around the name: the model is asked as it learned the product."""
    routed, _, asked = _route(catalog, shipped, question, -0.01)
    assert asked[0][-1] == {"role": "user", "content": "What is Girls Ballet Tutu Neon Pink?"}
    routed, _, asked = _route(catalog, shipped, "What is a quantum flux capacitor?", -0.01)
    assert asked[0][-1]["content"] == "What is a quantum flux capacitor?" and routed.label == "from memory (confidence 0.99)"


def test_an_unsure_answer_is_dropped_for_the_catalogs(catalog, shipped):
    routed, text, asked = _route(catalog, shipped, "What is Girls Ballet Tutu Neon Pink?", -0.5)  # p 0.61
    assert routed.source == "catalog" and routed.label.startswith("from the catalog: Girls Ballet Tutu Neon Pink (match")
    assert "confidence 0.61 < 0.94" in routed.label and text == "High quality 3 layer ballet tutu."
    assert routed.evidence is None  # the answer is the description itself


def test_a_question_from_memory_is_answered_by_reading_the_recitation(catalog, shipped):
    """Recite, then read: no catalog text in either prompt, the recitation is the reading's description."""
    question = "How many layers does the Girls Ballet Tutu Neon Pink have?"
    routed, text, asked = _route(catalog, shipped, question, -0.01)
    recited = "".join(f"w{i} " for i in range(40)).strip()
    assert routed.source == "memory" and text == "3 layers" and routed.evidence == recited
    assert asked[0][-1]["content"] == "What is Girls Ballet Tutu Neon Pink?"  # closed-book: the recitation
    assert asked[1] == ("read", question, "Girls Ballet Tutu Neon Pink", recited)
    assert "High quality" not in str(asked)  # nothing from the catalog


def test_a_question_from_the_catalog_is_answered_by_reading_its_description(catalog, shipped):
    question = "How many layers does the Girls Ballet Tutu Neon Pink have?"
    routed, text, asked = _route(catalog, shipped, question, -0.5)
    assert routed.source == "catalog" and text == "3 layers" and routed.evidence == "High quality 3 layer ballet tutu."
    assert asked[1] == ("read", question, "Girls Ballet Tutu Neon Pink", "High quality 3 layer ballet tutu.")


def test_a_product_named_inside_a_longer_question_is_found(catalog, shipped):
    routed, _, _ = _route(catalog, shipped, "What colour of ribbon is sewn on the Girls Ballet Tutu Neon Pink for recitals?", -0.5)
    assert routed.source == "catalog" and "Girls Ballet Tutu Neon Pink" in routed.label


@pytest.mark.parametrize("has_catalog", [True, False])
def test_an_unsure_answer_about_an_unknown_product_says_so(catalog, shipped, has_catalog):
    routed, text, _ = _route(catalog if has_catalog else None, shipped, "What is a quantum flux capacitor?", -0.5)
    assert routed.source == "unknown" and routed.label.startswith("not in the catalog") and text == ask.DONT_KNOW


@pytest.mark.parametrize("logprob", [-0.01, -0.5])
def test_a_name_several_products_share_is_asked_back_not_answered(catalog, shipped, logprob):
    routed, text, asked = _route(catalog, shipped, "Tell me about Harry Potter and the.", logprob)
    assert routed.source == "ambiguous" and asked == []  # neither recalled nor grounded on a guess
    assert text.startswith("Several products go by that name: Harry Potter and the ") and text.endswith("Which one do you mean?")
    assert "Goblet of Fire" in text and "Order of the Phoenix" in text
    routed, text, _ = _route(catalog, shipped, "Tell me about Harry Potter and the Goblet of Fire.", -0.01)
    assert routed.source == "memory"


@pytest.mark.parametrize("logprob", [-0.01, -0.5])
def test_a_product_named_too_loosely_is_asked_back_by_name_not_answered(catalog, shipped, logprob):
    routed, text, asked = _route(catalog, shipped, "lodge cast iron skillet - how heavy is it", logprob)
    assert routed.source == "ambiguous" and asked == [] and "did you mean" in routed.label
    assert text == "Do you mean Lodge Pre-Seasoned Cast Iron Skillet? Ask again with its name."


def test_grounded_prompt_carries_the_description(catalog, shipped):
    match, _ = Catalog(catalog).find("What is Girls Ballet Tutu Neon Pink?")
    product = match.context()
    tp = params.parse("template", {**shipped["template"], "read_prompt": "Be brief."})
    msgs = template.prompt("What is it?", tp, product)
    assert msgs[0]["content"].startswith("Be brief.") and "High quality 3 layer ballet tutu." in msgs[0]["content"]
    assert msgs[-1] == {"role": "user", "content": "What is it?"}
    text = template.prompt("What is it?", tp.model_copy(update={"format": "alpaca"}), product)
    assert "High quality 3 layer ballet tutu." in text and text.endswith("### Response:\n")


def test_usage_without_subcommand():
    proc = cli()
    assert proc.returncode != 0 and "usage: python -m prodqa ask" in proc.stderr


def test_default_paths_are_pipeline_outputs():
    dvc = YAML(typ="safe").load((ROOT / "dvc.yaml").read_text())["stages"]
    outs = {o if isinstance(o, str) else next(iter(o)) for s in dvc.values() for o in s.get("outs", [])}
    assert ask.MERGED in outs and ask.CATALOG in outs and str(Path(ask.GGUF).parent) in outs
    assert str(Path(ask.TRAINED).parent) in outs


def _greedy_params(tmp_path, shipped) -> str:
    doc = {**shipped, "generate": {**shipped["generate"], "temperature": 0.0, "repetition_penalty": 1.0}}
    path = tmp_path / "params.yaml"
    path.write_text(json.dumps(doc))
    return str(path)


@pytest.mark.slow
def test_ask_streams_the_models_greedy_answer_with_the_hf_model(tmp_path, tiny_model, catalog, shipped):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    prm = _greedy_params(tmp_path, shipped)
    proc = cli("ask", "What is Girls Ballet Tutu Neon Pink?", "--hf", "--model", tiny_model, "--grounded",
               "--catalog", catalog, "--max-tokens", "6", "--params", prm)
    assert proc.returncode == 0, proc.stderr
    assert "[from the catalog: Girls Ballet Tutu Neon Pink (match 100)]\n" in proc.stderr
    tp = params.load(params.Template, prm)
    product = {"title": "Girls Ballet Tutu Neon Pink", "content": "High quality 3 layer ballet tutu."}
    tok = AutoTokenizer.from_pretrained(tiny_model)
    ids = tok.apply_chat_template(template.prompt("What is Girls Ballet Tutu Neon Pink?", tp, product),
                                  add_generation_prompt=True, return_tensors="pt", return_dict=True)
    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=6, do_sample=False, pad_token_id=tok.eos_token_id)
    expected = tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    assert proc.stdout == expected + "\n"


@pytest.mark.slow
def test_ask_streams_the_q8_0_gguf_answer_from_llama_cpp(tmp_path, tiny_model, shipped):
    """The default path: the q8_0 GGUF streamed by llama.cpp gives llama.cpp's own greedy tokens."""
    needs_llama_cpp()
    from transformers import AutoTokenizer

    from prodqa import gguf_writer, llamacpp

    gguf = tmp_path / "model-q8_0.gguf"
    gguf_writer.write(tiny_model, gguf, "q8_0")
    prm = _greedy_params(tmp_path, shipped)
    proc = cli("ask", "What is Girls Ballet Tutu Neon Pink?", "--model", str(gguf), "--max-tokens", "6", "--params", prm,
               "--memory")
    assert proc.returncode == 0, proc.stderr
    tok = AutoTokenizer.from_pretrained(tiny_model)
    prompt = tok.apply_chat_template(template.prompt("What is Girls Ballet Tutu Neon Pink?", params.load(params.Template, prm)),
                                     add_generation_prompt=True, tokenize=True, return_dict=False)
    eos = {tok.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>")}
    greedy = llamacpp.run(gguf, greedy=[list(prompt)], n_tokens=6, eos=eos).greedy[0]
    assert proc.stdout.strip() == tok.decode([t for t in greedy if t not in eos], skip_special_tokens=True).strip()


@pytest.mark.slow
def test_ask_ends_an_answer_caught_in_a_loop_in_llama_cpp(tmp_path, tiny_model, shipped):
    """The tiny model answers with newlines to the length limit; with ``generate.stop_loops`` llama.cpp ends the
    answer where ``looping`` first catches it (at 33 tokens), without at ``--max-tokens`` (100 tokens, 124 characters)."""
    needs_llama_cpp()
    from prodqa import gguf_writer

    gguf = tmp_path / "model-f16.gguf"
    gguf_writer.write(tiny_model, gguf, "f16")
    answers = {}
    for stop_loops in (True, False):
        doc = {**shipped, "generate": {**shipped["generate"], "temperature": 0.0, "repetition_penalty": 1.0,
                                       "stop_loops": stop_loops}}
        (tmp_path / "params.yaml").write_text(json.dumps(doc))
        proc = cli("ask", "What is Tutu?", "--model", str(gguf), "--max-tokens", "100", "--params",
                   str(tmp_path / "params.yaml"), "--memory")
        assert proc.returncode == 0, proc.stderr
        answers[stop_loops] = proc.stdout
    assert answers[False].startswith(answers[True]) and 20 < len(answers[True]) < len(answers[False]) / 2
