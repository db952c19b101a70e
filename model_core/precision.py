"""The precision a Predictor runs in, and a one-line reason shown to the analyst next to the device's.

``precision="auto"``:
- CUDA: bf16 where the GPU supports it, else fp16 (tensor cores either way).
- CPU: bf16 only where the CPU computes bf16 natively (AVX512-BF16 or AMX-BF16; emulated bf16 is slower than fp32)
  AND the model declares bf16 faster on such a CPU (its config's ``cpu_bf16``, set per preset from the measurements
  in bench/results/cpu_precision.md: large models gain ~2.5x, small ones lose to the casts); fp32 elsewhere.
"""
from __future__ import annotations

from pathlib import Path

import torch

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_bf16_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> list[str]:
    """The native-bf16 instruction sets this CPU reports (Linux /proc/cpuinfo; [] where it cannot be read)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return []
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
            break
    return [f for f in NATIVE_BF16_FLAGS if f in flags]


def model_prefers_cpu_bf16(model) -> bool:
    """The model's measured declaration (config ``cpu_bf16``); False for models that make none."""
    return bool(getattr(getattr(model, "cfg", None), "cpu_bf16", False))


def auto_precision(device: torch.device, model, cpu_flags: list[str] | None = None) -> tuple[str, str]:
    """(precision name, reason) that ``precision="auto"`` picks for ``model`` on ``device``."""
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return "bf16", "auto: the GPU supports bf16"
        return "fp16", "auto: the GPU has no bf16, fp16 instead"
    if device.type != "cpu":
        return "fp32", f"auto: fp32 on {device.type}"
    flags = cpu_bf16_flags() if cpu_flags is None else cpu_flags
    name = getattr(model, "name", type(model).__name__)
    if not flags:
        return "fp32", "auto: this CPU has no native bf16 (AVX512-BF16 or AMX)"
    if not model_prefers_cpu_bf16(model):
        return "fp32", f"auto: {name} is not faster in bf16 on CPU (measured), fp32"
    return "bf16", f"auto: CPU has {'+'.join(flags)} and {name} runs faster in bf16 (measured)"


def resolve_precision(precision: str | None, device: torch.device, model) -> tuple[torch.dtype, str, str]:
    """(dtype, name, reason) for a requested precision: auto, fp32, bf16 or fp16."""
    precision = (precision or "auto").strip().lower()
    if precision == "auto":
        name, why = auto_precision(device, model)
        return PRECISIONS[name], name, why
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision '{precision}': use auto, fp32, bf16 or fp16")
    if device.type == "cpu" and precision == "fp16":
        raise ValueError("fp16 autocast is not supported on CPU; use bf16 or fp32")
    return PRECISIONS[precision], precision, f"{precision} requested"
