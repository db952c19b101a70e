"""Install, verify, switch and check our pip dependencies for QGIS's own Python. Pure Python (no Qt/QGIS/torch):
`task.py` wraps `Installer.run` in a QgsTask; tests call it directly.

An install (see docs/INSTALL.md):
 1. read the versions QGIS's Python already has (constraints.py) and pin them;
 2. online, with torch wanted: download torch + torchvision from the PyTorch index that matches the NVIDIA
    driver (torch_variant.py), CPU wheels otherwise;
 3. `pip install --target <new set>.partial -c <pins> --only-binary <heavy>` the requirement set
    (`--no-index --find-links <folder>` offline; `--proxy` from QGIS's network settings);
 4. the few packages whose declared pins clash with QGIS (requirements.NO_DEPS) with --no-deps;
 5. prune every package QGIS already has from the new set (QGIS's copy is the one that runs);
 6. verify in a fresh QGIS-Python process, with the new set first on sys.path exactly as the engine worker has
    it (engine_path.py), that everything imports, QGIS's numpy is still the one loaded (step 5 pruned ours), and
    (GPU found) a CUDA tensor op runs;
    if CUDA fails, redo 2-6 with CPU wheels and say why;
 7. only then switch the pointer to the new set (layout.py); anything failing before leaves the old set live.
"""
from __future__ import annotations

import importlib.metadata as md
import importlib.util
import json
import os
import re
import shutil
import sys
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .constraints import QgisPins, pip_requirements, qgis_pins
from .layout import DepsLayout
from .requirements import (
    HEAVY_BINARY,
    NO_DEPS,
    PROTECTED,
    REQUIREMENTS,
    TORCH_DISTS,
    Requirement,
    canonical,
    requirement_name,
)
from .runner import Cancelled, run_streamed
from .torch_variant import GpuInfo, TorchVariant, choose_variant, cpu_variant, detect_gpu

Log = Callable[[str], None]


# --------------------------------------------------------------------------------------------------------------
# QGIS's Python interpreter
# --------------------------------------------------------------------------------------------------------------
def python_executable() -> str:
    """The Python interpreter of the running QGIS. Inside QGIS sys.executable is often qgis-bin.exe (Windows), or
    whatever `python3` comes first on PATH (embedded Python guesses it: a pyenv shim on this machine), so it is
    only trusted when it lies inside QGIS's Python prefix."""
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    prefixes = list(dict.fromkeys([sys.exec_prefix, sys.base_exec_prefix, sys.prefix]))
    exe = Path(sys.executable) if sys.executable else None

    def is_python(path: Path | None) -> bool:
        return path is not None and path.name.lower().startswith("python") and path.exists()

    if is_python(exe) and any(str(exe.absolute()).startswith(str(Path(p))) for p in prefixes):
        return str(exe)
    if os.name == "nt":
        candidates = [Path(p) / n for p in prefixes for n in ("python.exe", "python3.exe")]
    else:
        candidates = [Path(p) / "bin" / n for p in prefixes for n in (f"python{version}", "python3")]
        if exe is not None:  # macOS QGIS.app: sys.executable is Contents/MacOS/QGIS, Python is Contents/MacOS/bin
            candidates += [exe.parent / "bin" / n for n in (f"python{version}", "python3")]
    for candidate in candidates:
        if candidate.exists():
            return str(candidate)
    if is_python(exe):
        return str(exe)
    return shutil.which(f"python{version}") or shutil.which("python3") or "python3"


# --------------------------------------------------------------------------------------------------------------
# Missing modules and restart checks (called at plugin start; no heavy import)
# --------------------------------------------------------------------------------------------------------------
@dataclass
class Missing:
    module: str
    dist: str
    spec: str
    needed_for: str


def check_missing(requirements: Iterable[Requirement] = REQUIREMENTS, role: str | None = None) -> list[Missing]:
    """Required modules that cannot be found on sys.path (found with importlib.util.find_spec; nothing imported)."""
    missing = []
    for req in requirements:
        if role is not None and req.needed_for != role:
            continue
        try:
            found = req.module in sys.modules or importlib.util.find_spec(req.module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(Missing(req.module, req.dist, req.spec, req.needed_for))
    return missing


def missing_message(missing: list[Missing]) -> str:
    """One line for the dock: 'missing: torch, sam2 (models) ...'; '' when nothing is missing."""
    if not missing:
        return ""
    run = [m.module for m in missing if m.needed_for == "run"]
    models = [m.module for m in missing if m.needed_for != "run"]
    parts = []
    if run:
        parts.append(", ".join(run))
    if models:
        parts.append(", ".join(models) + " (BEiT-3 models: paper, tiny)")
    return "missing: " + "; ".join(parts)


def _top_level_names(dist: md.Distribution) -> set[str]:
    text = dist.read_text("top_level.txt")
    if text:
        return {n.strip() for n in text.split() if n.strip() and not n.startswith("_")}
    names = set()
    for entry in dist.files or []:
        first = entry.parts[0] if entry.parts else ""
        if first.endswith((".dist-info", ".egg-info", ".data")) or first in ("bin", "..", "__pycache__"):
            continue
        name = first[:-3] if first.endswith(".py") else first
        if name.isidentifier() and not name.startswith("_"):
            names.add(name)
    if not names:  # no top_level.txt and no RECORD: the usual import name
        name = (dist.metadata["Name"] or "").replace("-", "_").replace(".", "_").lower()
        if name.isidentifier():
            names.add(name)
    return names


def restart_reasons(active: Path | None, key_dir: Path | None = None, pins: dict | None = None,
                    modules: dict | None = None) -> list[str]:
    """Why QGIS must restart before the live set can be used ([] when it need not): a package of ours was
    already imported from another (older) set or half-imported, or numpy & co are loaded at a version other than
    the one the set was resolved against."""
    modules = sys.modules if modules is None else modules
    reasons = []
    active_text = str(active) if active else None

    def origin(module) -> str:
        return str(getattr(module, "__file__", "") or "")

    if active is not None and active.is_dir():
        for dist in md.distributions(path=[str(active)]):
            for top in sorted(_top_level_names(dist)):
                loaded = [k for k in modules if k == top or k.startswith(top + ".")]
                if not loaded:
                    continue
                module = modules.get(top)
                where = origin(module) if module is not None else ""
                if active_text and where.startswith(active_text):
                    continue
                if key_dir is not None and where.startswith(str(key_dir)):
                    reasons.append(f"{top} was imported from the previous dependency set ({where})")
                elif module is None:
                    reasons.append(f"{top} is half-imported (an earlier import failed part-way)")
                elif top == "torch" or top.startswith("torch"):
                    reasons.append(f"{top} was already imported from {where or 'elsewhere'}; it cannot be reloaded")
    for dist, version in (pins or {}).items():
        import_name = {"pillow": "PIL", "gdal": "osgeo"}.get(canonical(dist), dist)
        module = modules.get(import_name)
        loaded = getattr(module, "__version__", None) if module is not None else None
        loaded = str(loaded).split()[0].split("+")[0] if loaded else None   # "2.9.5 (dt dec pq3 ext lo64)"
        if loaded and loaded != str(version):
            reasons.append(f"{import_name} {loaded} is loaded, the dependency set was made for {version}")
    return reasons


def shadowed(active: Path | None, qgis_site_paths: list | None = None, exclude: list = ()) -> list[str]:
    """Packages of our set that QGIS's Python also has at another version: with our folder appended, QGIS's copy
    is the one that imports (e.g. Debian's sympy 1.11 before the 1.14 torch asked for)."""
    if active is None or not Path(active).is_dir():
        return []
    from .constraints import installed_distributions

    qgis = installed_distributions(qgis_site_paths, exclude=list(exclude) + [Path(active).parent])
    out = []
    for dist in md.distributions(path=[str(active)]):
        key = canonical(dist.metadata["Name"] or "")
        if key in qgis and qgis[key][1] != dist.version:
            out.append(f"{dist.metadata['Name']} {dist.version} (QGIS's {qgis[key][1]} is used)")
    return sorted(out)


# --------------------------------------------------------------------------------------------------------------
# Installing
# --------------------------------------------------------------------------------------------------------------
@dataclass
class InstallOptions:
    requirements: list = field(default_factory=lambda: list(REQUIREMENTS))  # Requirement or PEP 508 strings
    offline_dir: str | None = None        # local wheel folder: --no-index --find-links
    proxy: str | None = None              # e.g. http://user:pass@proxy:3128 (from QGIS's network settings)
    torch: str = "auto"                   # "auto" (by driver), "cpu", "cu128", "pypi"; ignored without torch
    python: str | None = None             # QGIS's Python (default: python_executable())
    qgis_site_paths: list | None = None   # where QGIS's packages are (default: sys.path minus our folders)
    protected: tuple = PROTECTED
    no_deps: dict = field(default_factory=lambda: dict(NO_DEPS))
    index_url: str | None = None          # the ordinary index (default: pip's own configuration)
    extra_pip_args: list = field(default_factory=list)
    env: dict | None = None               # environment for pip and the checks (default: os.environ)
    verify_timeout: float = 600.0


@dataclass
class InstallResult:
    ok: bool
    message: str
    active_dir: Path | None = None
    variant: str = ""
    cuda_ok: bool | None = None
    verify: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    restart_needed: bool = False
    restart_reasons: list = field(default_factory=list)
    log_tail: str = ""


class InstallError(Exception):
    def __init__(self, message: str, tail: str = ""):
        super().__init__(message)
        self.tail = tail


def redact(text: str) -> str:
    """Hide passwords in proxy URLs (user:secret@host -> user:***@host)."""
    return re.sub(r"(//[^:/@\s]+):[^@/\s]+@", r"\1:***@", text)


_WHEEL_RE = re.compile(r"^(?P<name>[A-Za-z0-9_.]+)-(?P<version>[^-]+)-.*\.whl$")


def wheel_versions(folder: Path, dist: str) -> list[str]:
    """Versions of `dist` among the wheels in `folder` (`torch-2.14.1+cu128-...whl` -> `2.14.1+cu128`)."""
    found = []
    for path in Path(folder).glob("*.whl"):
        match = _WHEEL_RE.match(urllib.parse.unquote(path.name))
        if match and canonical(match.group("name")) == canonical(dist):
            found.append(match.group("version"))
    return found


def _version_key(version: str):
    return tuple(int(x) for x in re.findall(r"\d+", version.split("+")[0])[:4])


def pick_offline_torch(folder: Path, variant: TorchVariant) -> dict[str, str]:
    """Exact torch/torchvision versions to take from an offline folder for `variant` ({} = let pip choose)."""
    pins = {}
    for dist in TORCH_DISTS:
        versions = sorted(wheel_versions(folder, dist), key=_version_key, reverse=True)
        if not versions:
            continue
        labels = {v: (v.split("+", 1)[1] if "+" in v else "") for v in versions}
        if variant.cuda:
            usable = [v for v in versions if labels[v].startswith("cu") and labels[v] <= variant.name]
        else:
            usable = [v for v in versions if labels[v] == "cpu"] or [v for v in versions if not labels[v]]
        if usable:
            pins[dist] = usable[0]
    return pins


VERIFY_SCRIPT = r"""
import importlib, json, sys, traceback
target, modules, want_cuda, pins = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3] == "1", json.loads(sys.argv[4])
sys.path.insert(0, target)   # exactly what the engine worker does (engine_path.py): our set first
out = {"python": sys.version.split()[0], "modules": {}, "errors": {}}
for name in modules:
    try:
        m = importlib.import_module(name)
        out["modules"][name] = {"version": str(getattr(m, "__version__", "")), "file": str(getattr(m, "__file__", ""))}
    except BaseException as exc:
        out["errors"][name] = "".join(traceback.format_exception_only(type(exc), exc)).strip()
np = sys.modules.get("numpy")
if np is not None:
    out["numpy"] = {"version": np.__version__, "file": np.__file__, "ours": np.__file__.startswith(target)}
torch = sys.modules.get("torch")
if torch is not None:
    out["torch"] = {"version": torch.__version__, "cuda_build": torch.version.cuda}
    if want_cuda:
        try:
            if torch.version.cuda is None:
                raise RuntimeError("this torch build has no CUDA support")
            if not torch.cuda.is_available():
                raise RuntimeError("torch.cuda.is_available() is False (driver too old for CUDA "
                                   + str(torch.version.cuda) + ", or no usable GPU)")
            x = torch.ones(64, 64, device="cuda")
            value = float((x @ x).sum().item())
            if value != 64.0 ** 3:
                raise RuntimeError("wrong result from a CUDA matmul: %r" % value)
            props = torch.cuda.get_device_properties(0)
            out["cuda"] = {"ok": True, "name": props.name, "memory_mib": props.total_memory // 2**20}
        except BaseException as exc:
            out["cuda"] = {"ok": False, "error": "".join(traceback.format_exception_only(type(exc), exc)).strip()}
print("RS2SAM2-VERIFY " + json.dumps(out))
"""


def verify_set(python: str, target: Path, modules: list[str], want_cuda: bool, pins: dict | None = None,
               env: dict | None = None, log: Log | None = None, is_cancelled=None,
               timeout: float = 600.0) -> dict:
    """Import everything from a fresh process of QGIS's Python with `target` first on sys.path (the worker's
    order)."""
    cmd = [python, "-c", VERIFY_SCRIPT, str(target), json.dumps(modules), "1" if want_cuda else "0",
           json.dumps(pins or {})]
    collected = []
    code, tail = run_streamed(cmd, log=collected.append, is_cancelled=is_cancelled, env=env, timeout=timeout)
    for line in collected:
        if line.startswith("RS2SAM2-VERIFY "):
            result = json.loads(line[len("RS2SAM2-VERIFY "):])
            result["exit_code"] = code
            return result
        if log is not None:
            log(line)
    return {"exit_code": code, "errors": {"(python)": tail[-2000:] or f"exit code {code}"}, "modules": {}}


def prune_pinned(target: Path, pins: dict[str, tuple[str, str]], log: Log | None = None) -> list[str]:
    """Remove from `target` every distribution QGIS already has (pinned): QGIS's copy is the one that runs, and a
    second numpy/GDAL/PROJ in our folder is only a way to break things."""
    removed = []
    target = Path(target).resolve()
    for dist in list(md.distributions(path=[str(target)])):
        name = dist.metadata["Name"] or ""
        if canonical(name) not in pins:
            continue
        base = Path(dist._path).resolve() if hasattr(dist, "_path") else None  # the .dist-info folder
        for entry in dist.files or []:
            path = (target / entry).resolve()
            if target in path.parents and path.is_file():
                path.unlink()
        if base is not None and base.exists():
            shutil.rmtree(base, ignore_errors=True)
        removed.append(f"{name} {dist.version}")
        if log:
            log(f"kept QGIS's own {name} (removed the copy pip put in our folder)")
    # folders emptied by the removals (numpy/, numpy.libs/, __pycache__ ...)
    for path in sorted(target.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and path.name == "__pycache__" and not any(path.parent.glob("*.py")):
            shutil.rmtree(path, ignore_errors=True)
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    return removed


class Installer:
    """One install attempt. `run()` returns an InstallResult and never leaves a broken set live."""

    def __init__(self, layout: DepsLayout, options: InstallOptions | None = None, gpu: GpuInfo | None = None):
        self.layout = layout
        self.options = options or InstallOptions()
        self.gpu = gpu
        self.python = self.options.python or python_executable()
        self.log: Log = lambda line: None
        self.progress: Callable[[float], None] = lambda fraction: None
        self.is_cancelled: Callable[[], bool] = lambda: False

    # --- small pieces, public for tests ------------------------------------------------------------------
    def requirement_specs(self) -> list[str]:
        return [r.spec if isinstance(r, Requirement) else str(r) for r in self.options.requirements]

    def wants_torch(self) -> bool:
        return any(canonical(requirement_name(s)) == "torch" for s in self.requirement_specs())

    def pins(self) -> QgisPins:
        paths = self.options.qgis_site_paths
        reqs = [r if isinstance(r, Requirement) else Requirement(requirement_name(r), r, requirement_name(r), "run")
                for r in self.options.requirements]
        return qgis_pins(paths, exclude=[self.layout.root], requirements=reqs, protected=tuple(self.options.protected))

    def env(self) -> dict:
        env = dict(os.environ if self.options.env is None else self.options.env)
        env.update({"PYTHONNOUSERSITE": "1", "PYTHONUNBUFFERED": "1", "PIP_NO_INPUT": "1",
                    "PIP_DISABLE_PIP_VERSION_CHECK": "1", "SAM2_BUILD_CUDA": "0"})
        return env

    def pip_args(self, target: Path, constraints: Path, find_links: list[Path] = ()) -> list[str]:
        o = self.options
        args = [self.python, "-m", "pip", "install", "--target", str(target), "-c", str(constraints),
                "--progress-bar", "off", "--no-warn-script-location", "--prefer-binary",
                "--only-binary", ",".join(HEAVY_BINARY)]
        if o.offline_dir:
            args += ["--no-index", "--find-links", str(o.offline_dir)]
        elif o.index_url:
            args += ["--index-url", o.index_url]
        for folder in find_links:
            args += ["--find-links", str(folder)]
        if o.proxy and not o.offline_dir:
            args += ["--proxy", o.proxy]
        return args + list(o.extra_pip_args)

    def _run(self, cmd: list[str], what: str, env: dict | None = None) -> None:
        self.log("$ " + redact(" ".join(cmd)))
        code, tail = run_streamed(cmd, log=self.log, is_cancelled=self.is_cancelled, env=env or self.env())
        if code != 0:
            raise InstallError(f"{what} failed (pip exit code {code})", tail)

    # --- the attempt --------------------------------------------------------------------------------------
    def _attempt(self, staging: Path, variant: TorchVariant | None, pins: QgisPins, warnings: list) -> dict:
        o = self.options
        constraints = staging.with_name(staging.name + ".constraints.txt")
        wheelhouse = staging.with_name(staging.name + ".wheels")
        specs, relax_warnings = pip_requirements(self.requirement_specs(), pins)
        warnings.extend(w for w in relax_warnings if w not in warnings)
        no_deps = {canonical(k): v for k, v in o.no_deps.items()}
        main = [s for s in specs if canonical(requirement_name(s)) not in no_deps]
        late = [s for s in specs if canonical(requirement_name(s)) in no_deps]
        for spec in late:
            main += [x for x in no_deps[canonical(requirement_name(spec))] if x not in main]
        exact: dict[str, str] = {}
        find_links: list[Path] = []
        try:
            if variant is not None and self.wants_torch():
                if o.offline_dir:
                    exact = pick_offline_torch(Path(o.offline_dir), variant)
                elif variant.index_url:
                    self.log(f"torch: {variant.reason}; wheels from {variant.index_url}")
                    torch_specs = [s for s in main if canonical(requirement_name(s)) in TORCH_DISTS]
                    cmd = [self.python, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                           "--progress-bar", "off", "--index-url", variant.index_url, "-d", str(wheelhouse)]
                    if o.proxy:
                        cmd += ["--proxy", o.proxy]
                    try:
                        self._run(cmd + torch_specs, f"downloading torch ({variant.name})")
                    except InstallError as exc:
                        # e.g. a company mirror that only proxies PyPI: PyPI's own torch is the next best thing
                        note = (f"{exc}: download.pytorch.org not usable from here; taking torch from the "
                                "ordinary index instead (PyPI: CUDA build on Linux, CPU build on Windows)")
                        self.log(note)
                        warnings.append(note)
                    for dist in TORCH_DISTS:
                        versions = sorted(wheel_versions(wheelhouse, dist), key=_version_key, reverse=True)
                        if versions:
                            exact[dist] = versions[0]
                    if exact:
                        find_links.append(wheelhouse)
                self.progress(0.35)
            text = pins.constraints_text() + "".join(f"{d}=={v}\n" for d, v in exact.items())
            constraints.write_text(text, encoding="utf-8")
            self.log("constraints (QGIS's own versions" + (" + the chosen torch build" if exact else "") + "):")
            for line in text.splitlines()[1:]:
                self.log("  " + line)
            if main:
                self._run(self.pip_args(staging, constraints, find_links) + main, "installing the packages")
            self.progress(0.75)
            if late:
                env = self.env()
                env["PYTHONPATH"] = os.pathsep.join([str(staging)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
                self._run(self.pip_args(staging, constraints, find_links) + ["--no-deps", "--no-build-isolation"] + late,
                          "installing " + ", ".join(requirement_name(s) for s in late), env=env)
            self.progress(0.85)
            prune_pinned(staging, pins.pins, self.log)
        finally:
            constraints.unlink(missing_ok=True)
            shutil.rmtree(wheelhouse, ignore_errors=True)
        modules = [r.module if isinstance(r, Requirement) else requirement_name(r).replace("-", "_")
                   for r in o.requirements]
        want_cuda = bool(variant is not None and variant.cuda and self.wants_torch())
        self.log("checking the new set in a fresh Python process ...")
        result = verify_set(self.python, staging, modules, want_cuda, {k: v for k, (_, v) in pins.pins.items()},
                            env=self.env(), log=self.log, is_cancelled=self.is_cancelled, timeout=o.verify_timeout)
        self.progress(0.95)
        return result

    def run(self, log: Log | None = None, progress: Callable[[float], None] | None = None,
            is_cancelled: Callable[[], bool] | None = None) -> InstallResult:
        if log:
            self.log = log
        if progress:
            self.progress = progress
        if is_cancelled:
            self.is_cancelled = is_cancelled
        o = self.options
        warnings: list[str] = []
        previous = self.layout.active_dir()
        if not self.layout.acquire_lock():
            self.progress(1.0)
            return InstallResult(False, f"Another install is running ({self.layout.lock_file}); try again when it "
                                 "has finished (or delete the lock file if no QGIS is installing).", previous)
        try:
            pins = self.pins()
            warnings += pins.notes
            variant = None
            if self.wants_torch():
                if self.gpu is None and o.torch in ("auto", "pypi"):
                    self.gpu = detect_gpu()
                variant = choose_variant(self.gpu, force=None if o.torch == "auto" else o.torch)
            self.log(f"Python: {self.python}; folder: {self.layout.key_dir}")
            need_gb = (6.0 if variant is not None and variant.cuda else 1.5) if variant is not None else 0.2
            free_gb = shutil.disk_usage(self.layout.key_dir).free / 2**30
            if free_gb < need_gb:
                note = (f"only {free_gb:.1f} GB free on the disk of {self.layout.key_dir}; this install needs about "
                        f"{need_gb:.0f} GB (set RS2SAM2_DEPS_DIR to a folder on a larger disk)")
                self.log("warning: " + note)
                warnings.append(note)
            if variant is not None:
                self.log(f"torch: {variant.reason}")
            self.progress(0.02)
            attempts = [variant]
            if variant is not None and variant.cuda:
                attempts.append(cpu_variant("CPU build (fallback)"))
            last_error = ""
            for number, attempt in enumerate(attempts):
                staging = self.layout.new_staging_dir()
                try:
                    result = self._attempt(staging, attempt, pins, warnings)
                except Cancelled:
                    self.layout.discard(staging)
                    return InstallResult(False, "Install cancelled; the previous dependency set is unchanged.",
                                         previous, warnings=warnings)
                except InstallError as exc:
                    self.layout.discard(staging)
                    return InstallResult(False, f"{exc}; the previous dependency set is unchanged.", previous,
                                         variant=attempt.name if attempt else "", warnings=warnings,
                                         log_tail=exc.tail)
                except BaseException:
                    self.layout.discard(staging)
                    raise
                errors = result.get("errors") or {}
                numpy_info = result.get("numpy") or {}
                if numpy_info.get("ours"):
                    errors = dict(errors, numpy=f"numpy was loaded from our folder ({numpy_info.get('file')}), "
                                                "not QGIS's")
                if errors:
                    self.layout.discard(staging)
                    lines = [f"{k}: {v.splitlines()[-1] if v else v}" for k, v in errors.items()]
                    return InstallResult(False, "The new packages do not import (previous set unchanged): "
                                         + "; ".join(lines), previous, variant=attempt.name if attempt else "",
                                         verify=result, warnings=warnings)
                cuda = result.get("cuda")
                if attempt is not None and attempt.cuda and not (cuda or {}).get("ok"):
                    why = (cuda or {}).get("error", "CUDA was not checked")
                    last_error = f"CUDA build {attempt.name} does not run here ({why}); falling back to CPU wheels"
                    self.log(last_error)
                    warnings.append(last_error)
                    self.layout.discard(staging)
                    if number + 1 < len(attempts):
                        continue
                    return InstallResult(False, last_error, previous, verify=result, warnings=warnings)
                info = {"variant": attempt.name if attempt else "", "qgis_pins": {k: v for k, (_, v) in pins.pins.items()},
                        "torch": (result.get("torch") or {}).get("version", "")}
                final = self.layout.commit(staging, info)
                hidden = shadowed(final, o.qgis_site_paths, exclude=[self.layout.root])
                if hidden:
                    warnings.append("shadowed by QGIS's own copies (harmless unless an import fails): "
                                    + ", ".join(hidden))
                self.layout.cleanup()
                reasons = restart_reasons(final, self.layout.key_dir, info["qgis_pins"])
                message = f"Installed into {final}"
                if attempt is not None:
                    message += f" (torch {info['torch']}, {attempt.name}"
                    message += ", CUDA verified)" if (cuda or {}).get("ok") else ")"
                return InstallResult(True, message, final, variant=info["variant"],
                                     cuda_ok=(cuda or {}).get("ok") if attempt is not None and attempt.cuda else None,
                                     verify=result, warnings=warnings, restart_needed=bool(reasons),
                                     restart_reasons=reasons)
            return InstallResult(False, last_error or "nothing installed", previous, warnings=warnings)
        finally:
            self.layout.release_lock()
            self.progress(1.0)


# --------------------------------------------------------------------------------------------------------------
# Plugin start
# --------------------------------------------------------------------------------------------------------------
@dataclass
class StartupStatus:
    active_dir: Path | None
    missing: list
    message: str
    restart_reasons: list


def startup(profile_dir=None, layout: DepsLayout | None = None,
            requirements: Iterable[Requirement] = REQUIREMENTS) -> StartupStatus:
    """Call first thing at plugin start, before any heavy import: puts our live set on sys.path and says what is
    still missing (for a 'missing: torch, sam2 ... [Install]' line instead of a Python error)."""
    layout = layout or DepsLayout.for_profile(profile_dir)
    active = layout.activate()
    missing = check_missing(requirements)
    reasons = restart_reasons(active, layout.key_dir, layout.pointer().get("qgis_pins")) if active else []
    return StartupStatus(active, missing, missing_message(missing), reasons)


def proxy_url(enabled, proxy_type: str, host: str, port, user: str = "", password: str = "") -> str | None:
    """pip's --proxy value from QGIS's network settings (Settings > Options > Network). None: no proxy of
    QGIS's own (the "Default" type means the system proxy, which pip picks up from HTTP(S)_PROXY itself)."""
    if str(enabled).lower() not in ("1", "true", "yes") or not host:
        return None
    scheme = {"HttpProxy": "http", "HttpCachingProxy": "http", "Socks5Proxy": "socks5"}.get(str(proxy_type))
    if scheme is None:
        return None
    auth = ""
    if user:
        auth = urllib.parse.quote(str(user), safe="")
        if password:
            auth += ":" + urllib.parse.quote(str(password), safe="")
        auth += "@"
    port_text = f":{int(port)}" if str(port or "").strip() not in ("", "0") else ""
    return f"{scheme}://{auth}{host}{port_text}"


def offline_kit(pins: QgisPins, variant: TorchVariant, requirements: Iterable = REQUIREMENTS,
                no_deps: dict | None = None, python: str = "python") -> tuple[str, str]:
    """(constraints file text, commands) that fill a wheel folder `wheels/` for an offline install of this QGIS,
    to run on a connected machine with the same OS, CPU and Python version."""
    no_deps = {canonical(k): v for k, v in (NO_DEPS if no_deps is None else no_deps).items()}
    specs, _ = pip_requirements(list(requirements), pins)
    torch_specs = [s for s in specs if canonical(requirement_name(s)) in TORCH_DISTS]
    late = [s for s in specs if canonical(requirement_name(s)) in no_deps]
    main = [s for s in specs if canonical(requirement_name(s)) not in no_deps]
    for spec in late:
        main += [x for x in no_deps[canonical(requirement_name(spec))] if x not in main]
    pinned = [f"{name}=={version}" for _, (name, version) in sorted(pins.pins.items())]

    def q(items):
        return " ".join(f'"{x}"' for x in items)

    lines = [f"# rs2sam2 offline kit: torch build {variant.name} ({variant.reason})"]
    if torch_specs and variant.index_url:
        lines.append(f"{python} -m pip download -d wheels --no-deps --only-binary :all: --index-url "
                     f"{variant.index_url} {q(torch_specs)}")
    lines.append(f"{python} -m pip download -d wheels -c qgis-constraints.txt --prefer-binary --find-links wheels "
                 f"{q(main + pinned)}")
    if late:
        lines.append(f"{python} -m pip download -d wheels --no-deps {q(late)}")
    lines.append(f"{python} -m pip download -d wheels --only-binary :all: setuptools wheel ninja")
    return pins.constraints_text(), "\n".join(lines) + "\n"
