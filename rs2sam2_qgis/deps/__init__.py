"""Our pip dependencies (torch & co) for QGIS's own Python, in a folder of our own; see docs/INSTALL.md.

Importable without torch, Qt or QGIS (it is what runs when torch is missing): manager, layout, constraints,
torch_variant, runner, state, diagnostics are pure Python; task.py (QgsTask), dialog.py (Qt) and qgis_glue.py
import qgis only when used.
"""
from .layout import DepsLayout, platform_key
from .manager import Installer, InstallOptions, InstallResult, check_missing, missing_message, restart_reasons, startup

__all__ = ["DepsLayout", "platform_key", "InstallOptions", "InstallResult", "Installer", "check_missing",
           "missing_message", "restart_reasons", "startup"]
