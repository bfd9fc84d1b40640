"""Stage ``train``: LoRA fine-tuning of the base model on the templated examples.

Reads the ``base_model`` directory and the ``template`` JSONL files; writes the LoRA adapter, the merged
model (for evaluation and export), checkpoints (kept across runs, for resuming) and dvclive metrics.

Two methods (``train.method``): ``lora`` trains LoRA adapters over the frozen base weights; ``full`` trains
every weight (fp32 master weights, bf16 matrix products where ``precision`` resolves to bf16), at ≈ 1.35x
LoRA's compute per token; at the learning rate tried it learned a product more slowly than LoRA
(docs/cost.md). Its ``adapter`` output then holds only a note, and ``merged`` the trained model.

Two backends, driven by the same ``train`` params:
- ``peft``: PEFT LoRA + TRL's SFTTrainer; runs anywhere (this is the CPU path).
- ``unsloth``: Unsloth's FastLanguageModel (optionally 4-bit QLoRA); CUDA only. ``auto`` picks it when a
  CUDA GPU is present and unsloth is installed. Unsloth is never imported without CUDA.
"""

from __future__ import annotations

import importlib.util
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

from . import precision
from .checkpoints import Checkpoints, ResumePoint, fingerprint
from .files import atomic_path, read_jsonl, write_json
from .params import ParamsError, Template, Train, trl_keys

PAD_MULTIPLE = 64  # unpacked rows under torch.compile are padded to a multiple of this (few shapes)
# torch_compile auto: a bf16 CPU run this long repays the compile (measured on a 2-core AMX Xeon: ≈ 150 s of
# compile, then ≈ 0.13 s saved a step of one example, so break-even near 1,200 steps). In fp32 (an AVX2-only CPU)
# the matrix products bound a step and compiled steps were no faster: those runs stay eager (docs/cost.md).
COMPILE_MIN_STEPS = 2000
# train.per_device_train_batch_size auto on a CUDA GPU: one example a step leaves it nearly idle (766 tokens/s on an
# H200, docs/gpu.md). 4 with the sqrt rule recalled within 0.01 of batch 1 at equal exposures; 16 did not, with the
# sqrt rule or without (CPU runs, docs/cost.md#examples-a-step-issue-55). Not yet measured on a GPU.
CUDA_BATCH = 4
FULL_NOTE = "full_finetune.json"  # the adapter output of method full: says where the trained model is
RESOLVED = {"torch_compile", "per_device_train_batch_size", "learning_rate"}  # TRL keys resolved before SFTConfig


@dataclass(frozen=True, kw_only=True)
class Paths:
    """Where a training run reads (``base``, ``data``) and writes (the rest); the stage's dvc.yaml paths."""

    base: Path         # the base model folder (base_model stage)
    data: Path         # train.jsonl / validation.jsonl (template stage)
    adapter: Path      # out: the LoRA adapter
    merged: Path       # out: base + adapter, merged in fp32
    checkpoints: Path  # out, persisted: resume points of an interrupted run
    metrics: Path      # out: dvclive metrics and plots

    @classmethod
    def of(cls, **paths: str | os.PathLike) -> "Paths":
        return cls(**{k: Path(v) for k, v in paths.items()})


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def choose_backend(requested: str, has_cuda: bool, has_unsloth: bool | None = None) -> str:
    """Resolve ``train.backend``; fails early (naming the key) when the request cannot be met."""
    if has_unsloth is None:
        has_unsloth = importlib.util.find_spec("unsloth") is not None
    if requested == "unsloth":
        if not has_cuda:
            raise ParamsError("train.backend: 'unsloth' needs a CUDA GPU and none is visible (use 'auto' or 'peft')")
        if not has_unsloth:
            raise ParamsError("train.backend: 'unsloth' is not installed (pip install -r requirements-gpu.txt)")
        return "unsloth"
    if requested == "auto":
        return "unsloth" if has_cuda and has_unsloth else "peft"
    return "peft"


def resolve_backend(p: Train, has_cuda: bool) -> str:
    """The backend for these params on this machine, or ParamsError before any work starts."""
    if p.method == "full":  # TRL on the plain model; the schema refused unsloth and 4-bit with it
        return "peft"
    if p.load_in_4bit and not has_cuda:
        raise ParamsError("train.load_in_4bit: 4-bit QLoRA needs a CUDA GPU (bitsandbytes)")
    if p.loss == "trl" and importlib.util.find_spec("triton") is None:
        # TRL 1.15 computes them in a Triton kernel only; the CPU build of torch ships without Triton.
        raise ParamsError("train.loss: 'trl' computes the loss in TRL's Triton kernel (a CUDA build of torch); "
                          "set it to false on this machine")
    return choose_backend(p.backend, has_cuda)


def batch_size(p: Train, has_cuda: bool) -> int:
    """Resolve ``train.per_device_train_batch_size``: ``auto`` is one example a step on a CPU (at equal exposures
    it recalls best there, docs/cost.md) and :data:`CUDA_BATCH` on a CUDA GPU."""
    if p.per_device_train_batch_size == "auto":
        return CUDA_BATCH if has_cuda else 1
    return p.per_device_train_batch_size


def examples_per_step(p: Train, has_cuda: bool) -> int:
    """Rows an optimizer step learns from: the batch, times gradient accumulation, times the processes."""
    return batch_size(p, has_cuda) * p.gradient_accumulation_steps * max(p.num_processes, 1)


def learning_rate(p: Train, has_cuda: bool) -> float:
    """The run's peak learning rate: ``train.learning_rate`` (one example a step's) scaled to the examples a step
    by ``train.lr_batch_scaling``."""
    b = examples_per_step(p, has_cuda)
    return p.learning_rate * {"none": 1.0, "sqrt": math.sqrt(b), "linear": float(b)}[p.lr_batch_scaling]


def planned_steps(p: Train, examples: int, has_cuda: bool = False) -> int:
    """Optimizer steps the run will take (``max_steps``, or the epochs over ``examples`` unpacked rows; with
    ``packing`` the rows are fewer, and this an upper bound)."""
    if p.max_steps > 0:
        return p.max_steps
    return math.ceil(math.ceil(examples / examples_per_step(p, has_cuda)) * p.num_train_epochs)


def compiles(requested: bool | str, steps: int, has_cuda: bool, bf16: bool) -> bool:
    """Resolve ``train.torch_compile``: ``auto`` compiles a bf16 CPU run of at least ``COMPILE_MIN_STEPS`` steps."""
    if requested == "auto":
        return not has_cuda and bf16 and steps >= COMPILE_MIN_STEPS
    return bool(requested)


def attention_kernel(requested: str, has_cuda: bool) -> str:
    """Resolve ``train.attention``: ``auto`` is transformers' eager attention on a CPU, whose matrix products a
    compiled run fuses with the rest of its graph (1.1x faster than the CPU flash kernel there; about even in eager
    steps), and sdpa on a GPU."""
    if requested == "auto":
        return "sdpa" if has_cuda else "eager"
    return requested


def live_callback(live):
    """A Trainer callback that logs to dvclive with the trainer's global step as the x axis."""
    from transformers import TrainerCallback

    names = {"loss": "train/loss", "learning_rate": "train/lr", "grad_norm": "train/grad_norm",
             "eval_loss": "eval/loss", "mean_token_accuracy": "train/token_accuracy",
             "eval_mean_token_accuracy": "eval/token_accuracy"}

    class LiveCallback(TrainerCallback):
        last = (0.0, 0)  # (time, tokens) at the previous log

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs:
                return
            live.step = state.global_step
            for key, name in names.items():
                if key in logs:
                    live.log_metric(name, float(logs[key]))
            if "num_tokens" in logs:  # cumulative non-padding tokens, logged by TRL
                now, tokens = time.perf_counter(), float(logs["num_tokens"])
                if self.last[1] and tokens > self.last[1]:
                    live.log_metric("train/tokens_per_s", round((tokens - self.last[1]) / (now - self.last[0]), 1))
                self.last = (now, tokens)
            live.make_summary()

    return LiveCallback()


def _load_peft(base_dir: str, p: Train, has_cuda: bool):
    """The base model in ``train.precision`` (its frozen weights), the tokenizer and the LoRA config.

    PEFT keeps the LoRA weights, and so the optimizer state, in fp32 over bf16 base weights
    (``autocast_adapter_dtype``); the trainer's bf16 autocast runs the matrix products in bf16.
    """
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # Full fine-tuning keeps fp32 master weights (bf16 weights would round small updates away); the
    # trainer's bf16 autocast still runs its matrix products in bf16.
    dtype = torch.float32 if p.method == "full" else precision.torch_dtype(p.precision)
    kw = {}
    if p.load_in_4bit:
        from transformers import BitsAndBytesConfig

        kw["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                       bnb_4bit_compute_dtype=dtype)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=dtype, use_safetensors=True,
                                                 attn_implementation=attention_kernel(p.attention, has_cuda), **kw)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    if p.method == "full":
        return model, tokenizer, None
    lora = LoraConfig(r=p.lora_r, lora_alpha=p.lora_alpha, lora_dropout=p.lora_dropout,
                      target_modules=list(p.target_modules), bias="none", task_type="CAUSAL_LM",
                      layers_to_transform=lora_layers(model.config.num_hidden_layers, p.lora_first_layer))
    return model, tokenizer, lora


def lora_layers(num_layers: int, first: int) -> list[int] | None:
    """The decoder layers that get adapters (``train.lora_first_layer`` up; None: all), or ParamsError."""
    if first >= num_layers:
        raise ParamsError(f"train.lora_first_layer: {first} leaves no layer to adapt (the model has {num_layers})")
    return list(range(first, num_layers)) if first else None


def _load_unsloth(base_dir: str, p: Train, max_seq_len: int):
    from unsloth import FastLanguageModel  # CUDA only: choose_backend guarantees it

    model, tokenizer = FastLanguageModel.from_pretrained(model_name=base_dir, max_seq_length=max_seq_len,
                                                         dtype=None, load_in_4bit=p.load_in_4bit)
    model = FastLanguageModel.get_peft_model(
        model, r=p.lora_r, lora_alpha=p.lora_alpha, lora_dropout=p.lora_dropout,
        target_modules=list(p.target_modules), bias="none",
        layers_to_transform=lora_layers(model.config.num_hidden_layers, p.lora_first_layer),
        use_gradient_checkpointing="unsloth" if p.gradient_checkpointing else False,
        random_state=p.seed)
    return model, tokenizer, None


def sft_config(p: Train, max_seq_len: int, ckpt_dir: str, has_cuda: bool, bf16: bool, compile_model: bool):
    """TRL's SFTConfig: the ``train`` keys TRL has too (``params.trl_keys``) pass through unchanged, but three that
    are resolved first: ``torch_compile`` (may be ``auto``: :func:`compiles` gives ``compile_model``), the batch
    (:func:`batch_size`) and the learning rate (:func:`learning_rate`)."""
    from trl import SFTConfig

    return SFTConfig(
        **p.model_dump(include=trl_keys() - RESOLVED),
        torch_compile=compile_model,
        per_device_train_batch_size=batch_size(p, has_cuda),
        learning_rate=learning_rate(p, has_cuda),
        output_dir=ckpt_dir,
        data_seed=p.seed,
        max_length=max_seq_len,
        eval_packing=False,  # eval loss per example, comparable across packing settings
        # torch.compile fuses the many small ops around the matrix products (2x on CPU, see docs/benchmarks.md);
        # rows padded to a few lengths keep it to a few compiled graphs instead of a recompile per length
        # (packed rows: one length; single examples: multiples of PAD_MULTIPLE).
        pad_to_multiple_of=(max_seq_len if p.packing else PAD_MULTIPLE) if compile_model else None,
        completion_only_loss=True,
        eval_strategy="steps",
        eval_on_start=True,  # the untrained loss, so the eval curve starts where training did
        save_strategy="steps",
        logging_first_step=True,
        report_to="none",  # our own dvclive callback logs (see live_callback)
        use_cpu=not has_cuda,
        bf16=bf16,
        dataloader_num_workers=0,
        disable_tqdm=not os.isatty(2) or bool(os.environ.get("CI")),
    )


def answer_positions(labels):
    """The positions whose next token is scored in any row of the batch (``labels`` -100 elsewhere): the only
    positions whose logits a training step needs. The prompt's are skipped, and with them a fifth of the LM
    head's work (49k-word vocabulary) on a chat example."""
    return (labels[:, 1:] != -100).any(0).nonzero().squeeze(1)


def focal_loss(logits, targets, gamma: float):
    """Cross-entropy of ``logits`` against ``targets`` (the token each position predicts; -100: not scored), each
    token weighted by ``(1 - p) ** gamma`` (p: the model's probability of the right token, not differentiated) and
    normalised by the weights (Lin et al. 2017's focal loss): a step goes to the tokens the model does not yet get
    right."""
    import torch

    # One row per position: cross_entropy over a transposed (batch, vocab, position) view runs ~10% of a step slower.
    nll = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), reduction="none",
                                            ignore_index=-100).view_as(targets)
    weight = (1 - torch.exp(-nll.detach())).pow(gamma) * (targets != -100)
    return (weight * nll).sum() / weight.sum().clamp(min=1e-6)


def opening_loss(logits, targets):
    """The loss of each row's first scored token (the opening of its answer), averaged over the rows."""
    import torch

    rows = torch.arange(len(targets), device=targets.device)
    first = (targets != -100).int().argmax(1)
    return torch.nn.functional.cross_entropy(logits[rows, first].float(), targets[rows, first])


def _model_loss_trainer(sft_trainer_cls, focal_gamma: float = 0.0, per_token: bool = False,
                        logits_at_answers: bool = True, opening_weight: float = 0.0):
    """SFTTrainer with the model's own loss (``train.loss: model``) instead of TRL's fused LM head.

    TRL 1.15 always computes the loss through a tiled LM head that also yields per-token entropy and top-1
    accuracy (its ``compute_loss_func`` option still runs that head, in an extra forward pass); on CPU its
    tiles are re-projected in backward over SmolLM2's 49k vocabulary, which costs ~25% of a step. The
    model's own cross-entropy gives the same loss (labels are already -100 outside the answer). The count
    of real tokens TRL logs as ``num_tokens`` is kept here, in public methods only. With ``train.focal_gamma``
    a training step's loss is :func:`focal_loss`, and with ``train.loss_per: token`` it is scaled by the answer's
    length over the mean answer length, and with ``train.opening_weight`` the :func:`opening_loss` is added at that
    weight (validation keeps the plain cross-entropy). With ``logits_at_answers``
    (the PEFT backend) a training step computes the LM head only at :func:`answer_positions`: the same loss.
    """
    from transformers import Trainer

    class ModelLossSFTTrainer(sft_trainer_cls):
        trained_tokens = 0
        answer_logits_only = logits_at_answers
        frozen_layers = None  # a prodqa.frozen.FrozenLayers, set by build_trainer where they can be cached

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if model.training:
                mask = inputs.get("attention_mask")
                self.trained_tokens += int(mask.sum()) if mask is not None else inputs["input_ids"].numel()
            if self.frozen_layers is not None:  # the model starts above its frozen layers, from their cached output
                ids = inputs["input_ids"]
                inputs = {k: v for k, v in inputs.items() if k != "input_ids"}
                inputs["inputs_embeds"] = self.frozen_layers.embeds(ids, inputs["attention_mask"])
            if model.training:
                labels = inputs["labels"]
                at_answers = self.answer_logits_only
                if at_answers:  # logits at the scored positions only, each against its next token
                    keep = answer_positions(labels)
                    inputs = {**inputs, "logits_to_keep": keep, "shift_labels": labels[:, keep + 1]}
                if focal_gamma or per_token or opening_weight:
                    outputs = model(**{k: v for k, v in inputs.items() if k not in ("labels", "shift_labels")})
                    targets = inputs["shift_labels"] if at_answers else labels[:, 1:]
                    logits = outputs.logits if at_answers else outputs.logits[:, :-1]
                    loss = focal_loss(logits, targets, focal_gamma)
                    if per_token:  # the mean times the answer tokens over the training set's mean answer length
                        loss = loss * (targets != -100).sum() / (labels.shape[0] * self.mean_answer_tokens())
                    if opening_weight:
                        loss = loss + opening_weight * opening_loss(logits, targets)
                    return (loss, outputs) if return_outputs else loss
            return Trainer.compute_loss(self, model, inputs, return_outputs, num_items_in_batch)

        def mean_answer_tokens(self) -> float:
            if not hasattr(self, "_mean_answer_tokens"):
                labels = self.train_dataset["labels"]  # TRL's: -100 outside the answer
                self._mean_answer_tokens = sum(sum(t != -100 for t in row) for row in labels) / max(len(labels), 1)
            return self._mean_answer_tokens

        def log(self, logs, start_time=None):
            if self.model.training:
                logs["num_tokens"] = float(self.trained_tokens)
            super().log(logs, start_time)

    return ModelLossSFTTrainer


def _loraplus_trainer(trainer_cls, ratio: float):
    """The trainer with PEFT's LoRA+ optimizer: the B matrices learn at ``ratio`` x the learning rate, A at it
    (Hayou et al. 2024); the optimizer class and its other arguments are the ``optim`` the params name."""

    class LoraPlusTrainer(trainer_cls):
        def create_optimizer(self, model=None):
            if self.optimizer is None:
                from peft.optimizers import create_loraplus_optimizer

                optimizer_cls, kwargs = self.get_optimizer_cls_and_kwargs(self.args, self.model)
                kwargs = {k: v for k, v in kwargs.items() if k != "lr"}
                self.optimizer = create_loraplus_optimizer(self.model, optimizer_cls, lr=self.args.learning_rate,
                                                           loraplus_lr_ratio=ratio, weight_decay=self.args.weight_decay,
                                                           **kwargs)
            return self.optimizer

    return LoraPlusTrainer


def build_trainer(paths: Paths, p: Train, template_p: Template, callbacks=()):
    """The SFTTrainer for these params, on the chosen backend; returns (trainer, tokenizer, backend)."""
    has_cuda = cuda_available()
    backend = resolve_backend(p, has_cuda)
    if backend == "unsloth":
        import unsloth  # noqa: F401  (must come before trl/transformers to patch them)

    import torch
    from datasets import Dataset
    from trl import SFTTrainer

    if p.threads or (launched() and not has_cuda):
        torch.set_num_threads(cpu_threads(p.threads, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))
    data = {split: Dataset.from_list(read_jsonl(paths.data / f"{split}.jsonl")) for split in ("train", "validation")}
    if backend == "unsloth":
        model, tokenizer, lora = _load_unsloth(str(paths.base), p, template_p.max_seq_len)
    else:
        model, tokenizer, lora = _load_peft(str(paths.base), p, has_cuda)
    bf16 = (next(model.parameters()).dtype == torch.bfloat16
            or (p.method == "full" and precision.resolve(p.precision, has_cuda) == "bf16"))
    trainer_cls = SFTTrainer if p.loss == "trl" else _model_loss_trainer(SFTTrainer, p.focal_gamma, p.loss_per == "token",
                                                                         opening_weight=p.opening_weight,
                                                                         logits_at_answers=backend == "peft")
    if p.loraplus_lr_ratio and p.method == "lora":
        trainer_cls = _loraplus_trainer(trainer_cls, p.loraplus_lr_ratio)
    compile_model = compiles(p.torch_compile, planned_steps(p, len(data["train"]), has_cuda), has_cuda, bf16)
    trainer = trainer_cls(
        model=model, args=sft_config(p, template_p.max_seq_len, str(paths.checkpoints), has_cuda, bf16, compile_model),
        train_dataset=data["train"], eval_dataset=data["validation"], processing_class=tokenizer,
        peft_config=lora, callbacks=list(callbacks))
    if why_not := frozen_cache_refusal(p, backend, trainer.model):
        print(f"train: the frozen layers are recomputed every step: {why_not}")
    else:
        from . import frozen

        trainer.frozen_layers = frozen.FrozenLayers(trainer.model, p.lora_first_layer, p.frozen_cache_mib << 20)
    if compile_model and not p.packing:
        # Unpacked rows come in several padded lengths: one graph with dynamic shapes from the first step, where
        # torch's default compiles a static graph for the first length and then the dynamic one (80 s + 105 s).
        trainer.accelerator.state.dynamo_plugin.dynamic = True
    return trainer, tokenizer, backend


def frozen_cache_refusal(p: Train, backend: str, model) -> str | None:
    """Why this run cannot cache the output of the layers below ``train.lora_first_layer`` (prodqa/frozen.py),
    or None when it can."""
    if not p.frozen_cache_mib:
        return "train.frozen_cache_mib is 0"
    if backend != "peft" or p.method != "lora" or p.loss != "model":
        return "only the PEFT backend's LoRA with train.loss 'model' caches them"
    if p.packing or p.gradient_checkpointing:
        return "train.packing (rows of several examples) and train.gradient_checkpointing are not cached"
    from . import frozen

    return frozen.usable(model, p.lora_first_layer)


def save_adapter(model, out) -> None:
    """PEFT's ``save_pretrained``, with the config's sets (``target_modules``) written sorted. PEFT writes a set in
    hash order, which changes from one process to the next, and with it DVC's hash of an adapter whose weights
    are the same."""
    for config in model.peft_config.values():
        for key, value in vars(config).items():
            if isinstance(value, set):
                setattr(config, key, sorted(value))
    model.save_pretrained(out)


def merge_fp32(base_dir: str, adapter_dir: str):
    """The base model with the adapter merged in, in fp32.

    Merging into bf16 base weights would round away every LoRA delta smaller than 1/256 of its weight,
    so the adapter goes onto a fresh fp32 copy of the base, whatever precision it was trained in.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32, use_safetensors=True)
    return PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()


def is_main_process() -> bool:
    """Rank 0 of a distributed launch, or a plain single process: the one that writes outputs."""
    return int(os.environ.get("RANK", "0")) == 0


def cpu_threads(requested: int, workers: int) -> int:
    """torch's CPU threads in one training process: ``train.threads``, else the cores this process may run on
    (its affinity, not the machine's count: a container or ``taskset`` may give it fewer) shared between the
    workers instead of oversubscribing them."""
    return requested or max(1, len(os.sched_getaffinity(0)) // workers)


def launched() -> bool:
    return "LOCAL_RANK" in os.environ  # set by accelerate launch / torchrun in every worker


def launch_command(num_processes: int, stage_args: list[str]) -> list[str]:
    """`accelerate launch` of the train stage on ``num_processes`` processes (DDP; gloo on CPU, NCCL on GPU)."""
    import sys

    # --multi_gpu selects accelerate's torch.distributed launcher; on a CPU-only machine the workers
    # run DDP over gloo (TrainingArguments(use_cpu=True)). For several machines or DeepSpeed/FSDP, pass an
    # accelerate config instead: see README, "Multi-process training".
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(num_processes),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "stages.train",
            *stage_args]


def checkpoints(paths: Paths, p: Train, template_p: Template) -> Checkpoints:
    """The checkpoint folder, fingerprinted by every train param, max_seq_len and the input files."""
    return Checkpoints(paths.checkpoints, fingerprint(
        {"train": p.model_dump(), "max_seq_len": template_p.max_seq_len},
        [paths.data / "train.jsonl", paths.data / "validation.jsonl", paths.base / "model.safetensors"]))


def prepare(paths: Paths, p: Train, template_p: Template) -> ResumePoint | None:
    """Run once per stage, before any worker: check the params against this machine, then reset or keep the
    checkpoint folder; return where to resume."""
    resolve_backend(p, cuda_available())  # impossible params fail before any checkpoint is touched
    return checkpoints(paths, p, template_p).prepare()


def train(paths: Paths, p: Train, template_p: Template, *, extra_callbacks: tuple = ()) -> dict:
    """Fine-tune; write the adapter and the merged model atomically; return a summary.

    Runs the same way in one process or in each worker of a distributed launch; only rank 0 logs and
    writes outputs.
    """
    from dvclive import Live

    if launched():  # a DDP worker: the stage prepared the folder once before starting the workers
        resume = checkpoints(paths, p, template_p).resume_point()
    else:
        resume = prepare(paths, p, template_p)
    main = is_main_process()
    live = Live(str(paths.metrics), resume=resume is not None, dvcyaml=None, save_dvc_exp=False, report=None) if main else None
    callbacks = [live_callback(live)] if main else []
    trainer, tokenizer, backend = build_trainer(paths, p, template_p, [*callbacks, *extra_callbacks])
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=str(resume.path) if resume else None)
    elapsed = time.perf_counter() - start
    evals = [log for log in trainer.state.log_history if "eval_loss" in log]
    if not evals or evals[-1]["step"] != trainer.state.global_step:  # the last step was not an eval step
        evals.append({**trainer.evaluate(), "step": trainer.state.global_step})
    final_eval = evals[-1]
    if getattr(trainer, "frozen_layers", None) is not None:  # the whole model again, as it is saved
        trainer.frozen_layers.restore()
        trainer.frozen_layers = None
    summary = {"backend": backend, "compiled": trainer.args.torch_compile, "steps": trainer.state.global_step,
               "examples": len(trainer.train_dataset),  # TRL drops those truncated to no answer token
               "train_loss": result.training_loss, "eval_loss": final_eval["eval_loss"], "runtime_s": elapsed,
               "resumed_from": str(resume.path) if resume else None,
               "processes": trainer.args.world_size}
    if not main:
        return summary
    live.summary["train/runtime_s"] = round(elapsed, 1)
    live.summary["train/resumed_from_step"] = resume.step if resume else 0
    live.summary["train/processes"] = trainer.args.world_size
    live.summary["train/examples_per_step"] = examples_per_step(p, cuda_available())  # auto resolved, for exp show
    live.summary["train/peak_lr"] = trainer.args.learning_rate
    if hasattr(trainer, "trained_tokens") and not resume and trainer.args.world_size == 1:
        live.summary["train/trained_tokens"] = trainer.trained_tokens  # prompts and answers, no padding: the run's cost
    live.end()

    with atomic_path(paths.adapter, is_dir=True) as tmp:
        if p.method == "full":  # no adapter: every weight was trained, and `merged` is the model
            write_json(tmp / FULL_NOTE, {"method": "full", "model": str(paths.merged)})
        else:
            save_adapter(trainer.model, tmp)
            tokenizer.save_pretrained(tmp)
    with atomic_path(paths.merged, is_dir=True) as tmp:
        if p.method == "full":
            trainer.model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
        elif backend == "unsloth":
            trainer.model.save_pretrained_merged(str(tmp), tokenizer, save_method="merged_16bit")
        else:
            merge_fp32(str(paths.base), str(paths.adapter)).save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
    checkpoints(paths, p, template_p).finish()
    return summary
