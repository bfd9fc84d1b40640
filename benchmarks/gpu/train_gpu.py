"""GPU benchmark (issue 15): the train stage's trainer with each backend x precision, on the same data.

    python -m benchmarks.gpu.train_gpu --base BASE_DIR [--models smollm2-135m llama-1b-random] [--steps 30]

(``--tiny``: a 2-layer Llama instead of the 1B one, for a smoke test of this script on a CPU.)

For each model (the embedded SmolLM2-135M, and a 1B-class Llama with random weights: speed and memory need
no real weights) and each of peft/unsloth x 16-bit/4-bit, builds the stage's own trainer
(``prodqa.train.build_trainer``) on the same generated products, trains ``--steps`` steps and records
tokens/s (after warm-up), peak GPU memory and the loss curve. Writes one JSON result.
Targets: Unsloth >= 1.5x PEFT tokens/s; 1B QLoRA peak memory <= 40% of 16-bit LoRA; loss curves of the
two backends within a few percent.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def make_data(tmp: Path, records: str | None = None, n: int = 400) -> str:
    """Templated train/validation JSONL, as the template stage writes them: from ``records`` (trn.json lines)
    when given, else from generated products."""
    from prodqa import params, template

    tp = params.load(params.Template, ROOT / "params.yaml")
    if records:
        with open(records) as f:
            rows = [r for r in map(json.loads, f) if len(r["content"]) > 100][:n]
    else:
        from prodqa import synth

        rows = [r for r in synth.records(n * 3, seed=1) if len(r["content"]) > 100][:n]
    out = tmp / "template"
    out.mkdir()
    for split, part in (("train", rows[: len(rows) - 20]), ("validation", rows[len(rows) - 20:])):
        with open(out / f"{split}.jsonl", "w") as f:
            for ex in template.build(part, tp, train=split == "train"):
                f.write(json.dumps(ex) + "\n")
    return str(out)


def llama_1b(tmp: Path, tokenizer_dir: str, tiny: bool = False) -> str:
    """A Llama-3.2-1B-shaped model with random weights and the embedded tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    shape = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4) if tiny else \
        dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32)
    cfg = LlamaConfig(vocab_size=len(tok), num_key_value_heads=4 if tiny else 8, max_position_embeddings=4096,
                      tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, **shape)
    out = tmp / "llama-1b-random"
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


def one_run(model: str, data: str, backend: str, four_bit: bool, steps: int) -> dict:
    """Runs in a fresh process: Unsloth patches transformers at import, so backends must not share one."""
    code = f"""
import json, sys, tempfile, time, torch
from transformers import TrainerCallback
from prodqa import params, train
p = params.load(params.Train, "params.yaml").model_copy(update=dict(backend={backend!r}, load_in_4bit={four_bit}, method="lora", packing=True,
    max_steps={steps}, eval_steps=10**6, save_steps=10**6, logging_steps=1, warmup_steps=2, per_device_train_batch_size=8, torch_compile=False))
tp = params.load(params.Template, "params.yaml")
cuda = torch.cuda.is_available()
class Clock(TrainerCallback):
    times = []
    def on_step_end(self, *a, **k):
        if cuda: torch.cuda.synchronize()
        self.times.append(time.perf_counter())
with tempfile.TemporaryDirectory() as tmp:
    trainer, _, used = train.build_trainer(train.Paths.of(base={model!r}, data={data!r}, checkpoints=tmp, adapter=tmp, merged=tmp,
                                              metrics=tmp), p, tp, [Clock()])
    if cuda: torch.cuda.reset_peak_memory_stats()
    trainer.train()
logs = [l for l in trainer.state.log_history if "loss" in l and "num_tokens" in l]
w = 3
tps = (logs[-1]["num_tokens"] - logs[w - 1]["num_tokens"]) / (Clock.times[-1] - Clock.times[w - 1])
print("RESULT" + json.dumps(dict(backend=used, four_bit={four_bit}, tokens_per_s=round(tps, 1),
      peak_gib=round(torch.cuda.max_memory_allocated() / 2**30, 3) if cuda else None, losses=[round(l["loss"], 4) for l in logs])))
"""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    print(proc.stderr[-3000:], file=sys.stderr)  # the log: why a run failed, what Unsloth said
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")), None)
    if line is None:
        return {"backend": backend, "four_bit": four_bit, "error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    return {**json.loads(line[len("RESULT"):]), "process_s": round(time.perf_counter() - start, 1)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="the base_model stage's output folder (a tokenizer alone for the 1B)")
    ap.add_argument("--models", nargs="+", default=["smollm2-135m", "llama-1b-random"])
    ap.add_argument("--backends", nargs="+", default=["peft", "unsloth"])
    ap.add_argument("--no-4bit", action="store_true", help="16-bit LoRA only")
    ap.add_argument("--tiny", action="store_true", help="a 2-layer random Llama for the 1B: a smoke test on a CPU")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--records", help="trn.json lines to train on (default: generated products)")
    ap.add_argument("--result", default=str(ROOT / "benchmarks" / "results" / "gpu_train.json"))
    args = ap.parse_args(argv)

    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    result = {"gpu": gpu, "torch": torch.__version__, "steps": args.steps, "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        data = make_data(Path(tmp), args.records)
        for name in args.models:
            model = args.base if name == "smollm2-135m" else llama_1b(Path(tmp), args.base, args.tiny)
            runs = [one_run(model, data, b, q, args.steps) for b in args.backends
                    for q in ((False,) if args.no_4bit else (False, True))]
            result["runs"][name] = runs
            by = {(r["backend"], r["four_bit"]): r for r in runs if "error" not in r}
            if ("peft", False) in by and ("unsloth", False) in by:
                a, b = by[("peft", False)], by[("unsloth", False)]
                result.setdefault("unsloth_over_peft", {})[name] = round(b["tokens_per_s"] / a["tokens_per_s"], 3)
                result.setdefault("loss_gap", {})[name] = round(
                    max(abs(x - y) / y for x, y in zip(a["losses"], b["losses"])), 4)
            for backend in ("peft", "unsloth"):
                if (backend, False) in by and (backend, True) in by:
                    result.setdefault("qlora_memory_share", {})[f"{name}/{backend}"] = round(
                        by[(backend, True)]["peak_gib"] / by[(backend, False)]["peak_gib"], 3)
            Path(args.result).parent.mkdir(parents=True, exist_ok=True)
            Path(args.result).write_text(json.dumps(result, indent=2) + "\n")  # after every model
    Path(args.result).parent.mkdir(parents=True, exist_ok=True)
    Path(args.result).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
