"""The decoder (prodqa.generate): loops caught in every decoder, batches that answer as one at a time does."""

import pytest

from prodqa import evaluate, generate, template


@pytest.mark.parametrize("tokens, caught", [
    ([7] * 35, True),  # one token over and over: its last 32 repeat the one before
    ([7] * 32, False),  # too few to tell
    (list(range(40)) + [1, 2, 3, 4, 5] * 8, True),  # a loop of five tokens after an opening
    ([1, 2, 3, 4, 5] * 7, False),  # 30 tokens repeat the block before them: fewer than 32
    (list(range(100, 120)) * 4, True),  # four copies of a block of 20
    (list(range(100, 120)) * 3 + [100, 101], False),  # three copies, and the start of a fourth
    (list(range(100, 170)) * 5, False),  # a block of 70: longer than a loop is looked for
    (list(range(60)) + list(range(30)) + list(range(60)), False),  # a passage repeated, not back to back
])
def test_an_answer_is_caught_in_a_loop_by_its_last_tokens(tokens, caught):
    assert generate.looping(tokens) is caught


def test_an_answer_caught_in_a_loop_ends_there_in_each_decoder(tiny_model, gp, tp):
    """The tiny model answers with newlines to the length limit. With ``stop_loops`` each decoder ends the answer
    at the token where :func:`looping` first catches it, and the answer is what it was up to there."""
    import numpy as np

    model, tokenizer, ids = _prompts(tiny_model, tp)
    pad, _ = generate._pad_and_stops(tokenizer)
    ends = generate._ends(model)
    endless = generate.greedy_batch(model, ids, 100, ends, pad)
    ended = generate.greedy_batch(model, ids, 100, ends, pad, stop_loops=True)
    assert [len(t) for t, _ in endless] == [100] * 3
    for (tokens, scores), (whole, whole_scores) in zip(ended, endless):
        assert generate.looping(tokens) and not generate.looping(tokens[:-1]) and len(tokens) < 100
        assert tokens == whole[:len(tokens)] and scores == pytest.approx(whole_scores[:len(tokens)], abs=1e-4)
    for decoder in (generate.generate, generate.generate_padded):  # the evaluator's, and model.generate's batches
        on, off = (decoder(model, tokenizer, ids, gp.model_copy(update={"max_new_tokens": 100, "stop_loops": stop}), 3)
                   for stop in (True, False))
        assert [len(a.logprobs) for a in on] == [len(t) for t, _ in ended]
        assert all(len(a.logprobs) >= 99 for a in off)  # the last token at the length limit may not be scored
    # llama.cpp calls a logits processor with one row of numpy: the tokens so far (the prompt first), the logits.
    end_loops, logits = generate.EndLoops(end=5), np.zeros(10, dtype=np.float32)
    prompt = np.array([1, 2, 3, 4], dtype=np.intc)
    assert end_loops(prompt, logits.copy()).argmax() == 0  # the prompt alone: nothing is forced
    newlines = np.concatenate([prompt, np.full(33, 9, dtype=np.intc)])  # caught at the 33rd
    assert end_loops(newlines[:-1], logits.copy()).argmax() == 0
    forced = end_loops(newlines, logits.copy())
    assert forced.argmax() == 5 and np.isinf(np.delete(forced, 5)).all()


def _prompts(model_dir, tp):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    rows = [{"title": t} for t in ("Tutu", "A much longer title of a toy", "Mug")]
    ids = [template.encode(template.prompt(q, tp), tokenizer) for q in template.questions(rows, tp, seen=False)]
    assert len({len(i) for i in ids}) > 1  # different lengths, so padding happens
    return model, tokenizer, ids


def test_batched_generation_matches_one_at_a_time(lively_model, gp, tp):
    """Batching must not change a greedy answer: batches of 3 that drop each answer as it ends, batches of 1, and
    padded batches of 3 (left padding; model.generate) answer alike, with the same confidences; the model works
    as before after."""
    import torch

    model, tokenizer, ids = _prompts(lively_model, tp)
    gp = gp.model_copy(update={"max_new_tokens": 12})  # longer than some answers: rows finish at different steps
    before = model(input_ids=torch.tensor([ids[0]])).logits
    batched = generate.generate(model, tokenizer, ids, gp, batch_size=3)
    single = generate.generate(model, tokenizer, ids, gp, batch_size=1)
    padded = generate.generate_padded(model, tokenizer, ids, gp, batch_size=3)
    assert [b.text for b in batched] == [s.text for s in single] == [p.text for p in padded]
    assert [b.confidence for b in batched] == pytest.approx([s.confidence for s in single], abs=1e-3)
    for b, p in zip(batched, padded):  # the padded path cannot score the last token at the length limit
        assert len(p.logprobs) <= len(b.logprobs) <= len(p.logprobs) + 1
        assert b.logprobs[:len(p.logprobs)] == pytest.approx(p.logprobs, abs=1e-3)
    assert all(b.text for b in batched) and len({b.text for b in batched}) == 3  # real, prompt-dependent answers
    # An answer that ends leaves the batch; the answers still being written must not change.
    pad, _ = generate._pad_and_stops(tokenizer)
    unstopped = generate.greedy_batch(model, ids[:1], 12, set(), pad)[0][0]
    stops = {unstopped[3]}  # the first answer ends at its 4th token (or before); the others when they say it
    together = generate.greedy_batch(model, ids, 12, stops, pad)
    alone = [generate.greedy_batch(model, [i], 12, stops, pad)[0] for i in ids]
    assert [t for t, _ in together] == [t for t, _ in alone]
    assert [s for _, s in together] == [pytest.approx(s, abs=1e-4) for _, s in alone]
    assert len({len(t) for t, _ in together}) > 1  # rows ended at different steps
    assert torch.allclose(model(input_ids=torch.tensor([ids[0]])).logits, before, atol=1e-5)


def test_grouped_attention_answers_and_scores_as_transformers_sdpa(lively_model, gp, tp):
    """On a CPU, load_hf decodes with ``sdpa_gqa`` (grouped key/value heads never copied per query head): padded
    batches must answer, score their confidence and the references' loss as transformers' own ``sdpa`` does."""
    from transformers import AutoModelForCausalLM

    model, tokenizer, ids = _prompts(lively_model, tp)
    assert model.config.num_key_value_heads < model.config.num_attention_heads  # grouped: the case it changes
    gp = gp.model_copy(update={"max_new_tokens": 12, "precision": "fp32"})  # both models in fp32, on any CPU
    loaded, _ = generate.load_hf(lively_model, gp)
    assert loaded.config._attn_implementation == generate.GQA_SDPA
    plain = AutoModelForCausalLM.from_pretrained(lively_model, attn_implementation="sdpa").eval()
    grouped, reference = (generate.generate(m, tokenizer, ids, gp, batch_size=3) for m in (loaded, plain))
    assert [g.text for g in grouped] == [r.text for r in reference] and all(g.text for g in grouped)
    assert [g.logprobs for g in grouped] == [pytest.approx(r.logprobs, abs=1e-5) for r in reference]
    examples = [template.answered(template.prompt(q, tp), "A skirt. " * n) for n, q in zip((1, 4, 2), ("a", "b", "c"))]
    assert evaluate.reference_loss(loaded, tokenizer, examples, 64) == pytest.approx(
        evaluate.reference_loss(plain, tokenizer, examples, 64), rel=1e-5)


def test_a_repetition_penalty_is_applied_in_batches(tiny_model, gp, tp):
    """The greedy batches have no repetition penalty: answers with one must still feel it.
    The tiny model answers every prompt with newlines only (an empty answer), unless repeating is penalised."""
    model, tokenizer, ids = _prompts(tiny_model, tp)
    plain = generate.generate(model, tokenizer, ids, gp, batch_size=3)
    penalised = generate.generate(model, tokenizer, ids, gp.model_copy(update={"repetition_penalty": 3.0}), batch_size=3)
    assert [p.text for p in plain] == ["", "", ""]
    assert all(p.text for p in penalised)
