"""Model settings: resumable, verified weight downloads (local HTTP server with Range support), the offline
message, the dependency check with its pip command, and the dialog itself (headless)."""
from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from test_plugin_support import qgis_env  # noqa: F401 - fixture (isolated QgsSettings)

from rs2sam2_qgis import weights

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    cut_after = None  # bytes sent before the connection drops (first request only)
    ranges_seen: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802
        start = 0
        header = self.headers.get("Range")
        type(self).ranges_seen.append(header)
        if header:
            start = int(header.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        else:
            self.send_response(200)
        body = PAYLOAD[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = type(self).cut_after
        if cut is not None:
            type(self).cut_after = None
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(body)


@pytest.fixture()
def server():
    _Handler.ranges_seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/weights.bin"
    httpd.shutdown()


def test_download_resumes_after_an_interruption_and_verifies_sha256(server, tmp_path):
    dest = tmp_path / "w" / "weights.bin"
    _Handler.cut_after = 300_000
    with pytest.raises(weights.DownloadError, match="resume"):
        weights.download(server, dest, sha256=SHA)
    part = dest.with_name("weights.bin.part")
    assert part.exists() and 0 < part.stat().st_size < len(PAYLOAD) and not dest.exists()
    kept = part.stat().st_size
    seen = []
    weights.download(server, dest, sha256=SHA, progress=lambda done, total: seen.append((done, total)))
    assert dest.read_bytes() == PAYLOAD and not part.exists()
    assert _Handler.ranges_seen[-1] == f"bytes={kept}-"  # resumed, not restarted
    assert seen[-1] == (len(PAYLOAD), len(PAYLOAD))


def test_download_without_checksum_is_checked_against_the_reported_size(server, tmp_path):
    dest = weights.download(server, tmp_path / "weights.bin")
    assert dest.stat().st_size == len(PAYLOAD)


def test_wrong_sha256_deletes_the_partial_file(server, tmp_path):
    dest = tmp_path / "weights.bin"
    with pytest.raises(weights.DownloadError, match="does not match"):
        weights.download(server, dest, sha256="0" * 64)
    assert not dest.exists() and not dest.with_name("weights.bin.part").exists()


def test_offline_gives_a_clear_message(tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(weights.DownloadError, match="offline") as info:
        weights.download(f"http://127.0.0.1:{port}/sam2_hiera_large.pt", tmp_path / "x.pt")
    assert "choose the file" in str(info.value)


def test_catalog_is_honest_about_verification():
    for entries in weights.CATALOG.values():
        for entry in entries:
            assert entry.url.startswith("https://")
            assert entry.sha256 is None  # nothing written down that we have not verified ourselves
            text = entry.verification_text()
            assert "after download" in text


def test_dependency_report_lists_missing_packages_with_the_pip_command(monkeypatch):
    from rs2sam2_qgis import bootstrap

    monkeypatch.setattr(bootstrap, "REQUIRED", bootstrap.REQUIRED + [("surely_not_installed_pkg", "surely-not>=1")])
    report = bootstrap.dependency_report()
    assert "surely_not_installed_pkg (required)" in report
    assert "-m pip install" in report and '"surely-not>=1"' in report and '"numpy<2"' in report
    assert "--target" in report
    # the installer comes first, with its own folder; the manual command is the labelled fallback
    assert report.index("Python dependencies") < report.index("-m pip install")
    assert str(bootstrap.installer_folder()) in report and "rs2sam2_deps" in str(bootstrap.installer_folder())
    assert "(manual)" in report and bootstrap.user_libs_dir().is_absolute()


def test_model_settings_dialog_checks_dependencies_and_saves_paths(qgis_env, tmp_path):
    from qgis.core import QgsSettings

    from rs2sam2_qgis import settings
    from rs2sam2_qgis.ui.model_settings import ModelSettingsDialog

    QgsSettings().remove("rs2sam2")
    dialog = ModelSettingsDialog()
    text = dialog.check_dependencies()
    assert "Diagnostics:" in text and dialog.report.toPlainText() == text
    dialog.file_widgets["sam2"].setFilePath(str(tmp_path / "sam2_hiera_large.pt"))
    dialog.accept()
    assert settings.weight_path("sam2") == str(tmp_path / "sam2_hiera_large.pt")
    QgsSettings().remove("rs2sam2")


def test_model_settings_dialog_is_where_model_code_is_typed(qgis_env):
    from qgis.core import QgsSettings

    from rs2sam2_qgis import settings
    from rs2sam2_qgis.ui.model_settings import ModelSettingsDialog

    QgsSettings().remove("rs2sam2")
    dialog = ModelSettingsDialog()
    dialog.custom_model_edit.setText("nano")  # not code: refused, nothing stored
    assert not dialog.save() and "py:module:callable" in dialog.status.text() and settings.custom_model() == ""
    dialog.custom_model_edit.setText(" py:colour_model:ColourModel ")
    dialog.accept()
    assert settings.custom_model() == "py:colour_model:ColourModel"
    assert ModelSettingsDialog().custom_model_edit.text() == "py:colour_model:ColourModel"
    QgsSettings().remove("rs2sam2")


def test_download_button_fetches_verifies_and_fills_the_path(qgis_env, server, tmp_path, monkeypatch):
    from qgis.core import QgsSettings
    from test_plugin_support import wait_until

    from rs2sam2_qgis import settings
    from rs2sam2_qgis.ui.model_settings import ModelSettingsDialog

    QgsSettings().remove("rs2sam2")
    entry = weights.WeightFile("sam2", "test weights", server, "sam2_test.pt", size=len(PAYLOAD), sha256=SHA)
    monkeypatch.setitem(weights.CATALOG, "sam2", [entry])
    monkeypatch.setattr(weights, "default_folder", lambda: tmp_path / "weights")
    dialog = ModelSettingsDialog()
    dialog.download_buttons["sam2"].click()
    assert dialog.download_buttons["sam2"].text() == "Cancel"
    assert wait_until(lambda: not dialog.tasks, 30)
    target = tmp_path / "weights" / "sam2_test.pt"
    assert target.read_bytes() == PAYLOAD
    assert dialog.file_widgets["sam2"].filePath() == str(target)
    assert settings.weight_path("sam2") == str(target)
    assert dialog.status.text().startswith("Downloaded and verified")
    QgsSettings().remove("rs2sam2")
