#!/usr/bin/env bash
# One-call runbook for a lent GPU machine (issue 15): Unsloth vs PEFT, 16-bit LoRA vs 4-bit QLoRA, on the
# embedded SmolLM2-135M and on a random-weight 1B-class Llama, through the train stage's own code.
#
# Here (with network), once:   bash benchmarks/gpu/run.sh --prepare      # wheels into .whl/ (git-ignored)
# There (the device tool):     run(command="bash benchmarks/gpu/run.sh", carry=[".whl", ".venv-models"])
# Result: $OUT/gpu_train.json (and benchmarks/results/gpu_train.json when run here on a CUDA machine).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "${1:-}" = "--prepare" ]; then
  # The GPU image has torch 2.11 + CUDA, transformers 5.17 and peft; the rest travels (64 MiB per call).
  rm -rf .whl && mkdir -p .whl
  dl() { python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
           --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
           --platform any -d .whl "$@"; }
  dl unsloth==2026.10.5 unsloth_zoo==2026.10.7 trl==1.15.0 datasets==4.8.5 bitsandbytes==0.50.2 \
     dvclive==3.49.1 pydantic==2.14.3 pydantic-core ruamel.yaml==0.19.1 tyro hf_transfer cut_cross_entropy msgspec
  # bitsandbytes ships one library per CUDA version: keep the CUDA 13 one only.
  for w in .whl/bitsandbytes-*.whl; do
    zip -q -d "$w" 'bitsandbytes/libbitsandbytes_cuda1[0-2]*' 'bitsandbytes/libbitsandbytes_rocm*' || true
  done
  # The embedded base model, materialised once here (the GPU machine cannot reach the registry).
  [ -d .venv-models/base ] || .venv/bin/python -m stages.base_model --out .venv-models/base --metrics /tmp/bm.json
  du -shc .whl .venv-models | tail -1
  exit 0
fi
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -m benchmarks.gpu.train_gpu --base .venv-models/base --result "${OUT:-benchmarks/results}/gpu_train.json"
