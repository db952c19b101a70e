"""What the pure dependency logic needs from QGIS: the profile folder, the proxy, the QGIS version."""
from __future__ import annotations

from .layout import DepsLayout
from .manager import proxy_url


def profile_dir() -> str:
    from qgis.core import QgsApplication

    return QgsApplication.qgisSettingsDirPath()


def layout() -> DepsLayout:
    """Our folder inside the active QGIS profile: <profile>/python/rs2sam2_deps/<py-os-arch>/."""
    try:
        return DepsLayout.for_profile(profile_dir())
    except Exception:  # noqa: BLE001 - outside QGIS
        return DepsLayout.for_profile(None)


def qgis_proxy() -> str | None:
    """pip's --proxy from QGIS's Settings > Options > Network (QgsSettings keys proxy/...)."""
    from qgis.core import QgsSettings

    s = QgsSettings()
    return proxy_url(s.value("proxy/proxyEnabled", False), s.value("proxy/proxyType", ""),
                     s.value("proxy/proxyHost", ""), s.value("proxy/proxyPort", ""),
                     s.value("proxy/proxyUser", ""), s.value("proxy/proxyPassword", ""))


def qgis_version() -> str:
    try:
        from qgis.core import Qgis

        return Qgis.version()  # e.g. "3.22.16-Białowieża"
    except Exception:  # noqa: BLE001
        return ""


def record_run(device: str, detail: str = "") -> None:
    """For the diagnostics report: the device the last run really used (never raises)."""
    try:
        from . import state

        state.record_run(layout().state_file, device, detail)
    except Exception:  # noqa: BLE001
        pass


def record_error(error, trace: str | None = None) -> None:
    """For the diagnostics report: the last error (an exception, or a message + trace); never raises."""
    try:
        from . import state

        state.record_error(layout().state_file, error, trace)
    except Exception:  # noqa: BLE001
        pass


def startup_status():
    """deps.manager.startup() for the running QGIS profile (activates our live set, lists what is missing)."""
    from .manager import startup

    return startup(layout=layout())
