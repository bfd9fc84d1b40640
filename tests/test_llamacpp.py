"""llama.cpp runs in a child process: a crash is an error that names the file, and the build is portable."""

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from prodqa import llamacpp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import llama_cpp_wheel  # noqa: E402

needs_llama = pytest.mark.usefixtures("llama_cpp_installed")  # a skip, or under CI a failure


def test_a_crash_in_llama_cpp_is_an_error_naming_the_file_and_the_fix(tmp_path, monkeypatch):
    crasher = tmp_path / "python"
    crasher.write_text("#!/bin/sh\nkill -ILL $$\n")  # the child dies as an AMX kernel did: SIGILL
    crasher.chmod(0o755)
    monkeypatch.setattr(llamacpp.sys, "executable", str(crasher))
    with pytest.raises(llamacpp.LlamaCppError, match=r"m\.gguf: llama\.cpp crashed with SIGILL \(illegal instruction"):
        llamacpp.run(tmp_path / "m.gguf", greedy=[[1, 2, 3]], n_tokens=2)


def test_a_missing_file_is_an_error_from_the_child(tmp_path):
    with pytest.raises(llamacpp.LlamaCppError, match="no such GGUF file"):
        llamacpp.run(tmp_path / "absent.gguf", greedy=[[1]], n_tokens=1)


@needs_llama
def test_selfcheck_runs_q8_0_and_f16_with_a_long_prompt():
    """What `make setup` runs last: a 40-token prompt (the AMX kernels crashed from 8) through q8_0 and f16."""
    lines = llamacpp.selfcheck()
    assert [line.split(":")[1].split(",")[0].strip() for line in lines] == ["q8_0 GGUF", "f16 GGUF"]
    assert all(f"{llamacpp.SELFCHECK_PROMPT_TOKENS}-token prompt, 8 tokens generated" in line for line in lines)


@needs_llama
def test_greedy_tokens_and_argmax_agree_with_each_other(tmp_path):
    from prodqa.export_gguf import write

    model_dir = llamacpp.tiny_model(tmp_path / "model")
    write(model_dir, tmp_path / "m.gguf", "f32")
    prompt = list(range(40, 80))
    res = llamacpp.run(tmp_path / "m.gguf", greedy=[prompt], n_tokens=5, score=[prompt])
    assert len(res.greedy[0]) == 5 and len(res.argmax[0]) == len(prompt)
    assert res.greedy[0][0] == res.argmax[0][-1]  # the first greedy token is the argmax after the prompt


def test_build_flags_are_portable_whatever_the_cpu():
    amx_cpu = {"avx2", "fma", "f16c", "bmi2", "avx512f", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16"}
    flags = llama_cpp_wheel.build_flags(amx_cpu)
    assert "-DGGML_NATIVE=OFF" in flags and "-DGGML_AVX2=ON" in flags
    assert {"-DGGML_AMX_TILE=OFF", "-DGGML_AMX_INT8=OFF", "-DGGML_AMX_BF16=OFF", "-DGGML_AVX512=OFF"} <= set(flags)
    assert llama_cpp_wheel.build_flags(amx_cpu) == llama_cpp_wheel.build_flags({"avx2", "fma", "f16c", "bmi2"})
    old = llama_cpp_wheel.build_flags({"sse4_2"})  # a CPU without AVX2 gets none of the v3 extensions
    assert "-DGGML_AVX2=OFF" in old and "-DGGML_FMA=OFF" in old


def test_wheelhouse_is_keyed_by_version_and_flags(monkeypatch, tmp_path):
    monkeypatch.setenv("PRODQA_WHEELHOUSE", str(tmp_path))
    a = llama_cpp_wheel.wheel_dir("0.3.36", llama_cpp_wheel.build_flags({"avx2", "fma", "f16c", "bmi2"}))
    b = llama_cpp_wheel.wheel_dir("0.3.36", llama_cpp_wheel.build_flags(set()))
    c = llama_cpp_wheel.wheel_dir("0.3.37", llama_cpp_wheel.build_flags(set()))
    assert len({a, b, c}) == 3 and all(d.parent == tmp_path for d in (a, b, c))


@needs_llama
@pytest.mark.skipif(shutil.which("objdump") is None, reason="objdump not installed")
def test_installed_ggml_cpu_library_has_no_amx_instructions():
    lib_dir = Path(importlib.util.find_spec("llama_cpp").origin).parent / "lib"
    libs = sorted(lib_dir.glob("libggml-cpu*.so*"))
    assert libs, f"no libggml-cpu in {lib_dir}"
    asm = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(libs[0])], capture_output=True, text=True).stdout
    assert "vfmadd" in asm or "fma" in asm.lower()  # the disassembly is real (FMA kernels are there)
    assert llama_cpp_wheel.AMX_MNEMONICS.findall(asm) == []


def test_amx_pattern_matches_what_objdump_prints():
    assert llama_cpp_wheel.AMX_MNEMONICS.findall("  4f: tilezero %tmm4\n  53: tdpbssd %tmm2,%tmm1,%tmm0") == ["tilezero", "tdpbssd"]
    assert not re.search(llama_cpp_wheel.AMX_MNEMONICS, "vpdpbusd %zmm1,%zmm2,%zmm3")


@pytest.mark.parametrize("ci, outcome", [("1", pytest.fail.Exception), ("", pytest.skip.Exception)])
def test_llama_cpp_tests_fail_under_ci_when_it_is_missing(monkeypatch, ci, outcome):
    """make setup installs llama-cpp-python, so under CI its absence is a broken set-up, not a reason to skip."""
    from .conftest import needs_llama_cpp

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llama_cpp" else real(name, *a))
    monkeypatch.setenv("CI", ci)
    try:
        needs_llama_cpp()
    except BaseException as raised:  # pytest's skip and fail are BaseExceptions: catch either, then compare
        assert type(raised) is outcome and "llama-cpp-python" in str(raised)
    else:
        raise AssertionError("needs_llama_cpp() neither failed nor skipped without llama-cpp-python")
