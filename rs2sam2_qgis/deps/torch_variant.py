"""Which PyTorch build to install: the CUDA wheel index that matches the NVIDIA driver, CPU wheels otherwise.

`nvidia-smi` prints the newest CUDA version the installed driver supports ("CUDA Version: 12.4"); a CUDA wheel
runs when its CUDA version is not newer than that. Pure Python (runs nvidia-smi as a subprocess only in
`detect_gpu`).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field

TORCH_INDEX = "https://download.pytorch.org/whl"

# (CUDA version the wheel was built for, index name), newest first. The first entry not newer than the driver's
# CUDA version wins. Newer torch releases drop old CUDA indexes; pip then takes the newest torch that index
# carries (our range is torch>=2.5.1, which cu118..cu124 still have).
CUDA_INDEXES: tuple[tuple[tuple[int, int], str], ...] = (
    ((13, 0), "cu130"),
    ((12, 8), "cu128"),
    ((12, 6), "cu126"),
    ((12, 4), "cu124"),
    ((12, 1), "cu121"),
    ((11, 8), "cu118"),
)

# Fallback when nvidia-smi prints no "CUDA Version": minimum Linux driver for each CUDA toolkit (NVIDIA's
# release notes, table 3; Windows numbers are within a few builds of these).
DRIVER_TO_CUDA: tuple[tuple[tuple[int, int], tuple[int, int]], ...] = (
    ((580, 65), (13, 0)),
    ((570, 26), (12, 8)),
    ((560, 28), (12, 6)),
    ((550, 54), (12, 4)),
    ((530, 30), (12, 1)),
    ((520, 61), (11, 8)),
)


@dataclass
class GpuInfo:
    found: bool = False
    name: str = ""
    memory_mib: int | None = None
    driver_version: str = ""
    driver_cuda: tuple[int, int] | None = None
    why_not: str = ""          # why no NVIDIA GPU was found / usable
    raw: str = ""


@dataclass
class TorchVariant:
    name: str                  # "cu128", "cpu" or "default" (PyPI's own wheels: macOS, or an offline folder)
    index_url: str | None      # None: the ordinary index (or the offline folder)
    cuda: bool                 # does this build use a GPU?
    reason: str                # one line for the log and the diagnostics
    notes: list[str] = field(default_factory=list)


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text)[:3])


def parse_nvidia_smi(header: str, query: str = "") -> GpuInfo:
    """Parse `nvidia-smi` (header) and `nvidia-smi --query-gpu=name,driver_version,memory.total
    --format=csv,noheader,nounits` output."""
    info = GpuInfo(raw=(header + "\n" + query).strip())
    match = re.search(r"CUDA Version:\s*(\d+)\.(\d+)", header)
    if match:
        info.driver_cuda = (int(match.group(1)), int(match.group(2)))
    match = re.search(r"Driver Version:\s*([\d.]+)", header)
    if match:
        info.driver_version = match.group(1)
    for line in query.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 3 and parts[0]:
            info.name = parts[0]
            info.driver_version = info.driver_version or parts[1]
            try:
                info.memory_mib = int(float(re.sub(r"[^\d.]", "", parts[2])))
            except ValueError:
                pass
            break  # the first GPU is the one torch uses by default
    if not info.name:
        match = re.search(r"\|\s+\d+\s+(NVIDIA[^|]*?|Tesla[^|]*?|Quadro[^|]*?|GeForce[^|]*?)\s+(On|Off)\s+\|", header)
        if match:
            info.name = match.group(1).strip()
    if info.driver_cuda is None and info.driver_version:
        info.driver_cuda = driver_to_cuda(info.driver_version)
    info.found = bool(info.driver_cuda or info.name or info.driver_version)
    if not info.found:
        info.why_not = "nvidia-smi printed no GPU"
    return info


def driver_to_cuda(driver_version: str) -> tuple[int, int] | None:
    version = _version_tuple(driver_version)[:2]
    for minimum, cuda in DRIVER_TO_CUDA:
        if version >= minimum:
            return cuda
    return None


def _nvidia_smi_path() -> str | None:
    found = shutil.which("nvidia-smi")
    if found:
        return found
    if os.name == "nt":
        for candidate in (r"C:\Windows\System32\nvidia-smi.exe",
                          r"C:\Program Files\NVIDIA Corporation\NVSMI\nvidia-smi.exe"):
            if os.path.exists(candidate):
                return candidate
    return None


def detect_gpu(timeout: float = 15.0) -> GpuInfo:
    """Ask nvidia-smi (no torch needed). macOS has no CUDA; Apple GPUs are used through torch's MPS."""
    if sys.platform == "darwin":
        return GpuInfo(why_not="macOS: no CUDA (PyPI's torch uses the Apple GPU through MPS where available)")
    exe = _nvidia_smi_path()
    if exe is None:
        return GpuInfo(why_not="no NVIDIA driver found (nvidia-smi is not installed / not on PATH)")
    flags = {"creationflags": 0x08000000} if os.name == "nt" else {}  # CREATE_NO_WINDOW
    try:
        header = subprocess.run([exe], capture_output=True, text=True, timeout=timeout, **flags)
        query = subprocess.run([exe, "--query-gpu=name,driver_version,memory.total",
                                "--format=csv,noheader,nounits"], capture_output=True, text=True,
                               timeout=timeout, **flags)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return GpuInfo(why_not=f"nvidia-smi failed: {exc}")
    if header.returncode != 0:
        text = (header.stderr or header.stdout).strip().splitlines()
        return GpuInfo(why_not=f"nvidia-smi failed: {text[-1] if text else header.returncode}")
    return parse_nvidia_smi(header.stdout, query.stdout if query.returncode == 0 else "")


def cpu_variant(reason: str, sys_platform: str | None = None) -> TorchVariant:
    sp = sys_platform or sys.platform
    if sp == "darwin":  # PyPI's macOS wheels are the CPU/MPS build; there is no separate CPU index
        return TorchVariant("default", None, False, reason)
    return TorchVariant("cpu", f"{TORCH_INDEX}/cpu", False, reason)


def choose_variant(gpu: GpuInfo | None, sys_platform: str | None = None, force: str | None = None) -> TorchVariant:
    """The wheel index for this driver. `force`: "cpu" or an index name such as "cu126"."""
    sp = sys_platform or sys.platform
    if force:
        if force == "cpu":
            return cpu_variant("CPU build requested", sp)
        if force == "pypi":  # the ordinary index only (mirrors that do not carry download.pytorch.org)
            cuda = sp.startswith("linux") and gpu is not None and gpu.found
            return TorchVariant("pypi", None, cuda, "torch from the ordinary index (PyPI) requested")
        return TorchVariant(force, f"{TORCH_INDEX}/{force}", True, f"{force} build requested")
    if sp == "darwin":
        return cpu_variant("macOS: PyPI's build (CPU, Apple GPU through MPS)", sp)
    if gpu is None or not gpu.found:
        why = gpu.why_not if gpu is not None and gpu.why_not else "no NVIDIA GPU found"
        return cpu_variant(f"CPU build: {why}", sp)
    label = gpu.name or "NVIDIA GPU"
    if gpu.driver_cuda is None:
        return cpu_variant(f"CPU build: {label} found, but its driver's CUDA version is unknown "
                           f"(driver {gpu.driver_version or '?'})", sp)
    for cuda, name in CUDA_INDEXES:
        if gpu.driver_cuda >= cuda:
            return TorchVariant(name, f"{TORCH_INDEX}/{name}", True,
                                f"{name} build: {label}, driver {gpu.driver_version or '?'} supports CUDA "
                                f"{gpu.driver_cuda[0]}.{gpu.driver_cuda[1]}")
    oldest = CUDA_INDEXES[-1][0]
    return cpu_variant(f"CPU build: the driver of {label} supports CUDA {gpu.driver_cuda[0]}.{gpu.driver_cuda[1]}, "
                       f"PyTorch needs at least CUDA {oldest[0]}.{oldest[1]}: update the NVIDIA driver to use the GPU",
                       sp)
