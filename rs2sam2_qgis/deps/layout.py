"""Where our pip packages live, and the switch that makes a new set live only once it works.

    <QGIS profile>/python/rs2sam2_deps/                    root (RS2SAM2_DEPS_DIR overrides it)
        run_state.json                                      last device / last error (see state.py)
        py311-linux-x86_64/                                 one folder per Python version, OS and CPU
            current.json                                    pointer: {"active": "set-...", "switched_at": ...}
            set-20261123T131500-3f2a/                       a complete `pip --target` set (the active one)
            set-20261123T140210-9c01.partial/               an install in progress (or a failed one)

Only the pointer decides which set is live; it is replaced atomically (os.replace) after an install has been
verified, so a failed or cancelled install leaves the previous working set as it was. Nothing here ever writes
into QGIS's own site-packages. Pure Python: no Qt, no QGIS.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shutil
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT_NAME = "rs2sam2_deps"
POINTER = "current.json"
PARTIAL_SUFFIX = ".partial"
ENV_ROOT = "RS2SAM2_DEPS_DIR"


def platform_key(version_info=None, sys_platform: str | None = None, machine: str | None = None,
                 abiflags: str | None = None) -> str:
    """`py311-linux-x86_64`: wheels are only valid for one Python minor version, OS and CPU architecture."""
    vi = version_info or sys.version_info
    sp = (sys_platform or sys.platform).lower()
    if sp.startswith("win"):
        os_name = "win"
    elif sp == "darwin":
        os_name = "macos"
    elif sp.startswith("linux"):
        os_name = "linux"
    else:
        os_name = "".join(ch for ch in sp if ch.isalnum()) or "unknown"
    arch = (machine if machine is not None else platform.machine()).lower()
    arch = {"amd64": "x86_64", "x64": "x86_64", "aarch64": "arm64", "armv8": "arm64", "i686": "x86",
            "i386": "x86"}.get(arch, arch) or "unknown"
    flags = abiflags if abiflags is not None else getattr(sys, "abiflags", "")
    tag = "t" if "t" in flags else ""  # free-threaded builds need their own wheels
    return f"py{vi[0]}{vi[1]}{tag}-{os_name}-{arch}"


def default_root(profile_dir: str | os.PathLike | None = None) -> Path:
    """`<profile>/python/rs2sam2_deps`; RS2SAM2_DEPS_DIR wins; outside QGIS ~/.local/share/rs2sam2/..."""
    env = os.environ.get(ENV_ROOT)
    if env:
        return Path(env)
    if profile_dir:
        return Path(profile_dir) / "python" / ROOT_NAME
    return Path.home() / ".local" / "share" / "rs2sam2" / ROOT_NAME


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S")


@dataclass
class DepsLayout:
    root: Path
    key: str = ""

    def __post_init__(self):
        self.root = Path(self.root)
        if not self.key:
            self.key = platform_key()

    @classmethod
    def for_profile(cls, profile_dir=None, key: str = "") -> DepsLayout:
        return cls(default_root(profile_dir), key)

    @property
    def key_dir(self) -> Path:
        return self.root / self.key

    @property
    def pointer_file(self) -> Path:
        return self.key_dir / POINTER

    @property
    def state_file(self) -> Path:
        return self.root / "run_state.json"

    # --- reading the pointer -------------------------------------------------------------------------------
    def pointer(self) -> dict:
        try:
            data = json.loads(self.pointer_file.read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def active_dir(self) -> Path | None:
        """The live set, or None (nothing installed yet, or the pointer names a folder that is gone)."""
        name = self.pointer().get("active")
        if not name or "/" in name or "\\" in name or name.endswith(PARTIAL_SUFFIX):
            return None
        path = self.key_dir / name
        return path if path.is_dir() else None

    # --- installing ----------------------------------------------------------------------------------------
    def new_staging_dir(self) -> Path:
        """A fresh, empty folder for one install attempt (`set-<utc time>-<id>.partial`)."""
        self.key_dir.mkdir(parents=True, exist_ok=True)
        path = self.key_dir / f"set-{_now()}-{uuid.uuid4().hex[:4]}{PARTIAL_SUFFIX}"
        path.mkdir()
        return path

    def commit(self, staging: Path, info: dict | None = None) -> Path:
        """Make a verified staging folder the live set: rename it, then replace the pointer atomically."""
        staging = Path(staging)
        if staging.parent != self.key_dir or not staging.is_dir():
            raise ValueError(f"not a staging folder of this layout: {staging}")
        final = staging.with_name(staging.name[: -len(PARTIAL_SUFFIX)]) if staging.name.endswith(
            PARTIAL_SUFFIX) else staging
        if final != staging:
            os.replace(staging, final)
        previous = self.pointer().get("active")
        data = {"active": final.name, "previous": previous, "switched_at": _now(),
                "python": sys.version.split()[0]}
        data.update(info or {})
        tmp = self.pointer_file.with_name(POINTER + f".{uuid.uuid4().hex[:6]}.tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.pointer_file)
        return final

    def discard(self, staging: Path) -> None:
        """Remove a failed/cancelled attempt (best effort; never the live set)."""
        staging = Path(staging)
        if staging == self.active_dir() or staging.parent != self.key_dir:
            return
        shutil.rmtree(staging, ignore_errors=True)

    def sets(self) -> list[Path]:
        if not self.key_dir.is_dir():
            return []
        return sorted(p for p in self.key_dir.iterdir() if p.is_dir() and p.name.startswith("set-"))

    def cleanup(self, keep_active: bool = True) -> list[Path]:
        """Delete every set but the live one (files still loaded on Windows may stay until next time)."""
        active = self.active_dir()
        removed = []
        for path in self.sets():
            if keep_active and path == active:
                continue
            shutil.rmtree(path, ignore_errors=True)
            if not path.exists():
                removed.append(path)
        return removed

    def uninstall(self) -> bool:
        """Remove our folder for this Python (pointer and all sets); QGIS's own packages are never touched."""
        if not self.key_dir.exists():
            return True
        try:
            self.pointer_file.unlink()
        except OSError:
            pass
        shutil.rmtree(self.key_dir, ignore_errors=True)
        return not self.key_dir.exists()

    # --- one install at a time (two QGIS windows share the profile) ------------------------------------------
    @property
    def lock_file(self) -> Path:
        return self.key_dir / "install.lock"

    def acquire_lock(self, stale_after_s: float = 6 * 3600) -> bool:
        """Create install.lock (False when another live install holds it; a dead or very old one is taken over)."""
        self.key_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.lock_file, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                if not self._lock_is_stale(stale_after_s):
                    return False
                try:
                    self.lock_file.unlink()
                except OSError:
                    return False
                continue
            with os.fdopen(fd, "w") as handle:
                json.dump({"pid": os.getpid(), "time": _dt.datetime.now(_dt.timezone.utc).timestamp()}, handle)
            return True
        return False

    def _lock_is_stale(self, stale_after_s: float) -> bool:
        try:
            data = json.loads(self.lock_file.read_text(encoding="utf-8"))
            pid, when = int(data["pid"]), float(data["time"])
        except (OSError, ValueError, KeyError, TypeError):
            return True
        if _dt.datetime.now(_dt.timezone.utc).timestamp() - when > stale_after_s:
            return True
        if os.name != "nt":
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            except OSError:
                return False
        return False

    def release_lock(self) -> None:
        try:
            data = json.loads(self.lock_file.read_text(encoding="utf-8"))
            if int(data.get("pid", -1)) == os.getpid():
                self.lock_file.unlink()
        except (OSError, ValueError, TypeError):
            pass

    # --- at plugin start -----------------------------------------------------------------------------------
    def activate(self, sys_path: list | None = None, prepend: bool = False) -> Path | None:
        """Put the live set on sys.path (appended: QGIS's own packages win). Returns it, or None."""
        path = self.active_dir()
        if path is None:
            return None
        target = sys.path if sys_path is None else sys_path
        text = str(path)
        # drop sets of ours that a previous activation put there (after a switch in the same session)
        for entry in list(target):
            if entry != text and str(Path(entry).parent) == str(self.key_dir):
                target.remove(entry)
        if text not in target:
            if prepend:
                target.insert(0, text)
            else:
                target.append(text)
            import importlib

            importlib.invalidate_caches()
        return path
