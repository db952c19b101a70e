"""The few names whose spelling differs between QGIS 3.22 (Qt5) and QGIS 3.30+ / QGIS 4 (Qt6), chosen at import.

QGIS 3.30-3.36 moved these enums into the `Qgis` namespace; 3.22 only has their old homes, and QGIS 4 keeps the old
names only as deprecated aliases. Qt6 moved QAction from QtWidgets to QtGui. Everything else in the plugin is spelled
the same on both (scoped enums, exec()); tests/qt6_lint.py keeps it that way.
"""
from __future__ import annotations

from qgis.core import (
    Qgis,
    QgsMapLayerProxyModel,
    QgsProcessing,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterNumber,
    QgsWkbTypes,
)

try:  # Qt6
    from qgis.PyQt.QtGui import QAction
except ImportError:  # Qt5
    from qgis.PyQt.QtWidgets import QAction

if hasattr(Qgis, "ProcessingNumberParameterType"):  # 3.36+
    NUMBER_INTEGER = Qgis.ProcessingNumberParameterType.Integer
    NUMBER_DOUBLE = Qgis.ProcessingNumberParameterType.Double
else:
    NUMBER_INTEGER = QgsProcessingParameterNumber.Type.Integer
    NUMBER_DOUBLE = QgsProcessingParameterNumber.Type.Double

if hasattr(Qgis, "ProcessingSourceType"):  # 3.36+
    SOURCE_VECTOR_POLYGON = Qgis.ProcessingSourceType.VectorPolygon
else:
    SOURCE_VECTOR_POLYGON = QgsProcessing.SourceType.TypeVectorPolygon

if hasattr(Qgis, "ProcessingParameterFlag"):  # 3.36+
    PARAMETER_ADVANCED = Qgis.ProcessingParameterFlag.Advanced
else:
    PARAMETER_ADVANCED = QgsProcessingParameterDefinition.Flag.FlagAdvanced

if hasattr(Qgis, "LayerFilter"):  # 3.34+
    FILTER_RASTER = Qgis.LayerFilter.RasterLayer
    FILTER_POLYGON = Qgis.LayerFilter.PolygonLayer
else:
    FILTER_RASTER = QgsMapLayerProxyModel.Filter.RasterLayer
    FILTER_POLYGON = QgsMapLayerProxyModel.Filter.PolygonLayer

if hasattr(Qgis, "GeometryType"):  # 3.30+
    GEOMETRY_POLYGON = Qgis.GeometryType.Polygon
else:
    GEOMETRY_POLYGON = QgsWkbTypes.GeometryType.PolygonGeometry

__all__ = ["QAction", "NUMBER_INTEGER", "NUMBER_DOUBLE", "SOURCE_VECTOR_POLYGON", "PARAMETER_ADVANCED",
           "FILTER_RASTER", "FILTER_POLYGON", "GEOMETRY_POLYGON"]
