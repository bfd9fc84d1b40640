"""precision: auto picks bf16 only where the hardware has it; bf16 training follows the fp32 loss curve."""

import json
from pathlib import Path

import pytest

from prodqa import precision, train


@pytest.mark.parametrize("requested, native, expected", [
    ("auto", False, "fp32"),  # a CPU without AVX512-BF16/AMX: emulated bf16 would be slower, auto loses nothing
    ("auto", True, "bf16"),
    ("fp32", True, "fp32"),
    ("bf16", False, "bf16"),  # asked for explicitly: honoured
])
def test_resolve(requested, native, expected):
    assert precision.resolve(requested, has_cuda=False, native=native) == expected


def test_native_bf16_follows_the_cpu_flags(monkeypatch):
    import torch

    caps = dict(torch.cpu.get_capabilities())
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {**caps, "avx512_bf16": False, "amx_bf16": False})
    assert precision.native_bf16(has_cuda=False) is False
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {**caps, "avx512_bf16": False, "amx_bf16": True})
    assert precision.native_bf16(has_cuda=False) is True


def test_native_bf16_is_off_where_onednn_is_capped_below_bf16(monkeypatch):
    """ONEDNN_MAX_CPU_ISA=AVX2 makes oneDNN emulate bf16 (≈ 100x slower than fp32) even on a CPU that has it."""
    import torch

    caps = dict(torch.cpu.get_capabilities())
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {**caps, "avx512_bf16": True, "amx_bf16": True})
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert precision.native_bf16(has_cuda=False) is False
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx512_core_amx")
    assert precision.native_bf16(has_cuda=False) is True


@pytest.mark.slow
def test_bf16_loss_curve_stays_within_3_percent_of_fp32(tiny_model, tiny_run):
    """Base weights and matrix products in bf16, LoRA weights and optimizer state in fp32 (stated tolerance: 3%)."""
    p, tp, data, out = tiny_run
    curves = {}
    for name in ("fp32", "bf16"):
        dirs = {k: str(Path(v).with_name(f"{Path(v).name}-{name}")) for k, v in out.items()}
        train.train(train.Paths.of(base=tiny_model, data=data, **dirs), p.model_copy(update={"precision": name}), tp)
        rows = (Path(dirs["metrics"]) / "plots" / "metrics" / "train" / "loss.tsv").read_text().splitlines()[1:]
        curves[name] = [float(r.split("\t")[1]) for r in rows]
        adapter = json.loads((Path(dirs["adapter"]) / "adapter_config.json").read_text())
        assert adapter["r"] == p.lora_r
    assert len(curves["fp32"]) == len(curves["bf16"]) == p.max_steps
    assert curves["bf16"] != curves["fp32"]  # it really ran in another precision
    for a, b in zip(curves["fp32"], curves["bf16"]):
        assert abs(a - b) / a < 0.03, (curves["fp32"], curves["bf16"])
