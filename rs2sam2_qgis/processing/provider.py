"""QgsProcessingProvider for rs2sam2 (id "rs2sam2")."""
from __future__ import annotations

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from ..icon import ICON_PATH


class Rs2Sam2Provider(QgsProcessingProvider):
    def id(self):
        return "rs2sam2"

    def name(self):
        return "rs2sam2"

    def longName(self):  # noqa: N802
        return "rs2sam2: segment rasters by text"

    def icon(self):
        return QIcon(ICON_PATH)

    def loadAlgorithms(self):  # noqa: N802
        from .segment_by_text import SegmentByTextAlgorithm

        self.addAlgorithm(SegmentByTextAlgorithm())
