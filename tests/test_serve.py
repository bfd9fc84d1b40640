"""The local web app: the answering logic in-process, and the page itself in headless Chromium."""

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from prodqa import params
from prodqa.ask import DONT_KNOW
from prodqa.files import DataError

from .conftest import needs_llama_cpp

ROOT = Path(__file__).resolve().parents[1]
TUTU = "Girls Ballet Tutu Neon Pink"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"  # Debian's chromium, chromium-driver


@pytest.fixture(scope="module")
def served(tmp_path_factory, lively_model, other_model):
    """Two tiny GGUFs that answer differently (fine-tuned, base), a four-product catalog and greedy params."""
    needs_llama_cpp()
    from prodqa import catalog, gguf_writer

    where = tmp_path_factory.mktemp("served")
    gguf_writer.write(lively_model, where / "model-q8_0.gguf", "q8_0")
    gguf_writer.write(other_model, where / "base-q8_0.gguf", "q8_0")
    pq.write_table(pa.Table.from_pylist([
        {"uid": "1", "title": TUTU, "content": "High quality 3 layer ballet tutu."},
        {"uid": "2", "title": "Lodge Pre-Seasoned Cast Iron Skillet", "content": "A 12-inch skillet."},
        {"uid": "3", "title": "Harry Potter and the Goblet of Fire", "content": "The fourth book."},
        {"uid": "4", "title": "Harry Potter and the Order of the Phoenix", "content": "The fifth book."},
    ]), where / "products.parquet")
    catalog.build(where / "products.parquet", where / "catalog.sqlite")
    doc = params.read_yaml(ROOT / "params.yaml")
    doc["generate"].update(max_new_tokens=12, temperature=0.0)
    (where / "params.yaml").write_text(json.dumps(doc))
    return where


def answerer(served, **paths):
    from prodqa.serve import Answerer

    prm = served / "params.yaml"
    kw = {"base": served / "base-q8_0.gguf", "tuned": served / "model-q8_0.gguf",
          "catalog": served / "catalog.sqlite", "trained": served / "products.parquet", **paths}
    return Answerer(params.load(params.Template, prm), params.load(params.Generate, prm), **kw)


def final(answerer_, question):
    *_, (note, answers) = answerer_.ask(question)
    return note, answers


def ask_cli(served, question, *flags, model="model-q8_0.gguf") -> str:
    """What `python -m prodqa ask` prints for the same model and params: the reference the page must show
    (closed-book unless ``flags`` say otherwise)."""
    flags = flags or ("--memory",)
    proc = subprocess.run([sys.executable, "-m", "prodqa", "ask", question, "--model", str(served / model),
                           "--catalog", str(served / "catalog.sqlite"), "--trained", str(served / "products.parquet"),
                           "--params", str(served / "params.yaml"),
                           *flags], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.removesuffix("\n")


@pytest.mark.slow
def test_three_answers_are_the_models_own_and_the_grounded_one_names_its_product(served):
    note, answers = final(answerer(served), f"What is {TUTU}?")
    assert note == ""
    closed, grounded = ask_cli(served, f"What is {TUTU}?"), ask_cli(served, f"What is {TUTU}?", "--grounded")
    assert closed != grounded  # the description in the prompt changes the answer
    assert answers["tuned"].text == closed and answers["base"].text == ask_cli(served, f"What is {TUTU}?", model="base-q8_0.gguf")
    assert answers["base"].text != answers["tuned"].text  # two models: a swapped panel would show
    assert answers["grounded"].text == grounded
    assert answers["grounded"].note == f"Grounded on: {TUTU} (match 100)"
    for panel in ("base", "tuned", "grounded"):
        answer = answers[panel]
        assert 0 < answer.first_token_s <= answer.total_s and "done in" in answer.status()
        assert f"confidence {answer.confidence:.2f}" in answer.status()


@pytest.mark.slow
def test_closed_book_answers_are_asked_by_the_catalogs_name_for_the_product(served):
    question = f"tell me about the {TUTU.lower()}"
    _, answers = final(answerer(served), question)
    for panel in ("base", "tuned"):
        assert answers[panel].note == f"Asked as: What is {TUTU}?"
    assert answers["tuned"].text == ask_cli(served, f"What is {TUTU}?") != ask_cli(served, question)


def _routed(served, tmp_path, min_confidence, question):
    doc = json.loads((served / "params.yaml").read_text())
    doc["generate"]["min_confidence"] = min_confidence
    (tmp_path / "params.yaml").write_text(json.dumps(doc))
    from prodqa.serve import Answerer

    a = Answerer(params.load(params.Template, tmp_path / "params.yaml"), params.load(params.Generate, tmp_path / "params.yaml"),
                 base=served / "base-q8_0.gguf", tuned=served / "model-q8_0.gguf", catalog=served / "catalog.sqlite",
                 trained=served / "products.parquet")
    return final(a, question)[1]


SPECIFIC = f"How many layers does the {TUTU} have?"


@pytest.mark.slow
@pytest.mark.parametrize("min_confidence, question, source", [
    (0.0, f"What is {TUTU}?", "tuned"),  # confident enough: from memory, the recitation itself
    (0.0, SPECIFIC, "reader"),  # from memory, read from the finished recitation
    (1.0, f"What is {TUTU}?", "catalog"),  # never confident: from the catalog, its description itself
    (1.0, SPECIFIC, "grounded"),  # from the catalog, read from its description
    (1.0, "What is a quantum flux capacitor?", None),  # in neither: says so
])
def test_the_routed_answer_is_the_panel_its_confidence_chooses(served, tmp_path, min_confidence, question, source):
    answers = _routed(served, tmp_path, min_confidence, question)
    main = answers["main"]
    if source is None:
        assert main.text == DONT_KNOW and main.note.startswith("Not in the catalog")
    elif source == "catalog":
        assert main.text == "High quality 3 layer ballet tutu." and main.source is None and main.evidence == ""
    else:
        assert main.text == answers[source].text != "" and main.source == source
    if source in ("tuned", "reader"):
        assert main.note.startswith("From memory")
    if source in ("catalog", "grounded"):
        assert main.note.startswith(f"From the catalog: {TUTU}")
    if source == "reader":  # recite, then read: the recitation is its evidence
        assert main.evidence == answers["tuned"].text != "" and main.total_s >= answers["tuned"].total_s
    if source == "grounded":
        assert main.evidence == "High quality 3 layer ballet tutu."


@pytest.mark.slow
@pytest.mark.parametrize("min_confidence", [0.0, 1.0])
def test_a_name_several_products_share_is_asked_back_whatever_the_confidence(served, tmp_path, min_confidence):
    main = _routed(served, tmp_path, min_confidence, "Tell me about Harry Potter and the.")["main"]
    assert main.note.startswith("Several products match: which one?") and main.source is None
    assert "Goblet of Fire" in main.text and "Order of the Phoenix" in main.text and main.text.endswith("Which one do you mean?")


@pytest.mark.slow
def test_a_product_not_in_the_catalog_is_said_and_closed_book_answers_still_come(served):
    _, answers = final(answerer(served), "What is a quantum flux capacitor?")
    assert answers["grounded"].note.startswith("No product in the catalog matches this question")
    assert answers["grounded"].text == "" and answers["tuned"].text


@pytest.mark.slow
def test_empty_and_very_long_questions(served):
    a = answerer(served)
    with pytest.raises(DataError, match="the question is empty"):
        final(a, "  \n ")
    note, answers = final(a, f"What is {TUTU}? " + "really " * 2000)
    assert "truncated to its first 1000 characters" in note and answers["tuned"].text


def test_the_page_does_not_give_another_trained_products_description_as_recalled(tmp_path, shipped):
    """The page's routing rule, as ask's: confident, but the answer opens as the trained Skillet's description."""
    from prodqa.catalog import Match
    from prodqa.serve import Answer, Answerer

    recalled = " ".join(f"w{i}" for i in range(12))
    pq.write_table(pa.Table.from_pylist([{"title": "Skillet", "content": recalled}]), tmp_path / "train.parquet")
    tp, gp = params.parse("template", shipped["template"]), params.parse("generate", shipped["generate"])
    a = Answerer(tp, gp, base=tmp_path / "b.gguf", tuned=tmp_path / "t.gguf", catalog=tmp_path / "c.parquet",
                 trained=tmp_path / "train.parquet")
    a.missing = {}  # as if the models were there: only the rule is under test
    for title, source, note in (("Tutu", "grounded", "From the catalog: Tutu (from memory: confidence 0.99, but it "
                                                        "recalls Skillet)"), ("Skillet", "reader", "From memory: Skillet")):
        answers = {"main": Answer(), "tuned": Answer(text=recalled, confidence=0.99)}
        a._route(answers, {}, Match(title, "about it", 100.0), overview=False)
        assert answers["main"].source == source and answers["main"].note.startswith(note), title


def test_missing_models_and_catalog_say_which_target_builds_them(tmp_path, shipped):
    from prodqa.serve import Answerer

    tp, gp = params.parse("template", shipped["template"]), params.parse("generate", shipped["generate"])
    a = Answerer(tp, gp, base=tmp_path / "b.gguf", tuned=tmp_path / "t.gguf", catalog=tmp_path / "c.parquet")
    _, answers = final(a, "What is a tutu?")
    assert "run `dvc repro export_gguf`" in answers["base"].note and "t.gguf" in answers["tuned"].note
    assert all(answer.text == "" for answer in answers.values())
    assert a.suggest("tutu") == []


def test_serve_listens_on_this_machine_only_unless_told(tmp_path, shipped, monkeypatch):
    """The default bind is 127.0.0.1 (a page on 0.0.0.0 also answers on 127.0.0.1, so the browser test
    cannot tell); --host opens it to the network."""
    import gradio as gr

    from prodqa import serve

    binds = []
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kw: binds.append(kw["server_name"]))
    (tmp_path / "params.yaml").write_text(json.dumps(shipped))
    paths = ["--params", str(tmp_path / "params.yaml"), "--base", str(tmp_path / "b.gguf"),
             "--model", str(tmp_path / "t.gguf"), "--catalog", str(tmp_path / "c.parquet"), "--root", str(tmp_path)]
    serve.main(paths)
    serve.main([*paths, "--host", "0.0.0.0"])
    assert binds == ["127.0.0.1", "0.0.0.0"]


@pytest.mark.slow
def test_a_truncated_gguf_is_a_panel_note_and_a_one_line_ask_error(served, tmp_path):
    """llama-cpp-python raises ValueError on a file it cannot load: serve starts and says so in the panel,
    ask prints one line and exits 2 (neither shows a traceback)."""
    broken = tmp_path / "model-q8_0.gguf"
    broken.write_bytes((served / "model-q8_0.gguf").read_bytes()[:5000])
    a = answerer(served, tuned=broken)
    _, answers = final(a, f"What is {TUTU}?")
    assert "not a GGUF model llama.cpp can load" in answers["tuned"].note and answers["tuned"].text == ""
    assert answers["base"].text  # the other panels still answer
    proc = subprocess.run([sys.executable, "-m", "prodqa", "ask", "What is a tutu?", "--model", str(broken),
                           "--params", str(served / "params.yaml")], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ") and "not a GGUF model llama.cpp can load" in proc.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(served):
    port = _free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    proc = subprocess.Popen([sys.executable, "-m", "prodqa", "serve", "--port", str(port),
                             "--base", str(served / "base-q8_0.gguf"), "--model", str(served / "model-q8_0.gguf"),
                             "--catalog", str(served / "catalog.sqlite"), "--trained", str(served / "products.parquet"),
                             "--params", str(served / "params.yaml"), "--root", str(served)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(0.5)
    else:
        proc.kill()
        raise AssertionError("serve did not start listening within 120 s")
    yield f"http://127.0.0.1:{port}/"
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium and chromium-driver (.ci/run does)")
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,1000", f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def _text(driver, css: str) -> str:
    from selenium.webdriver.common.by import By

    element = driver.find_element(By.CSS_SELECTOR, css)
    return element.get_attribute("value") if element.tag_name == "textarea" else element.text


@pytest.mark.slow
def test_the_page_in_chromium_streams_three_answers_and_reports_bad_input(served, server, browser):
    """Type a question, wait for the three answers, check them against `ask`; then an empty question."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server)
    wait = WebDriverWait(browser, 120)
    box = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#question textarea"))
    box.send_keys("What is girls ballet tu")
    wait.until(lambda d: TUTU in d.find_element(By.ID, "suggestions").text)  # suggestions from the catalog
    box.clear()
    box.send_keys(f"What is {TUTU}?")
    browser.find_element(By.ID, "ask").click()
    wait.until(lambda d: all("done in" in _text(d, f"#status-{p}") for p in ("base", "tuned", "grounded")))
    closed, grounded = ask_cli(served, f"What is {TUTU}?"), ask_cli(served, f"What is {TUTU}?", "--grounded")
    assert _text(browser, "#answer-tuned textarea") == closed
    assert _text(browser, "#answer-base textarea") == ask_cli(served, f"What is {TUTU}?", model="base-q8_0.gguf") != closed
    assert _text(browser, "#answer-grounded textarea") == grounded
    assert f"Grounded on: {TUTU} (match 100)" in _text(browser, "#status-grounded")
    screenshot = Path(os.environ.get("PRODQA_SCREENSHOT_DIR", served)) / "serve.png"
    browser.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 10_000

    box.clear()
    box.send_keys(" ")
    browser.find_element(By.ID, "ask").click()
    wait.until(lambda d: "the question is empty" in _text(d, "#note"))


@pytest.mark.slow
def test_questions_sent_together_are_queued_not_dropped(served, server):
    """Three clients at once through Gradio's own client: each gets its full answer, one after another."""
    from concurrent.futures import ThreadPoolExecutor

    from gradio_client import Client

    def ask(_):
        client = Client(server, verbose=False)
        return client.predict(f"What is {TUTU}?", api_name="/on_ask")

    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(ask, range(3)))
    closed = ask_cli(served, f"What is {TUTU}?")
    assert [r[3] for r in results] == [closed] * 3  # (note, routed, base, tuned, grounded, their statuses)
