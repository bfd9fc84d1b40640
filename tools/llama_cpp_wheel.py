"""Build (once) and install a llama-cpp-python wheel that runs on any x86-64 CPU of its level.

    python3 tools/llama_cpp_wheel.py --python .venv/bin/python     # what `make setup` runs

Why not `pip install llama-cpp-python`: there is no wheel on the registry, and pip's source build uses
`-march=native`. On a CPU with AMX that compiles llama.cpp's AMX int8 kernels, which die with SIGILL on
q8_0 prompts of 8+ tokens; and pip caches the built wheel under a key that ignores CMAKE_ARGS, so a wheel
built elsewhere with other flags is reused without a word.

So this script builds with GGML_NATIVE off and an explicit, portable instruction set (AVX2/FMA/F16C/BMI2
where the CPU has them, no AVX-512, no AMX), without pip's cache, into a wheelhouse folder whose name is
the version plus a hash of the flags. A wheel there is reused only by a build with the same flags.
After building it checks that libggml-cpu holds no AMX instruction (objdump), then installs the wheel.
The wheelhouse is $PRODQA_WHEELHOUSE, or ~/.cache/prodqa/wheels.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENT_FILE = ROOT / "requirements-llama.txt"
# Built with the wheel regardless of the CPU: no -march=native, no AVX-512, no AMX; no multimodal library.
COMMON_FLAGS = ["-DGGML_NATIVE=OFF", "-DGGML_AVX512=OFF", "-DGGML_AVX512_VBMI=OFF", "-DGGML_AVX512_VNNI=OFF",
                "-DGGML_AVX512_BF16=OFF", "-DGGML_AMX_TILE=OFF", "-DGGML_AMX_INT8=OFF", "-DGGML_AMX_BF16=OFF",
                "-DLLAVA_BUILD=OFF"]
# x86-64-v3 (Haswell, 2013, and every later x86-64 server CPU); without it, SSE4.2 only.
V3 = {"avx2": "GGML_AVX2", "fma": "GGML_FMA", "f16c": "GGML_F16C", "bmi2": "GGML_BMI2"}
AMX_MNEMONICS = re.compile(r"\b(tilezero|tileloadd|tileloaddt1|tilestored|tdpbssd|tdpbsud|tdpbusd|tdpbuud|tdpbf16ps|"
                           r"tdpfp16ps|ldtilecfg|sttilecfg|tilerelease)\b")


def pinned_version() -> str:
    for line in REQUIREMENT_FILE.read_text().splitlines():
        m = re.match(r"\s*llama-cpp-python==([\w.]+)", line)
        if m:
            return m.group(1)
    sys.exit(f"error: {REQUIREMENT_FILE.name}: no llama-cpp-python==VERSION line")


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    return set(line.split(":", 1)[-1].split())


def build_flags(cpu: set[str]) -> list[str]:
    """The CMake flags for this CPU's level: v3 if it has all of AVX2/FMA/F16C/BMI2, else none of them."""
    level = "ON" if all(f in cpu for f in V3) else "OFF"
    return [*COMMON_FLAGS, "-DGGML_AVX=" + level, *(f"-D{opt}={level}" for opt in V3.values())]


def wheel_dir(version: str, flags: list[str]) -> Path:
    base = Path(os.environ.get("PRODQA_WHEELHOUSE") or Path.home() / ".cache" / "prodqa" / "wheels")
    key = hashlib.sha256(json.dumps([version, sorted(flags)]).encode()).hexdigest()[:12]
    return base / f"llama-cpp-python-{version}-{key}"


def amx_instructions(wheel: Path) -> int:
    """AMX instructions in the wheel's ggml CPU library (disassembled with objdump)."""
    if not shutil.which("objdump"):
        print("warning: objdump not found; cannot check the build for AMX instructions", file=sys.stderr)
        return 0
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(wheel) as zf:
        libs = [n for n in zf.namelist() if re.search(r"libggml-cpu[^/]*\.so", n)]
        if not libs:
            sys.exit(f"error: {wheel.name}: no libggml-cpu library inside")
        count = 0
        for name in libs:
            path = zf.extract(name, tmp)
            asm = subprocess.run(["objdump", "-d", "--no-show-raw-insn", path], capture_output=True, text=True).stdout
            count += len(AMX_MNEMONICS.findall(asm))
        return count


def build(python: str, version: str, flags: list[str], out: Path) -> Path:
    tmp_out = Path(tempfile.mkdtemp(prefix=out.name + ".", dir=out.parent))
    env = {**os.environ, "CMAKE_ARGS": " ".join(flags), "CMAKE_BUILD_PARALLEL_LEVEL": str(os.cpu_count() or 1)}
    print(f"building llama-cpp-python {version} from source (≈ 4-5 min on 2 idle cores) with {' '.join(flags)}", flush=True)
    cmd = [python, "-m", "pip", "wheel", "-q", "--no-cache-dir", "--no-deps", "--no-binary", "llama-cpp-python",
           "-w", str(tmp_out), f"llama-cpp-python=={version}"]
    if subprocess.call(cmd, env=env) != 0:
        shutil.rmtree(tmp_out, ignore_errors=True)
        sys.exit(f"error: building llama-cpp-python {version} failed (needs gcc, g++ and cmake >= 3.21)")
    (tmp_out / "BUILD_FLAGS.json").write_text(json.dumps({"version": version, "cmake_args": flags}, indent=1) + "\n")
    os.replace(tmp_out, out)  # the folder appears only once the wheel is complete
    return next(out.glob("*.whl"))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--python", default=sys.executable, help="the interpreter to install into (default: this one)")
    ap.add_argument("--print-dir", action="store_true", help="print the wheelhouse folder for this CPU and exit")
    args = ap.parse_args(argv)

    version, flags = pinned_version(), build_flags(cpu_flags())
    out = wheel_dir(version, flags)
    if args.print_dir:
        print(out)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    wheels = sorted(out.glob("*.whl"))
    if wheels:
        print(f"using the llama-cpp-python wheel built with these flags before: {wheels[0]}")
        wheel = wheels[0]
    else:
        wheel = build(args.python, version, flags, out)
    amx = amx_instructions(wheel)
    if amx:
        sys.exit(f"error: {wheel}: libggml-cpu holds {amx} AMX instructions; delete {out} and run `make setup` again")
    subprocess.check_call([args.python, "-m", "pip", "install", "-q", "--no-cache-dir", "--force-reinstall",
                           "--no-deps", str(wheel)])
    subprocess.check_call([args.python, "-m", "pip", "install", "-q", f"llama-cpp-python=={version}",
                           "--find-links", str(out), "--only-binary", "llama-cpp-python"])  # its own deps
    print(f"installed {wheel.name} (no AMX instructions; flags in {out / 'BUILD_FLAGS.json'})")


if __name__ == "__main__":
    main()
