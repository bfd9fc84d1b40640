import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from prodqa import params, train
from prodqa.checkpoints import Checkpoints, ResumePoint
from prodqa.params import ParamsError

DESC = "This neon pink ballet tutu from Dickies is made of nylon. It features two side pockets."


@pytest.mark.parametrize("requested, cuda, unsloth, expected", [
    ("auto", False, True, "peft"),
    ("auto", True, False, "peft"),
    ("auto", True, True, "unsloth"),
    ("peft", True, True, "peft"),
    ("unsloth", True, True, "unsloth"),
])
def test_backend_choice(requested, cuda, unsloth, expected):
    assert train.choose_backend(requested, cuda, unsloth) == expected


@pytest.mark.parametrize("cuda, unsloth, message", [(False, True, "needs a CUDA GPU"), (True, False, "is not installed")])
def test_unsloth_request_that_cannot_be_met_names_the_key(cuda, unsloth, message):
    with pytest.raises(ParamsError, match=f"train.backend: 'unsloth' {message}"):
        train.choose_backend("unsloth", cuda, unsloth)


def test_4bit_without_cuda_names_the_key(shipped):
    p = params.parse("train", {**shipped["train"], "load_in_4bit": True})
    with pytest.raises(ParamsError, match="train.load_in_4bit: 4-bit QLoRA needs a CUDA GPU"):
        train.resolve_backend(p, has_cuda=False)


@pytest.mark.parametrize("attention, kernel", [("eager", "eager"), ("sdpa", "sdpa"), ("auto", "eager")])
def test_trainer_trains_with_the_chosen_attention_kernel(tiny_model, tiny_run, attention, kernel):
    p, tp, data, out = tiny_run
    trainer, _, _ = train.build_trainer(train.Paths.of(base=tiny_model, data=data, **out),
                                        p.model_copy(update={"attention": attention}), tp)
    assert trainer.model.config._attn_implementation == kernel  # auto: eager on this CPU


def test_auto_attention_is_eager_on_a_cpu_and_sdpa_on_a_gpu():
    assert train.attention_kernel("auto", has_cuda=False) == "eager"
    assert train.attention_kernel("auto", has_cuda=True) == "sdpa"
    assert train.attention_kernel("sdpa", has_cuda=False) == "sdpa"
    assert train.attention_kernel("eager", has_cuda=True) == "eager"


def test_lora_first_layer_adapts_that_layer_and_the_ones_above_only(tiny_model, tiny_run):
    """train.lora_first_layer 1 of 2: adapters on layer 1 alone, so no gradient reaches layer 0; 2 names the key."""
    p, tp, data, out = tiny_run
    trainer, _, _ = train.build_trainer(train.Paths.of(base=tiny_model, data=data, **out),
                                        p.model_copy(update={"lora_first_layer": 1}), tp)
    adapted = {n.split(".layers.")[1].split(".")[0] for n, q in trainer.model.named_parameters() if q.requires_grad}
    assert adapted == {"1"}
    reached = []
    layer0 = trainer.model.get_base_model().model.layers[0]
    layer0.register_full_backward_hook(lambda *a: reached.append(0))
    batch = dict(next(iter(trainer.get_train_dataloader())))
    trainer.model.train()
    trainer.compute_loss(trainer.model, batch).backward()
    assert reached == [] and all(q.grad is not None for q in trainer.model.parameters() if q.requires_grad)
    with pytest.raises(ParamsError, match=r"train.lora_first_layer: 2 leaves no layer to adapt \(the model has 2\)"):
        train.build_trainer(train.Paths.of(base=tiny_model, data=data, **out), p.model_copy(update={"lora_first_layer": 2}), tp)


def run(tiny_model, tiny_run, **kw):
    p, tp, data, out = tiny_run
    return train.train(train.Paths.of(base=tiny_model, data=data, **out), p, tp, **kw)


@pytest.mark.slow
def test_tiny_end_to_end_train_writes_adapter_merged_model_and_metrics(tiny_model, tiny_run):
    summary = run(tiny_model, tiny_run)
    out = tiny_run[3]
    assert summary["backend"] == "peft" and summary["steps"] == 4
    adapter = json.loads((Path(out["adapter"]) / "adapter_config.json").read_text())
    assert adapter["target_modules"] == sorted(tiny_run[0].target_modules)  # not in set order: the same bytes each run
    assert (Path(out["merged"]) / "model.safetensors").exists() and (Path(out["merged"]) / "tokenizer.json").exists()
    metrics = json.loads((Path(out["metrics"]) / "metrics.json").read_text())
    assert metrics["step"] == 4 and metrics["eval"]["loss"] > 0
    # 4 steps of 2 examples, their tokens unpadded: at least the prompts', at most max_seq_len each.
    assert 4 * 2 * 30 < metrics["train/trained_tokens"] <= 4 * 2 * 64
    losses = (Path(out["metrics"]) / "plots" / "metrics" / "train" / "loss.tsv").read_text().splitlines()
    assert losses[0] == "step\tloss" and len(losses) == 5
    # lr 1e-2 on one repeated description: the loss must fall.
    assert float(losses[-1].split("\t")[1]) < float(losses[1].split("\t")[1])


@pytest.mark.slow
def test_full_finetuning_trains_every_weight_and_writes_the_model_as_merged(tiny_model, tiny_run):
    """method full: no adapter (a note says so), every weight changed, fp32 master weights saved."""
    import torch
    from safetensors.torch import load_file

    p, tp, data, out = tiny_run
    full = p.model_copy(update={"method": "full", "loraplus_lr_ratio": 0.0})
    summary = train.train(train.Paths.of(base=tiny_model, data=data, **out), full, tp)
    assert summary["steps"] == 4
    assert json.loads((Path(out["adapter"]) / train.FULL_NOTE).read_text())["method"] == "full"
    assert not (Path(out["adapter"]) / "adapter_config.json").exists()
    before, after = load_file(Path(tiny_model) / "model.safetensors"), load_file(Path(out["merged"]) / "model.safetensors")
    assert after["model.layers.0.mlp.up_proj.weight"].dtype == torch.float32
    changed = [k for k in before if not torch.equal(before[k].float(), after[k].float())]
    assert "model.layers.0.mlp.up_proj.weight" in changed and "model.norm.weight" in changed  # not only LoRA targets


def test_full_finetuning_refuses_4bit_and_unsloth(shipped):
    for key, value in (("load_in_4bit", True), ("backend", "unsloth")):
        with pytest.raises(ParamsError, match="train: .*method 'full'"):
            params.parse("train", {**shipped["train"], "method": "full", "loraplus_lr_ratio": 0, key: value})
    p = params.parse("train", {**shipped["train"], "method": "full", "loraplus_lr_ratio": 0})
    assert train.resolve_backend(p, has_cuda=True) == "peft"  # auto never picks Unsloth for a full fine-tune


@pytest.mark.slow
def test_killed_run_resumes_from_last_checkpoint(tiny_model, tiny_run):
    from transformers import TrainerCallback

    class Kill(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 3:
                raise KeyboardInterrupt

    old = Path(tiny_run[3]["merged"])
    old.mkdir()
    (old / "model.safetensors").write_bytes(b"the previous run's model")
    with pytest.raises(KeyboardInterrupt):
        run(tiny_model, tiny_run, extra_callbacks=(Kill(),))
    # The killed run replaced nothing: the previous output is intact and no temporary is left beside it.
    assert (old / "model.safetensors").read_bytes() == b"the previous run's model"
    assert sorted(p.name for p in old.parent.iterdir() if p.name.startswith(".merged")) == []
    summary = run(tiny_model, tiny_run)
    assert summary["resumed_from"].endswith("checkpoint-2") and summary["steps"] == 4
    losses = (Path(tiny_run[3]["metrics"]) / "plots" / "metrics" / "train" / "loss.tsv").read_text().splitlines()
    assert [line.split("\t")[0] for line in losses[1:]][-2:] == ["3", "4"]  # the curve goes on where it stopped
    # A finished run is not resumed: re-running it (e.g. after a code change) trains from the start.
    assert run(tiny_model, tiny_run)["resumed_from"] is None
    # Other params: the old checkpoints do not apply, training starts over.
    p, tp, data, out = tiny_run
    tiny_run = (p.model_copy(update={"learning_rate": 5e-3}), tp, data, out)
    assert run(tiny_model, tiny_run)["resumed_from"] is None


def test_stage_fails_cleanly_on_bad_params(tmp_path, params_file):
    cmd = [sys.executable, "-m", "stages.train", "--params", params_file({"train.learning_rate": -1}), "--base", "m",
           "--data", "d", "--adapter", "a", "--merged", "m2", "--checkpoints", "c", "--metrics", "x"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: params.yaml: train.learning_rate: Input should be greater than 0 (got -1)"


def test_loraplus_lr_ratio_with_full_finetuning_names_the_key(shipped):
    with pytest.raises(ParamsError, match="train: .*loraplus_lr_ratio"):
        params.parse("train", {**shipped["train"], "method": "full", "loraplus_lr_ratio": 16})


def test_loraplus_trains_the_b_matrices_at_ratio_times_the_learning_rate(tiny_model, tiny_run):
    """train.loraplus_lr_ratio: PEFT's LoRA+ optimizer, B matrices at ratio x learning_rate, A at it."""
    p, tp, data, out = tiny_run
    p = p.model_copy(update={"loraplus_lr_ratio": 8.0, "learning_rate": 1e-3, "max_steps": 1, "lr_batch_scaling": "none"})
    trainer, _, _ = train.build_trainer(train.Paths.of(base=tiny_model, data=data, **out), p, tp)
    trainer.create_optimizer()
    names = {id(q): n for n, q in trainer.model.named_parameters()}
    lrs = {names[id(q)].split("lora_")[1].split(".")[0]: g["lr"] for g in trainer.optimizer.param_groups
           for q in g["params"]}
    assert lrs == {"A": 1e-3, "B": 8e-3}


def test_focal_loss_weights_the_tokens_not_yet_right():
    """train.focal_gamma: gamma 0 is the mean cross-entropy of the scored tokens; with gamma 2 a token the model
    already gets right (p 0.99) hardly counts and the loss is nearly the wrong token's."""
    import math

    import torch

    logits = torch.full((1, 4, 3), -20.0)
    logits[0, 0, :2] = torch.tensor([math.log(99), 0.0])  # the next token, 0, at p 0.99
    logits[0, 1, 0], logits[0, 1, 2] = math.log(9), 0.0  # the next token, 2, at p 0.1
    targets = torch.tensor([[0, 2, -100, -100]])  # the token each position predicts; the last two are not scored
    right, wrong = -math.log(0.99), -math.log(0.1)
    assert train.focal_loss(logits, targets, 0.0).item() == pytest.approx((right + wrong) / 2, rel=1e-3)
    assert train.focal_loss(logits, targets, 2.0).item() == pytest.approx(wrong, rel=1e-3)


def test_opening_loss_is_each_rows_first_scored_token_loss():
    import math

    import torch

    logits = torch.zeros(2, 4, 3)
    logits[0, 1, 2] = math.log(8)  # row 0 opens at position 1 with token 2, at p 0.8; row 1 at position 2, p 1/3
    logits[1, 1, 1] = 9.0  # a position row 1 does not score
    targets = torch.tensor([[-100, 2, 0, -100], [-100, -100, 1, 1]])
    assert train.opening_loss(logits, targets).item() == pytest.approx((-math.log(0.8) - math.log(1 / 3)) / 2, rel=1e-4)


def test_opening_weight_adds_the_first_answer_tokens_loss_to_a_training_step(tiny_model, tiny_run, shipped):
    """train.opening_weight: a training step's loss is the mean cross-entropy plus the weight x the opening's."""
    import torch

    p, tp, data, out = tiny_run
    trainer, _, _ = train.build_trainer(train.Paths.of(base=tiny_model, data=data, **out),
                                        p.model_copy(update={"opening_weight": 2.0}), tp)
    batch = dict(next(iter(trainer.get_train_dataloader())))
    with torch.no_grad():
        trainer.model.train()
        trained = trainer.compute_loss(trainer.model, dict(batch)).item()  # from the frozen layer's cached output
        trainer.frozen_layers.restore()  # the whole model, as the reference
        logits = trainer.model(**{k: v for k, v in batch.items() if k != "labels"}).logits[:, :-1]
    targets = batch["labels"][:, 1:]
    expected = train.focal_loss(logits, targets, 0.0) + 2.0 * train.opening_loss(logits, targets)
    assert trained == pytest.approx(expected.item(), rel=1e-4) and train.opening_loss(logits, targets) > 0
    with pytest.raises(ParamsError, match="train: .*opening_weight"):
        params.parse("train", {**shipped["train"], "loss": "trl", "opening_weight": 1})


def test_a_training_step_runs_the_lm_head_on_the_answer_positions_only(tiny_model, tiny_run):
    """The LM head of a training step sees only the positions whose next token is scored, and the loss is the one
    the full logits give (validation computes it that way; no opening weight, which validation leaves out)."""
    import torch

    p, tp, data, out = tiny_run
    trainer, _, _ = train.build_trainer(train.Paths.of(base=tiny_model, data=data, **out),
                                        p.model_copy(update={"opening_weight": 0.0}), tp)
    batch = dict(next(iter(trainer.get_train_dataloader())))
    scored = int((batch["labels"][:, 1:] != -100).any(0).sum())
    assert batch["labels"].shape[0] == 2 and 0 < scored < batch["labels"].shape[1] - 1  # two rows, a prompt to skip
    head_rows = []
    hook = trainer.model.get_output_embeddings().register_forward_hook(lambda m, i, o: head_rows.append(i[0].shape[1]))
    with torch.no_grad():
        trainer.model.eval()
        full = trainer.compute_loss(trainer.model, dict(batch)).item()
        trainer.model.train()
        kept = trainer.compute_loss(trainer.model, dict(batch)).item()
    hook.remove()
    assert head_rows == [batch["input_ids"].shape[1], scored]
    assert kept == pytest.approx(full, rel=1e-5)


def test_focal_gamma_is_the_training_loss_and_needs_the_model_loss(tiny_model, tiny_run, shipped, monkeypatch):
    """A training step's loss is the focal loss at train.focal_gamma; validation keeps the plain cross-entropy."""
    import torch

    gammas = []

    def spy(logits, targets, gamma):
        gammas.append(gamma)
        return focal_loss(logits, targets, gamma)

    focal_loss = train.focal_loss
    monkeypatch.setattr(train, "focal_loss", spy)
    p, tp, data, out = tiny_run
    trainer, _, _ = train.build_trainer(train.Paths.of(base=tiny_model, data=data, **out),
                                        p.model_copy(update={"focal_gamma": 2.0, "opening_weight": 0.0}), tp)
    batch = dict(next(iter(trainer.get_train_dataloader())))
    with torch.no_grad():
        trainer.model.eval()
        trainer.compute_loss(trainer.model, dict(batch))
        assert gammas == []
        trainer.model.train()
        trained = trainer.compute_loss(trainer.model, dict(batch)).item()
        trainer.frozen_layers.restore()  # the whole model, as the reference
        logits = trainer.model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    assert gammas == [2.0]
    assert trained == pytest.approx(focal_loss(logits[:, :-1], batch["labels"][:, 1:], 2.0).item(), rel=1e-4)
    with pytest.raises(ParamsError, match="train: .*focal_gamma"):
        params.parse("train", {**shipped["train"], "loss": "trl", "focal_gamma": 1, "opening_weight": 0})


def test_loss_per_token_scales_a_step_by_its_answer_length(tiny_model, tiny_run):
    """train.loss_per token: a training step's loss is its answer tokens' mean x their number over the training
    set's mean answer length, so a long description takes a larger step; validation keeps the plain mean."""
    import torch

    from prodqa import template

    p, tp, data, out = tiny_run
    rows = [{"title": f"Tutu {i}", "content": " ".join(DESC.split()[:3 + 3 * i])} for i in range(5)]
    (Path(data) / "train.jsonl").write_text("".join(json.dumps(ex) + "\n" for ex in template.build(rows, tp, train=True)))
    trainer, _, _ = train.build_trainer(train.Paths.of(base=tiny_model, data=data, **out),
                                        p.model_copy(update={"loss_per": "token", "per_device_train_batch_size": 1,
                                                             "opening_weight": 0.0}), tp)
    batches = [dict(b) for b in trainer.get_train_dataloader()]
    answer = [int((b["labels"] != -100).sum()) for b in batches]
    assert len(set(answer)) > 1  # answers of different lengths
    batch = batches[answer.index(max(answer))]
    with torch.no_grad():
        trainer.model.eval()
        mean = trainer.compute_loss(trainer.model, dict(batch)).item()
        trainer.model.train()
        trained = trainer.compute_loss(trainer.model, dict(batch)).item()
    assert trained == pytest.approx(mean * max(answer) / (sum(answer) / len(answer)), rel=1e-4)


def test_trainer_packs_examples_with_position_ids_restarting_at_each_one(tiny_model, tiny_run):
    """This project's trainer packs several examples per row; each must restart position_ids at 0, which is
    what makes transformers mask attention across them (checked below on the same row)."""
    import torch

    p, tp, data, out = tiny_run
    trainer, _, _ = train.build_trainer(train.Paths.of(base=tiny_model, data=data, **out), p.model_copy(update={"packing": True}), tp)
    batch = next(iter(trainer.get_train_dataloader()))
    pos = batch["position_ids"][0].tolist()
    starts = [i for i, x in enumerate(pos) if x == 0]
    assert len(starts) >= 2 and starts[0] == 0  # several examples in one row
    for a, b in zip(starts, starts[1:] + [len(pos)]):
        assert pos[a:b] == list(range(b - a))  # 0, 1, 2, … within each example
    model = trainer.model.eval()
    ids = batch["input_ids"][:, : starts[2] if len(starts) > 2 else len(pos)]
    cut = starts[1]
    with torch.no_grad():
        packed = model(input_ids=ids, position_ids=batch["position_ids"][:, : ids.shape[1]], use_cache=False).logits
        separate = torch.cat([model(input_ids=ids[:, :cut]).logits, model(input_ids=ids[:, cut:]).logits], 1)
    assert torch.allclose(packed, separate, atol=1e-4)


def test_unsloth_installed_but_no_cuda_trains_with_peft_without_importing_it(tiny_model, tiny_run, monkeypatch):
    import importlib.machinery

    class ForbidUnsloth:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "unsloth":
                raise AssertionError("unsloth was imported on a machine without CUDA")

    real = train.importlib.util.find_spec
    monkeypatch.setattr(train.importlib.util, "find_spec",  # "installed"
                        lambda name, *a: importlib.machinery.ModuleSpec(name, None) if name == "unsloth" else real(name, *a))
    monkeypatch.setattr(sys, "meta_path", [ForbidUnsloth(), *sys.meta_path])
    p, tp, data, out = tiny_run
    _, _, backend = train.build_trainer(train.Paths.of(base=tiny_model, data=data, **out), p, tp)
    assert backend == "peft"


def test_trl_loss_without_triton_names_the_key(shipped, monkeypatch):
    real = train.importlib.util.find_spec
    monkeypatch.setattr(train.importlib.util, "find_spec", lambda name: None if name == "triton" else real(name))
    p = params.parse("train", {**shipped["train"], "loss": "trl", "opening_weight": 0})
    with pytest.raises(ParamsError, match="train.loss: 'trl' computes the loss in TRL's Triton kernel"):
        train.resolve_backend(p, has_cuda=False)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="TRL's fused LM head needs Triton (CUDA torch)")
def test_model_loss_equals_trl_fused_loss(tiny_model, tiny_run):
    """The faster loss path (train.loss: model) computes the same loss as TRL's fused LM head."""
    import torch

    p, tp, data, out = tiny_run
    losses = []
    for loss in ("model", "trl"):
        trainer, _, _ = train.build_trainer(train.Paths.of(base=tiny_model, data=data, **out),
                                            p.model_copy(update={"loss": loss}), tp)
        batch = next(iter(trainer.get_train_dataloader()))
        trainer.model.eval()
        with torch.no_grad():
            losses.append(trainer.compute_loss(trainer.model, dict(batch)).item())
    assert losses[0] == pytest.approx(losses[1], rel=1e-4)


@pytest.mark.slow
def test_two_processes_under_accelerate_launch_on_cpu(tmp_path, tiny_model, tiny_run, params_file):
    """train.num_processes: 2 runs DDP over gloo with the same stage code; rank 0 writes the outputs."""
    _, _, data, out = tiny_run
    prm = params_file({"train.num_processes": 2, "train.max_steps": 2, "train.per_device_train_batch_size": 2, "train.eval_steps": 2,
                       "train.save_steps": 2, "train.logging_steps": 1, "train.lora_r": 4, "train.lora_alpha": 8,
                       "train.lora_first_layer": 1, "template.max_seq_len": 64, "train.torch_compile": False})
    cmd = [sys.executable, "-m", "stages.train", "--params", prm, "--base", tiny_model, "--data", data,
           *[f"--{k}={v}" for k, v in out.items()]]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).parents[1], timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "on 2 process(es)" in proc.stdout and proc.stdout.count("trained ") == 1  # printed by rank 0 only
    metrics = json.loads((Path(out["metrics"]) / "metrics.json").read_text())
    assert metrics["train/processes"] == 2 and metrics["step"] == 2
    assert (Path(out["merged"]) / "model.safetensors").exists()


@pytest.mark.parametrize("requested, workers, expected", [(0, 1, 4), (0, 2, 2), (0, 8, 1), (3, 2, 3)])
def test_cpu_threads_share_the_cores_this_process_may_run_on(monkeypatch, requested, workers, expected):
    """DDP workers split the process's own cores (4 of the machine's 16 here, as under a container's cpuset or
    taskset) instead of the machine's count; train.threads, when set, is taken as it is."""
    import os

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert train.cpu_threads(requested, workers) == expected


@pytest.mark.slow
def test_same_seed_same_loss_curve(tmp_path, tiny_model, tiny_run):
    """CPU training is reproducible: two runs with the same params and seed log the same losses."""
    p, tp, data, out = tiny_run
    curves = []
    for run_dir in ("a", "b"):
        dirs = {k: str(tmp_path / run_dir / k) for k in out}
        train.train(train.Paths.of(base=tiny_model, data=data, **dirs), p, tp)
        curves.append((Path(dirs["metrics"]) / "plots" / "metrics" / "train" / "loss.tsv").read_text())
    assert curves[0] == curves[1] and len(curves[0].splitlines()) == 5


def test_trl_keys_are_exactly_the_train_fields_sftconfig_also_has():
    """Derived, not listed: a new train field named like an SFTConfig argument reaches TRL, and this list says so
    (a name that means something else in TRL shows up here before it changes a run)."""
    assert params.trl_keys() == {
        "learning_rate", "max_steps", "num_train_epochs", "per_device_train_batch_size", "per_device_eval_batch_size",
        "gradient_accumulation_steps", "warmup_steps", "lr_scheduler_type", "optim", "weight_decay", "max_grad_norm", "packing",
        "torch_compile", "gradient_checkpointing", "seed", "eval_steps", "save_steps", "logging_steps",
        "save_total_limit"}
    shipped = params.read_yaml(Path(__file__).parents[1] / "params.yaml")["train"]
    config = train.sft_config(params.parse("train", shipped), 64, "/tmp/unused", has_cuda=False, bf16=False,
                              compile_model=False)
    assert all(getattr(config, key) == shipped[key] for key in params.trl_keys() - train.RESOLVED)
    assert config.torch_compile is False  # ours may be "auto": resolved by train.compiles, not passed through
    assert (config.per_device_train_batch_size, config.learning_rate) == (1, shipped["learning_rate"])  # auto, CPU


@pytest.mark.parametrize("batch, accumulation, processes, cuda, scaling, per_step, lr", [
    ("auto", 1, 1, False, "sqrt", 1, 1e-3),  # a CPU: one example a step, at learning_rate itself
    ("auto", 1, 1, True, "sqrt", train.CUDA_BATCH, 1e-3 * train.CUDA_BATCH ** 0.5),
    (4, 1, 1, False, "sqrt", 4, 2e-3),
    (4, 2, 2, False, "linear", 16, 16e-3),  # accumulation and processes count as examples a step
    (4, 1, 1, False, "none", 4, 1e-3),
])
def test_the_batch_resolves_by_device_and_the_learning_rate_scales_with_the_examples_a_step(
        batch, accumulation, processes, cuda, scaling, per_step, lr):
    shipped = params.read_yaml(Path(__file__).parents[1] / "params.yaml")["train"]
    p = params.parse("train", {**shipped, "per_device_train_batch_size": batch, "gradient_accumulation_steps":
                               accumulation, "num_processes": processes, "lr_batch_scaling": scaling,
                               "learning_rate": 1e-3})
    assert train.examples_per_step(p, cuda) == per_step
    assert train.learning_rate(p, cuda) == pytest.approx(lr)
    config = train.sft_config(p, 64, "/tmp/unused", has_cuda=False, bf16=False, compile_model=False)
    assert config.learning_rate == pytest.approx(train.learning_rate(p, False))  # what TRL is given


@pytest.mark.parametrize("requested, steps, cuda, bf16, expected", [
    ("auto", train.COMPILE_MIN_STEPS, False, True, True),
    ("auto", train.COMPILE_MIN_STEPS - 1, False, True, False),
    ("auto", 10**6, False, False, False),  # fp32 (an AVX2-only CPU): compiled steps were no faster
    ("auto", 10**6, True, True, False),  # measured on CPUs only
    (True, 1, False, False, True),
    (False, 10**6, False, True, False),
])
def test_torch_compile_auto_compiles_long_bf16_cpu_runs_only(requested, steps, cuda, bf16, expected):
    assert train.compiles(requested, steps, cuda, bf16) is expected


def test_torch_compile_auto_compiles_bf16_runs_of_that_many_steps_with_dynamic_shapes_and_padded_rows(
        tiny_model, tiny_run, monkeypatch):
    """auto: a bf16 run of COMPILE_MIN_STEPS steps is compiled (one graph with dynamic shapes, rows padded to a few
    lengths); one step shorter, or in fp32, it runs eagerly, unpadded."""
    p, tp, data, out = tiny_run
    p = p.model_copy(update={"torch_compile": "auto"})
    for min_steps, precision, compiled in ((p.max_steps, "bf16", True), (p.max_steps + 1, "bf16", False),
                                           (p.max_steps, "fp32", False)):
        monkeypatch.setattr(train, "COMPILE_MIN_STEPS", min_steps)
        trainer, _, _ = train.build_trainer(train.Paths.of(base=tiny_model, data=data, **out),
                                            p.model_copy(update={"precision": precision}), tp)
        assert trainer.args.torch_compile is compiled
        assert trainer.args.pad_to_multiple_of == (train.PAD_MULTIPLE if compiled else None)
        assert trainer.accelerator.state.dynamo_plugin.dynamic is (True if compiled else None)


@pytest.mark.slow
def test_planned_steps_are_the_steps_the_trainer_takes(tiny_model, tiny_run):
    p, tp, data, out = tiny_run
    p = p.model_copy(update={"max_steps": -1, "num_train_epochs": 1.5, "gradient_accumulation_steps": 2,
                             "save_steps": 100, "eval_steps": 100})
    lines = sum(1 for _ in open(Path(data) / "train.jsonl"))
    summary = train.train(train.Paths.of(base=tiny_model, data=data, **out), p, tp)
    examples = summary["examples"]  # at max_seq_len 64 a reading example's answer is cut off, and TRL drops it
    assert 0 < examples <= lines
    assert summary["steps"] == train.planned_steps(p, examples) == math.ceil(math.ceil(examples / 4) * 1.5)
    assert train.planned_steps(p.model_copy(update={"max_steps": 7}), examples) == 7


@pytest.mark.slow
def test_a_compiled_run_trains_on_this_machine(tiny_model, tiny_run):
    """torch.compile (which auto turns on for long runs) works here: inductor's C++ build, dynamic shapes."""
    p, tp, data, out = tiny_run
    summary = train.train(train.Paths.of(base=tiny_model, data=data, **out),
                          p.model_copy(update={"torch_compile": True}), tp)
    assert summary["compiled"] is True and summary["steps"] == p.max_steps and summary["train_loss"] > 0
