"""Headless PyQGIS: the diagnostics report, the missing-dependency check at plugin start, the dialog and the
QgsTask wiring (through the session's one QgsApplication)."""
from __future__ import annotations

import sys

import pytest

from rs2sam2_qgis.deps import diagnostics, manager, state
from rs2sam2_qgis.deps.layout import DepsLayout
from rs2sam2_qgis.deps.requirements import Requirement

pytestmark = pytest.mark.qgis


@pytest.fixture
def deps_layout(tmp_path) -> DepsLayout:
    return DepsLayout(tmp_path / "profile" / "python" / "rs2sam2_deps")


def test_diagnostics_report_fields(qgis_app, deps_layout):
    from rs2sam2_qgis.deps import qgis_glue

    state.record_run(deps_layout.state_file, "cpu", "CUDA not used: torch.cuda.is_available() is False")
    try:
        raise ValueError("tile 3 failed")
    except ValueError as exc:
        state.record_error(deps_layout.state_file, exc)
    # the probe runs this test's Python (it has torch) with our (empty) folder appended
    text = diagnostics.report(deps_layout, qgis_glue.qgis_version(), python=sys.executable)
    for field in ("OS: ", "QGIS: 3.", "Python: 3.", "Plugin version: ", "Dependency folder: ", "Packages:",
                  "  torch: ", "  numpy: ", "torch: ", "CUDA available: ", "GPU: ", "NVIDIA driver: ",
                  "Last run device: cpu (CUDA not used", "Last error: ValueError: tile 3 failed",
                  "Last error trace:", "Traceback (most recent call last)"):
        assert field in text, f"{field!r} missing from:\n{text}"
    assert "(not running inside QGIS)" not in text
    assert str(deps_layout.key_dir) in text
    torch_line = next(line for line in text.splitlines() if line.startswith("torch: "))
    assert "CUDA build" in torch_line or "not available" in torch_line


def test_missing_dependency_check_at_start(qgis_app, deps_layout):
    fake = Requirement("rs2sam2-fake-dist", "rs2sam2-fake-dist>=1", "rs2sam2_fake_mod", "run")
    real = Requirement("numpy", "numpy", "numpy", "run")
    status = manager.startup(layout=deps_layout, requirements=[real, fake])
    assert status.active_dir is None and [m.module for m in status.missing] == ["rs2sam2_fake_mod"]
    assert status.message == "missing: rs2sam2_fake_mod"
    # once a set is live it goes on sys.path (appended) and its modules are found
    staging = deps_layout.new_staging_dir()
    (staging / "rs2sam2_fake_mod.py").write_text("VALUE = 1\n")
    live = deps_layout.commit(staging)
    try:
        status = manager.startup(layout=deps_layout, requirements=[real, fake])
        assert status.active_dir == live and status.missing == [] and status.message == ""
        assert sys.path[-1] == str(live)
    finally:
        sys.path.remove(str(live))


def test_dialog_and_task(qgis_app, deps_layout, tmp_path):
    from rs2sam2_qgis.deps.dialog import DependenciesDialog
    from rs2sam2_qgis.deps.task import InstallDepsTask

    dialog = DependenciesDialog(layout=deps_layout)
    labels = {b.text() for b in dialog.findChildren(type(dialog.install_button))}
    assert {"Install", "Repair", "Uninstall", "Diagnostics", "Copy"} <= labels
    assert dialog.text.isReadOnly() and str(deps_layout.key_dir) in dialog.status.text()
    wheels = tmp_path / "empty-wheels"
    wheels.mkdir()
    opts = manager.InstallOptions(requirements=["rs2sam2-no-such-package"], offline_dir=str(wheels),
                                  python=sys.executable, qgis_site_paths=[])
    lines, done = [], []
    task = InstallDepsTask(deps_layout, opts, on_log=lines.append, on_done=done.append)
    ok = task.run()          # in this thread: the same code the task manager runs in a worker
    task.finished(ok)
    assert not ok and done and not done[0].ok and any("pip" in line for line in lines)
    dialog._done(done[0])
    assert "FAILED" in dialog.text.toPlainText()
    assert "install:" in state.load(deps_layout.state_file)["last_error"]
    dialog.close()


def test_glue_state_and_proxy_from_qgis_settings(qgis_app, tmp_path, monkeypatch):
    from qgis.core import QgsSettings

    from rs2sam2_qgis.deps import qgis_glue

    monkeypatch.setenv("RS2SAM2_DEPS_DIR", str(tmp_path / "deps"))
    qgis_glue.record_run("cuda:0", "NVIDIA RTX A4000, 16376 MiB")
    qgis_glue.record_error(RuntimeError("CUDA out of memory"))
    data = state.load(tmp_path / "deps" / "run_state.json")
    assert data["last_device"] == "cuda:0" and "out of memory" in data["last_error"]
    s = QgsSettings()
    keys = ["proxy/proxyEnabled", "proxy/proxyType", "proxy/proxyHost", "proxy/proxyPort", "proxy/proxyUser",
            "proxy/proxyPassword"]
    saved = {k: s.value(k) for k in keys}
    try:
        for key, value in zip(keys, [True, "HttpProxy", "proxy.lan", "3128", "me", "s3cret"]):
            s.setValue(key, value)
        assert qgis_glue.qgis_proxy() == "http://me:s3cret@proxy.lan:3128"
        s.setValue("proxy/proxyEnabled", False)
        assert qgis_glue.qgis_proxy() is None
    finally:
        for key, value in saved.items():
            s.remove(key) if value is None else s.setValue(key, value)


def test_dialog_writes_offline_kit(qgis_app, deps_layout, tmp_path):
    from rs2sam2_qgis.deps.dialog import DependenciesDialog

    dialog = DependenciesDialog(layout=deps_layout)
    dialog.torch_combo.setCurrentIndex(dialog.torch_combo.findData("cpu"))
    assert dialog.write_offline_kit(str(tmp_path)) == str(tmp_path)
    assert "numpy==" in (tmp_path / "qgis-constraints.txt").read_text()
    assert "whl/cpu" in (tmp_path / "download-wheels.txt").read_text()
    assert "download-wheels.txt" in dialog.text.toPlainText()
    dialog.close()
