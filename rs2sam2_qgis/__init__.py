"""rs2sam2: segment georeferenced rasters by a text description (QGIS plugin).

This module must stay light: QGIS imports it at start-up, and `import rs2sam2_qgis.pipeline` must work without
QGIS. Everything QGIS- or torch-related is imported inside `classFactory` (torch itself only on the first run).
"""


def classFactory(iface):  # noqa: N802 - QGIS's name
    """QGIS entry point: returns the plugin object."""
    from .bootstrap import ensure_import_paths

    ensure_import_paths()
    from .plugin import Rs2Sam2Plugin

    return Rs2Sam2Plugin(iface)
