"""Typed, strict schema of ``params.yaml``: one pydantic model per section, one section per stage.

A stage calls :func:`load` with a section's class (``load(Train) -> Train``) before doing any work. Unknown keys, missing keys,
wrong types and impossible values raise :class:`ParamsError` with the dotted key (``train.learning_rate``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Literal, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, model_validator

PARAMS_FILE = "params.yaml"
Precision = Literal["auto", "fp32", "bf16"]  # resolved to a dtype by prodqa.precision
# Every GGUF type the export writes, and who makes it: gguf-py here (its LlamaFileType member), or
# llama.cpp's quantizer from the f16 file (its llama_ftype constant in llama-cpp-python). Names, not
# numbers, so one entry cannot silently stand for another type; tests/test_export_gguf.py resolves each
# (prodqa/gguf_writer.py writes or quantizes by this table).
GGUF_TYPES: dict[str, tuple[str, str]] = {
    "f32": ("gguf-py", "ALL_F32"),
    "f16": ("gguf-py", "MOSTLY_F16"),
    "bf16": ("gguf-py", "MOSTLY_BF16"),
    "q8_0": ("gguf-py", "MOSTLY_Q8_0"),
    "q4_k_m": ("llama.cpp", "LLAMA_FTYPE_MOSTLY_Q4_K_M"),
    "q5_k_m": ("llama.cpp", "LLAMA_FTYPE_MOSTLY_Q5_K_M"),
    "q6_k": ("llama.cpp", "LLAMA_FTYPE_MOSTLY_Q6_K"),
    "q4_0": ("llama.cpp", "LLAMA_FTYPE_MOSTLY_Q4_0"),
    "q5_0": ("llama.cpp", "LLAMA_FTYPE_MOSTLY_Q5_0"),
}


def from_f16(ftype: str) -> bool:
    """Whether ``ftype`` is made from the f16 file by llama.cpp (else gguf-py writes it directly)."""
    return GGUF_TYPES[ftype][0] == "llama.cpp"


GgufType = Literal[tuple(GGUF_TYPES)]


class ParamsError(Exception):
    """params.yaml does not fit the schema; the message names the key."""


class Section(BaseModel):
    # strict: a string "3" is not an int; extra="forbid": a typo'd key is an error, not ignored.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Data(Section):
    raw: str = Field(description="Input: the distributed zip, a trn.json.gz, or a plain trn.json.")


class Synth(Section):
    n_products: int = Field(gt=0, description="How many trn.json lines the generator writes.")
    seed: int = Field(ge=0)


class Unpack(Section):
    keep_targets: bool = Field(description="Keep the target_ind/target_rel label lists.")
    block_bytes: int = Field(ge=65536, description="Bytes of JSON lines parsed at a time (bounds memory).")
    max_reported_errors: int = Field(ge=0, description="Bad lines quoted (with line numbers) in metrics.")


class Clean(Section):
    html_unescape: bool
    strip_html_tags: bool
    remove_urls: bool
    remove_emails: bool
    remove_boilerplate: bool
    boilerplate_patterns: list[str] = Field(description="RE2 regexes removed from descriptions.")
    normalize_whitespace: bool
    min_title_chars: int = Field(ge=0)
    min_chars: int = Field(ge=0, description="Shortest description kept, in characters.")
    max_chars: int = Field(gt=0, description="Longest description kept, in characters.")
    drop_title_equals_content: bool
    drop_duplicates: bool = Field(description="Drop exact (title, content) duplicates.")
    drop_repeated_titles: bool = Field(description="Keep one product per normalised title.")
    batch_rows: int = Field(gt=0, description="Rows cleaned at a time (bounds memory).")

    @model_validator(mode="after")
    def _min_below_max(self) -> "Clean":
        if self.min_chars > self.max_chars:
            raise ValueError(f"min_chars ({self.min_chars}) > max_chars ({self.max_chars})")
        import pyarrow as pa
        import pyarrow.compute as pc

        for pattern in self.boilerplate_patterns:  # RE2 syntax, as the clean stage runs them
            try:
                pc.match_substring_regex(pa.array([""]), pattern)
            except pa.ArrowInvalid as err:
                raise ValueError(f"boilerplate_patterns: {pattern!r} is not a valid RE2 regex ({err})") from None
        return self


class Sample(Section):
    # Not `size`: DVC 3.67's run-cache drops keys named size/nfiles from a stage's hash (treeverse/dvc#10296).
    n_products: int = Field(gt=0, description="Products drawn from the cleaned catalog.")
    seed: int = Field(ge=0)
    length_buckets: list[int] = Field(min_length=1, description="Description-length bucket edges.")
    val_frac: float = Field(ge=0, lt=1)
    test_frac: float = Field(ge=0, lt=1)
    near_duplicate: float = Field(gt=0, le=1, description="Rows whose descriptions' word 3-shingles are at least this "
                                  "alike (Jaccard) share a split, like identical ones (1.0: identical only).")
    reading_products: int = Field(ge=0, description="Products outside the sample whose descriptions only teach "
                                  "reading (a question about each, its description in the prompt, never trained to recite).")

    @model_validator(mode="after")
    def _check(self) -> "Sample":
        if self.val_frac + self.test_frac >= 1:
            raise ValueError("val_frac + test_frac must be < 1 (nothing left to train on)")
        if self.length_buckets != sorted(set(self.length_buckets)) or self.length_buckets[0] < 0:
            raise ValueError("length_buckets must be strictly increasing, non-negative edges")
        return self


class Model(Section):
    base: str = Field(min_length=1, description="smollm2-135m-instruct, a model folder, a .gguf file or a Hub id.")


class Template(Section):
    format: Literal["chat", "alpaca", "plain"] = Field(
        description="chat: the model's own chat template; alpaca: the Alpaca text; plain: the question alone.")
    system_prompt: str = Field(description="System turn of every conversation (chat format; '': an empty turn, "
                               "so the model's chat template adds no system prompt of its own).")
    questions: list[str] = Field(min_length=1, description="Question phrasings; each holds {title}.")
    phrasings_per_product: int = Field(gt=0, description="Training examples per product, each another phrasing.")
    typed_share: float = Field(ge=0, le=1, description="Share of training examples whose question types the title as "
                               "people do (lower case, its first words, a typo), seeded per example; no extra tokens.")
    read_prompt: str = Field(description="System turn of a question answered from a description (the catalog's, or "
                             "the model's own recitation), before the product and its description.")
    qa_per_product: int = Field(ge=0, description="Questions about its description per trained product and epoch, "
                                "answered from it in a few words (prodqa.qa): the model learns to read.")
    qa_context_chars: int = Field(ge=0, description="A training question's description, cut to about this many "
                                  "characters around its answer (0: whole); fewer tokens an example.")
    max_seq_len: int = Field(ge=16, le=32768, description="Tokens per training sequence; longer ones are cut.")
    seed: int = Field(ge=0)

    @model_validator(mode="after")
    def _check(self) -> "Template":
        seen: dict[str, str] = {}
        for q in self.questions:
            if "{title}" not in q:
                raise ValueError(f"question {q!r} has no {{title}} placeholder")
            key = " ".join(q.casefold().split())  # the held-out phrasing must differ from every trained one
            if key in seen:
                raise ValueError(f"questions {seen[key]!r} and {q!r} are the same phrasing")
            seen[key] = q
        if self.phrasings_per_product >= len(self.questions):
            raise ValueError(f"phrasings_per_product ({self.phrasings_per_product}) must be < the number of questions "
                             f"({len(self.questions)}): one phrasing per product is held out for the seen evaluation")
        return self


class Train(Section):
    """Keys that TRL's ``SFTConfig`` also has (:func:`trl_keys`) go to it unchanged; the rest are ours."""

    backend: Literal["auto", "peft", "unsloth"] = Field(description="auto: Unsloth on CUDA when installed, else PEFT.")
    method: Literal["lora", "full"] = Field(description="lora: train LoRA adapters (lora_* keys) over frozen base "
                                            "weights; full: train every weight (fp32 master weights).")
    load_in_4bit: bool = Field(description="QLoRA through bitsandbytes (CUDA only).")
    precision: Precision = Field(description="Base weights and matmuls: auto = bf16 where the hardware has it.")
    learning_rate: float = Field(gt=0, lt=1, description="Peak learning rate (AdamW), reached after warmup_steps.")
    max_steps: int = Field(ge=-1, description="Optimizer steps; -1 trains for `num_train_epochs` instead.")
    num_train_epochs: float = Field(gt=0, description="Passes over the training examples.")
    per_device_train_batch_size: PositiveInt | Literal["auto"] = Field(
        description="Rows (examples, or packed rows) per step and device; auto: 1 on a CPU, "
                    "prodqa.train.CUDA_BATCH on a CUDA GPU.")
    lr_batch_scaling: Literal["none", "sqrt", "linear"] = Field(
        description="learning_rate is one example a step's; at B examples a step (batch x gradient accumulation x "
                    "processes) the run's is learning_rate x sqrt(B), x B, or unchanged (none).")
    per_device_eval_batch_size: int = Field(gt=0, description="Rows per validation batch.")
    gradient_accumulation_steps: int = Field(gt=0, description="Batches summed into one optimizer step.")
    warmup_steps: int = Field(ge=0, description="Steps of linear warmup from 0 to learning_rate.")
    lr_scheduler_type: Literal["linear", "cosine", "constant", "constant_with_warmup"] = Field(
        description="Learning-rate decay after warmup.")
    optim: Literal["adamw_torch", "adamw_torch_fused", "adamw_8bit", "sgd", "adafactor"] = Field(
        description="Optimizer, by its transformers name.")
    weight_decay: float = Field(ge=0, description="Decoupled weight decay of AdamW.")
    lora_r: int = Field(gt=0, description="LoRA rank: the adapters' capacity.")
    lora_alpha: int = Field(gt=0, description="LoRA scale (the update is scaled by lora_alpha / lora_r).")
    lora_dropout: float = Field(ge=0, lt=1, description="Dropout on the LoRA input.")
    loraplus_lr_ratio: float = Field(ge=0, description="LoRA+ (PEFT's create_loraplus_optimizer): the B matrices "
                                     "learn this many times faster than learning_rate; 0: plain LoRA.")
    target_modules: list[str] = Field(min_length=1, description="Linear layers that get LoRA adapters.")
    lora_first_layer: int = Field(ge=0, description="LoRA adapters on the decoder layers from this index up (0: "
                                  "all); the backward pass stops at it, so higher is less compute per token.")
    frozen_cache_mib: int = Field(ge=0, description="The output of the frozen layers below lora_first_layer is "
                                  "computed once per training example and kept, up to this many MiB, for its later "
                                  "exposures (prodqa/frozen.py); 0: recomputed every step.")
    packing: bool = Field(description="Pack several examples per sequence (no padding).")
    torch_compile: bool | Literal["auto"] = Field(
        description="torch.compile the model: a one-off compile (≈ 2.5 min on 2 cores), then 1.4-1.9x faster bf16 "
                    "steps on a CPU; auto: on for bf16 CPU runs of at least prodqa.train.COMPILE_MIN_STEPS steps.")
    attention: Literal["auto", "sdpa", "eager"] = Field(
        description="transformers' attention kernel while training (PEFT backend): eager (matrix products, which a "
                    "compiled CPU run fuses: 1.1x faster than its flash kernel there, docs/cost.md), sdpa, or auto: "
                    "eager on a CPU, sdpa on a CUDA GPU.")
    loss: Literal["model", "trl"] = Field(description="model: the model's own cross-entropy (fast on CPU); trl: "
                                          "TRL's fused LM head, which also logs per-token entropy and accuracy "
                                          "(needs Triton, ~25% slower on CPU).")
    max_grad_norm: float = Field(ge=0, description="Gradients clipped to this norm before each step; 0: not clipped.")
    loss_per: Literal["example", "token"] = Field(description="example: a step's loss is its answer tokens' mean (each "
                                                  "example moves the weights alike); token: their sum over the mean "
                                                  "answer length (a long description takes a larger step).")
    focal_gamma: float = Field(ge=0, description="Weight each answer token's loss by (1 - p) ** focal_gamma, p the "
                               "probability the model gives the right token (focal loss, normalised by the "
                               "weights): the steps go to the tokens not yet right; 0: plain cross-entropy.")
    opening_weight: float = Field(ge=0, description="The loss of each answer's first token is added at this weight: "
                                  "the opening decides which description greedy decoding recalls (many open alike, "
                                  "with a review quote); 0: not added.")
    gradient_checkpointing: bool = Field(description="Trade compute for memory (long sequences, big models).")
    seed: int = Field(ge=0, description="Seed of initialisation, shuffling and dropout.")
    eval_steps: int = Field(gt=0, description="Steps between validation losses.")
    save_steps: int = Field(gt=0, description="Steps between checkpoints (resume points).")
    logging_steps: int = Field(gt=0, description="Steps between logged losses.")
    save_total_limit: int = Field(gt=0, description="Checkpoints kept for resuming.")
    threads: int = Field(ge=0, description="CPU threads for torch; 0 = all cores.")
    num_processes: int = Field(gt=0, description="> 1: DDP under `accelerate launch` (gloo on CPU, NCCL on GPU).")

    @model_validator(mode="after")
    def _check(self) -> "Train":
        if self.max_steps == 0:
            raise ValueError("max_steps must be > 0, or -1 to train for `num_train_epochs`")
        if self.method == "full" and (self.load_in_4bit or self.backend == "unsloth"):
            raise ValueError("method 'full' trains every weight in 16/32 bits with PEFT + TRL: "
                             "it takes neither load_in_4bit nor backend 'unsloth'")
        if self.loraplus_lr_ratio and self.method == "full":
            raise ValueError("loraplus_lr_ratio sets the LoRA B matrices' learning rate: method 'full' has none "
                             "(set loraplus_lr_ratio: 0, and a full fine-tune's learning_rate)")
        if (self.focal_gamma or self.opening_weight or self.loss_per != "example") and self.loss != "model":
            raise ValueError("focal_gamma, opening_weight and loss_per 'token' weigh the model's own cross-entropy: "
                             "they need loss 'model' (or set focal_gamma: 0, opening_weight: 0, loss_per: example)")
        return self


def trl_keys() -> set[str]:
    """The ``train`` keys that TRL's ``SFTConfig`` has too: they are passed to it unchanged."""
    import dataclasses

    from trl import SFTConfig

    return set(Train.model_fields) & {f.name for f in dataclasses.fields(SFTConfig)}


class Evaluate(Section):
    seen_examples: int = Field(ge=0, description="Trained products asked a phrasing they never had in training.")
    unseen_examples: int = Field(ge=0, description="Test products (never trained on) asked.")
    typed_examples: int = Field(ge=0, description="Trained products asked each way people type a name (lower case, "
                                "part of it, a typo, a free phrasing): stage evaluate_typed, fine-tuned model only.")
    qa_examples: int = Field(ge=0, description="Products of each set asked questions about them (a fact, a yes/no "
                             "and an unanswerable one), read as ask reads them (prodqa.evaluate_qa).")
    batch_size: int = Field(gt=0, description="Questions generated together.")


class Generate(Section):
    """Decoding settings, shared by evaluate, the Ollama Modelfile, ``ask`` and ``serve``."""

    precision: Precision = Field(description="transformers generation dtype: auto = bf16 where the hardware has it.")
    max_new_tokens: int = Field(gt=0, le=4096)
    temperature: float = Field(ge=0, description="0 = greedy decoding.")
    top_p: float = Field(gt=0, le=1)
    repetition_penalty: float = Field(ge=1)
    min_confidence: float = Field(ge=0, le=1, description="Answers whose confidence (geometric mean probability of "
                                  "their tokens) is below this are not given as recalled: ask and serve fall back to "
                                  "the catalog, or say they do not know.")
    stop_loops: bool = Field(description="End an answer once it is caught in a loop: its last tokens four or more "
                             "copies of one block (prodqa.generate.looping), which greedy decoding rarely leaves.")


class Report(Section):
    examples: int = Field(ge=0, description="Products per set shown side by side in report.md.")


class ExportGguf(Section):
    types: list[GgufType] = Field(min_length=1, description="f16, q8_0, bf16, f32; k-quants (q4_k_m…) need llama-cpp-python.")
    verify: bool = Field(description="Check each file in llama.cpp against the HF model.")
    verify_questions: int = Field(gt=0)
    verify_tokens: int = Field(gt=0, description="Greedy tokens compared per question.")
    min_top1_agreement: float = Field(ge=0, le=1, description="Quantized files whose next-token agreement with the HF model, where "
                                    "it has a clear choice (top two >= NEAR_TIE logits apart), is below this fail the stage.")

    @model_validator(mode="after")
    def _check(self) -> "ExportGguf":
        made_by_llama_cpp = [t for t in self.types if from_f16(t)]
        if made_by_llama_cpp and "f16" not in self.types:
            raise ValueError(f"types: {made_by_llama_cpp[0]} is quantized from the f16 file by llama.cpp; "
                             "add f16 to the list")
        return self


SECTIONS: dict[str, type[Section]] = {
    "data": Data,
    "synth": Synth,
    "unpack": Unpack,
    "clean": Clean,
    "sample": Sample,
    "model": Model,
    "template": Template,
    "train": Train,
    "evaluate": Evaluate,
    "generate": Generate,
    "report": Report,
    "export_gguf": ExportGguf,
}


def _describe(err: ValidationError, section: str) -> str:
    lines = []
    for e in err.errors():
        key = ".".join([section, *map(str, e["loc"])])
        if e["type"] == "extra_forbidden":
            lines.append(f"{key}: unknown key")
        elif e["type"] == "missing":
            lines.append(f"{key}: missing key")
        else:
            got = f" (got {e['input']!r})" if not isinstance(e["input"], dict) else ""
            lines.append(f"{key}: {e['msg']}{got}")
    return "; ".join(lines)


def parse(section: str, raw: object) -> Section:
    """Validate one section's raw mapping; raise ParamsError naming the offending key."""
    if section not in SECTIONS:
        raise ParamsError(f"unknown params section {section!r}")
    if not isinstance(raw, dict):
        raise ParamsError(f"{PARAMS_FILE}: section {section!r} is missing or not a mapping")
    try:
        return SECTIONS[section].model_validate(raw)
    except ValidationError as err:
        raise ParamsError(f"{PARAMS_FILE}: {_describe(err, section)}") from None


def read_yaml(path: str | Path = PARAMS_FILE) -> dict:
    from ruamel.yaml import YAML

    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: no such file")
    doc = YAML(typ="safe").load(path.read_text())
    if not isinstance(doc, dict):
        raise ParamsError(f"{path}: not a mapping of sections")
    return doc


TRACE_ENV = "PRODQA_PARAMS_TRACE"


class _Traced:
    """A loaded section that appends each key read to the file named by $PRODQA_PARAMS_TRACE.

    The pipeline test runs every stage so, and checks that each stage declares in dvc.yaml exactly the keys
    it read: a whole-object read (``model_dump``, ``model_copy``) counts as reading every key.
    """

    def __init__(self, name: str, section: Section, trace: str):
        object.__setattr__(self, "_s", (name, section, trace))

    def __getattr__(self, key: str):
        name, section, trace = object.__getattribute__(self, "_s")
        fields = type(section).model_fields
        read = [key] if key in fields else list(fields) if key.startswith("model_") else []
        if read:
            with open(trace, "a") as f:
                f.write("".join(f"{Path(sys.argv[0]).stem} {name}.{k}\n" for k in read))
        return getattr(section, key)


S = TypeVar("S", bound=Section)


def load(section: type[S], path: str | Path = PARAMS_FILE) -> S:
    """Load and validate one section of params.yaml: ``load(Train)`` is the ``train`` section, as a ``Train``."""
    name = next(k for k, v in SECTIONS.items() if v is section)
    loaded = parse(name, read_yaml(path).get(name))
    trace = os.environ.get(TRACE_ENV)
    return cast(S, _Traced(name, loaded, trace)) if trace else cast(S, loaded)
