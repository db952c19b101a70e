"""Pure logic of rs2sam2_qgis.deps (no Qt, no QGIS, no torch): requirement list vs pyproject, folder keys,
constraints from a fake QGIS site, the torch wheel index for a driver, the switch-on-success layout."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import types
from pathlib import Path

import pytest

from rs2sam2_qgis.deps import constraints as C
from rs2sam2_qgis.deps import layout as L
from rs2sam2_qgis.deps import manager as M
from rs2sam2_qgis.deps import requirements as R
from rs2sam2_qgis.deps import state
from rs2sam2_qgis.deps import torch_variant as T
from rs2sam2_qgis.deps.runner import Cancelled, run_streamed

REPO = Path(__file__).resolve().parents[1]


def test_deps_package_imports_without_torch_or_qt():
    code = (f"import sys; sys.path.insert(0, {str(REPO)!r}); import rs2sam2_qgis.deps, "
            "rs2sam2_qgis.deps.diagnostics; bad = [m for m in ('torch', 'qgis', 'PyQt5') if m in sys.modules]; "
            "print(bad); sys.exit(bool(bad))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_requirement_list_matches_pyproject():
    import tomllib

    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert [r.spec for r in R.REQUIREMENTS] == deps
    for r in R.REQUIREMENTS:
        assert R.canonical(R.requirement_name(r.spec)) == R.canonical(r.dist)
        assert r.needed_for in ("run", "models")
    assert set(R.NO_DEPS) <= {r.dist for r in R.REQUIREMENTS}


@pytest.mark.parametrize("args, key", [
    (((3, 11, 2), "linux", "x86_64", ""), "py311-linux-x86_64"),
    (((3, 12, 4), "win32", "AMD64", ""), "py312-win-x86_64"),
    (((3, 9, 18), "darwin", "arm64", ""), "py39-macos-arm64"),
    (((3, 13, 0), "linux", "aarch64", "t"), "py313t-linux-arm64"),
])
def test_platform_key(args, key):
    assert L.platform_key(*args) == key


def test_default_root_under_profile(monkeypatch, tmp_path):
    monkeypatch.delenv(L.ENV_ROOT, raising=False)
    assert L.default_root(tmp_path / "profiles" / "default") == tmp_path / "profiles/default/python/rs2sam2_deps"
    monkeypatch.setenv(L.ENV_ROOT, str(tmp_path / "x"))
    assert L.default_root("/ignored") == tmp_path / "x"


def _fake_dist(site: Path, name: str, version: str, egg: bool = False):
    folder = site / (f"{name}-{version}.egg-info" if egg else f"{name}-{version}.dist-info")
    folder.mkdir(parents=True)
    (folder / ("PKG-INFO" if egg else "METADATA")).write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


@pytest.fixture
def fake_qgis_site(tmp_path):
    site = tmp_path / "qgis-site"
    for name, version, egg in [("numpy", "1.24.2", False), ("GDAL", "3.6.2", True), ("pyproj", "3.4.1", False),
                               ("Shapely", "2.0.1+dfsg", False), ("Pillow", "9.4.0", True), ("PyQt5", "5.15.9", False),
                               ("requests", "2.28.1", False), ("mpmath", "0.0.0", True)]:
        _fake_dist(site, name, version, egg)
    return site


def test_constraints_from_fake_qgis_site(fake_qgis_site, tmp_path):
    ours = tmp_path / "deps" / "py311-linux-x86_64" / "set-1"
    _fake_dist(ours, "numpy", "1.26.4")      # our own folder never counts as "QGIS ships it"
    _fake_dist(ours, "torch", "2.14.1")
    pins = C.qgis_pins([str(ours), str(fake_qgis_site)], exclude=[tmp_path / "deps"],
                       protected=R.PROTECTED + ("mpmath",))
    text = pins.constraints_text()
    for line in ("numpy==1.24.2", "GDAL==3.6.2", "pyproj==3.4.1", "Shapely==2.0.1", "Pillow==9.4.0", "PyQt5==5.15.9"):
        assert line in text.splitlines(), text
    assert "requests" not in text and "torch" not in text     # not ours to pin / not in QGIS
    assert "mpmath" not in text and any("mpmath" in n for n in pins.notes)   # Debian's 0.0.0 placeholder
    specs, warnings = C.pip_requirements(R.REQUIREMENTS, pins)
    assert "numpy" in specs and "numpy>=1.24.4,<2" not in specs     # held by the constraint at QGIS's version
    assert "pyproj" in specs and "torch>=2.5.1" in specs and "sam2==1.1.0" in specs
    assert any("numpy 1.24.2" in w for w in warnings) and any("pyproj 3.4.1" in w for w in warnings)
    assert not any("pillow" in w.lower() for w in warnings)          # 9.4.0 meets pillow>=9.4


def test_constraints_from_this_python_include_numpy():
    pins = C.qgis_pins(["/usr/lib/python3/dist-packages"])
    if not Path("/usr/lib/python3/dist-packages/numpy").is_dir():
        pytest.skip("no Debian numpy here")
    assert pins.version("numpy") and pins.version("GDAL")


NVSMI = textwrap.dedent("""\
    +-----------------------------------------------------------------------------------------+
    | NVIDIA-SMI 550.54.15              Driver Version: 550.54.15      CUDA Version: {cuda}     |
    |-----------------------------------------+------------------------+----------------------+
    |   0  NVIDIA RTX A4000                On  |   00000000:01:00.0 Off |                  Off |
    +-----------------------------------------+------------------------+----------------------+
    """)


@pytest.mark.parametrize("cuda, index", [("13.0", "cu130"), ("12.9", "cu128"), ("12.8", "cu128"),
                                         ("12.4", "cu124"), ("12.2", "cu121"), ("11.8", "cu118")])
def test_index_from_driver_cuda(cuda, index):
    gpu = T.parse_nvidia_smi(NVSMI.format(cuda=cuda), "NVIDIA RTX A4000, 550.54.15, 16376\n")
    assert gpu.found and gpu.name == "NVIDIA RTX A4000" and gpu.memory_mib == 16376
    variant = T.choose_variant(gpu, sys_platform="linux")
    assert variant.cuda and variant.name == index
    assert variant.index_url == f"https://download.pytorch.org/whl/{index}"


def test_index_too_old_driver_no_driver_and_macos():
    old = T.choose_variant(T.parse_nvidia_smi(NVSMI.format(cuda="11.4")), sys_platform="linux")
    assert not old.cuda and old.name == "cpu" and "update the NVIDIA driver" in old.reason
    none = T.choose_variant(T.GpuInfo(why_not="no NVIDIA driver found"), sys_platform="win32")
    assert none.name == "cpu" and none.index_url.endswith("/cpu") and "no NVIDIA driver" in none.reason
    assert T.choose_variant(None, sys_platform="linux").name == "cpu"
    mac = T.choose_variant(T.GpuInfo(), sys_platform="darwin")
    assert mac.name == "default" and mac.index_url is None and not mac.cuda
    assert T.choose_variant(None, force="cu126").name == "cu126"
    assert T.choose_variant(T.parse_nvidia_smi(NVSMI.format(cuda="12.8")), force="cpu").name == "cpu"


def test_driver_version_only():
    gpu = T.parse_nvidia_smi("", "Tesla T4, 535.104.05, 15360\n")
    assert gpu.driver_cuda == (12, 1) and T.choose_variant(gpu, sys_platform="linux").name == "cu121"
    assert not T.parse_nvidia_smi("No devices were found", "").found


def test_offline_torch_pick(tmp_path):
    for name in ("torch-2.14.1+cu128-cp311-cp311-linux_x86_64.whl", "torch-2.14.1+cpu-cp311-cp311-linux_x86_64.whl",
                 "torch-2.14.1%2Bcu130-cp311-cp311-linux_x86_64.whl", "torchvision-0.29.1+cpu-cp311-cp311-linux_x86_64.whl"):
        (tmp_path / name).write_bytes(b"")
    cu = T.TorchVariant("cu128", None, True, "")
    assert M.pick_offline_torch(tmp_path, cu) == {"torch": "2.14.1+cu128"}
    assert M.pick_offline_torch(tmp_path, T.cpu_variant("x")) == {"torch": "2.14.1+cpu", "torchvision": "0.29.1+cpu"}


def test_switch_on_success_keeps_old_set(tmp_path):
    lay = L.DepsLayout(tmp_path / "deps", "py311-linux-x86_64")
    assert lay.active_dir() is None
    first = lay.new_staging_dir()
    (first / "marker.py").write_text("X = 1\n")
    first = lay.commit(first, {"variant": "cpu"})
    assert lay.active_dir() == first and not first.name.endswith(".partial") and lay.pointer()["variant"] == "cpu"
    second = lay.new_staging_dir()
    (second / "marker.py").write_text("X = 2\n")
    lay.discard(second)                       # a failed attempt
    assert lay.active_dir() == first and not second.exists()
    lay.discard(first)                        # the live set is never discarded
    assert first.exists()
    third = lay.commit(lay.new_staging_dir())
    assert lay.active_dir() == third and lay.pointer()["previous"] == first.name
    lay.cleanup()
    assert not first.exists() and third.exists()
    path = []
    assert lay.activate(path) == third and path == [str(third)]
    lay.pointer_file.write_text("not json")
    assert lay.active_dir() is None           # a broken pointer means "nothing installed", not a crash
    assert lay.uninstall() and not lay.key_dir.exists() and lay.root.exists()


def test_failed_and_cancelled_install_keep_previous_set(tmp_path):
    lay = L.DepsLayout(tmp_path / "deps", "py311-linux-x86_64")
    previous = lay.commit(lay.new_staging_dir())
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    opts = M.InstallOptions(requirements=["rs2sam2-no-such-package-xyz"], offline_dir=str(wheels),
                            python=sys.executable, qgis_site_paths=[], env={"PATH": "/usr/bin:/bin"})
    lines = []
    result = M.Installer(lay, opts).run(log=lines.append)
    assert not result.ok and "previous dependency set is unchanged" in result.message
    assert lay.active_dir() == previous and lay.sets() == [previous]
    assert any("--no-index" in line for line in lines)
    cancelled = M.Installer(lay, opts).run(is_cancelled=lambda: True)
    assert not cancelled.ok and "cancelled" in cancelled.message.lower()
    assert lay.active_dir() == previous and lay.sets() == [previous]


def test_runner_streams_and_cancel_kills():
    lines = []
    code, tail = run_streamed([sys.executable, "-c", "print('a'); print('b')"], log=lines.append)
    assert code == 0 and lines == ["a", "b"]
    start = time.monotonic()
    with pytest.raises(Cancelled):
        run_streamed([sys.executable, "-c", "import time; print('go', flush=True); time.sleep(60)"],
                     is_cancelled=lambda: time.monotonic() - start > 0.5)
    assert time.monotonic() - start < 10


def test_pip_args_offline_proxy_and_binary(tmp_path):
    lay = L.DepsLayout(tmp_path, "k")
    online = M.Installer(lay, M.InstallOptions(proxy="http://u:p@proxy:3128", python="py"))
    args = online.pip_args(tmp_path / "t", tmp_path / "c.txt")
    assert args[:4] == ["py", "-m", "pip", "install"] and "--target" in args and "-c" in args
    assert args[args.index("--proxy") + 1] == "http://u:p@proxy:3128"
    binary = args[args.index("--only-binary") + 1].split(",")
    assert {"torch", "numpy", "rasterio", "GDAL"} <= set(binary)
    offline = M.Installer(lay, M.InstallOptions(offline_dir="/w", proxy="http://proxy:1", python="py"))
    args = offline.pip_args(tmp_path / "t", tmp_path / "c.txt")
    assert "--no-index" in args and args[args.index("--find-links") + 1] == "/w" and "--proxy" not in args


def test_proxy_from_qgis_settings_values_and_redact():
    assert M.proxy_url(True, "HttpProxy", "proxy.lan", 3128) == "http://proxy.lan:3128"
    assert M.proxy_url("true", "HttpCachingProxy", "p", "8080", "dom\\me", "p@ss") == "http://dom%5Cme:p%40ss@p:8080"
    assert M.proxy_url(False, "HttpProxy", "p", 1) is None
    assert M.proxy_url(True, "DefaultProxy", "p", 1) is None
    assert M.redact("pip --proxy http://me:secret@p:8080 x") == "pip --proxy http://me:***@p:8080 x"


def test_missing_and_restart_reasons(tmp_path):
    fake = R.Requirement("rs2sam2-fake", "rs2sam2-fake>=1", "rs2sam2_fake_module", "models")
    real = R.Requirement("pytest", "pytest", "pytest", "run")
    missing = M.check_missing([real, fake])
    assert [m.module for m in missing] == ["rs2sam2_fake_module"]
    assert M.missing_message(missing) == "missing: rs2sam2_fake_module (BEiT-3 models: paper, tiny)"
    assert M.missing_message([]) == ""
    lay = L.DepsLayout(tmp_path, "k")
    old = lay.commit(lay.new_staging_dir())
    new = lay.new_staging_dir()
    _fake_dist(new, "sympy", "1.14.0")
    (new / "sympy").mkdir()
    new = lay.commit(new)
    modules = {"sympy": types.SimpleNamespace(__file__=str(old / "sympy" / "__init__.py")),
               "numpy": types.SimpleNamespace(__version__="1.26.4", __file__="/x/numpy/__init__.py")}
    reasons = M.restart_reasons(new, lay.key_dir, {"numpy": "1.24.2"}, modules)
    assert any("sympy was imported from the previous dependency set" in r for r in reasons)
    assert any("numpy 1.26.4 is loaded" in r for r in reasons)
    assert M.restart_reasons(new, lay.key_dir, {"numpy": "1.24.2"}, {}) == []


def test_state_store(tmp_path):
    path = tmp_path / "run_state.json"
    state.record_run(path, "cuda:0", "NVIDIA RTX A4000, 16376 MiB")
    try:
        raise RuntimeError("CUDA out of memory")
    except RuntimeError as exc:
        state.record_error(path, exc)
    data = state.load(path)
    assert data["last_device"] == "cuda:0" and "CUDA out of memory" in data["last_error"]
    assert "Traceback" in data["last_error_trace"] and set(data) <= set(state.KEYS)
    assert json.loads(path.read_text())["last_run_at"]


def test_torch_index_unreachable_falls_back_to_ordinary_index(tmp_path):
    """download.pytorch.org not reachable (here: a dead proxy): the log shows the driver-matched index, the
    install then tries the ordinary index, fails too, and the previous (empty) state is unchanged."""
    lay = L.DepsLayout(tmp_path / "deps", "k")
    env = {"PATH": "/usr/bin:/bin", "PIP_CONFIG_FILE": os.devnull, "PIP_RETRIES": "0", "PIP_TIMEOUT": "2",
           "HOME": str(tmp_path)}
    opts = M.InstallOptions(requirements=["torch>=2.5.1"], torch="cu128", proxy="http://127.0.0.1:9",
                            python=sys.executable, qgis_site_paths=[], env=env)
    lines = []
    result = M.Installer(lay, opts).run(log=lines.append)
    log = "\n".join(lines)
    assert "--index-url https://download.pytorch.org/whl/cu128" in log and "--proxy http://127.0.0.1:9" in log
    assert any("download.pytorch.org not usable" in w for w in result.warnings)
    assert not result.ok and lay.active_dir() is None and lay.sets() == []
    assert T.choose_variant(T.GpuInfo(found=True, driver_cuda=(12, 8)), "linux", force="pypi").cuda


def test_python_executable_ignores_foreign_sys_executable(monkeypatch, tmp_path):
    """Embedded in QGIS, sys.executable is whatever python3 comes first on PATH (here: a pyenv shim)."""
    shim = tmp_path / "shims" / "python3"
    shim.parent.mkdir()
    shim.write_text("#!/bin/sh\n")
    monkeypatch.setattr(sys, "executable", str(shim))
    found = M.python_executable()
    assert found != str(shim) and Path(found).exists()
    assert Path(found).is_relative_to(sys.exec_prefix) or Path(found).is_relative_to(sys.base_exec_prefix)


def test_restart_reason_ignores_version_decorations():
    modules = {"psycopg2": types.SimpleNamespace(__version__="2.9.5 (dt dec pq3 ext lo64)", __file__="/x")}
    assert M.restart_reasons(None, None, {"psycopg2": "2.9.5"}, modules) == []


def test_one_install_at_a_time(tmp_path):
    lay = L.DepsLayout(tmp_path / "deps", "k")
    assert lay.acquire_lock() and not lay.acquire_lock()          # held by this (live) process
    result = M.Installer(lay, M.InstallOptions(requirements=["x"], python=sys.executable)).run()
    assert not result.ok and "Another install is running" in result.message
    lay.release_lock()
    assert not lay.lock_file.exists()
    lay.lock_file.write_text(json.dumps({"pid": 2**22 + 12345, "time": time.time()}))   # a dead process's lock
    assert lay.acquire_lock()
    lay.release_lock()


def test_offline_kit_commands(fake_qgis_site):
    pins = C.qgis_pins([str(fake_qgis_site)])
    constraints, commands = M.offline_kit(pins, T.TorchVariant("cu128", "https://download.pytorch.org/whl/cu128",
                                                                True, "test"))
    assert "numpy==1.24.2" in constraints
    lines = commands.splitlines()
    assert '--index-url https://download.pytorch.org/whl/cu128 "torch>=2.5.1" "torchvision>=0.20.1"' in lines[1]
    assert '-c qgis-constraints.txt' in lines[2] and '"numpy==1.24.2"' in lines[2] and '"hydra-core>=1.3.2"' in lines[2]
    assert '"sam2==1.1.0"' not in lines[2] and '--no-deps "sam2==1.1.0" "torchscale==0.3.0"' in lines[3]
    assert "setuptools wheel ninja" in lines[4]


def test_cuda_failure_falls_back_to_cpu_build(tmp_path):
    """A CUDA build whose GPU check fails is discarded; the CPU build is installed and the reason is reported."""
    lay = L.DepsLayout(tmp_path / "deps", "k")
    gpu = T.parse_nvidia_smi(NVSMI.format(cuda="12.8"), "NVIDIA RTX A4000, 550.54.15, 16376\n")
    tried = []

    class FakeInstaller(M.Installer):
        def _attempt(self, staging, variant, pins, warnings):
            tried.append(variant.name)
            (staging / "marker.py").write_text(f"NAME = {variant.name!r}\n")
            if variant.cuda:
                return {"modules": {"torch": {}}, "torch": {"version": "2.14.1+cu128", "cuda_build": "12.8"},
                        "cuda": {"ok": False, "error": "RuntimeError: CUDA error: no kernel image is available"}}
            return {"modules": {"torch": {}}, "torch": {"version": "2.14.1+cpu", "cuda_build": None}}

    result = FakeInstaller(lay, M.InstallOptions(requirements=["torch>=2.5.1"], python=sys.executable,
                                                 qgis_site_paths=[]), gpu=gpu).run()
    assert tried == ["cu128", "cpu"]
    assert result.ok and result.variant == "cpu" and lay.pointer()["variant"] == "cpu"
    assert any("CUDA build cu128 does not run here" in w and "no kernel image" in w for w in result.warnings)
    assert (lay.active_dir() / "marker.py").read_text() == "NAME = 'cpu'\n" and len(lay.sets()) == 1
