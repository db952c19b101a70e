"""Processing algorithm "Segment by text": a thin adapter over the engine (same SegmentOptions as CLI and dock).

Works in the toolbox, batch mode, graphical models and headless:
    qgis_process.bin run rs2sam2:segment_by_text --INPUT=scene.tif --QUERIES="the runway;white tanks" \
        --MODEL=demo --DEVICE=0 --OUTPUT=out.gpkg
QUERIES: one description per line (or separated by ';'); each description's polygons carry it in the `query` field.
"""
from __future__ import annotations

import os
import re
import tempfile

from qgis.core import (
    QgsFeatureRequest,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorDestination,
)
from qgis.PyQt.QtGui import QIcon

from .. import choices
from ..compat import (
    NUMBER_DOUBLE,
    NUMBER_INTEGER,
    PARAMETER_ADVANCED,
    SOURCE_VECTOR_POLYGON,
)
from ..icon import ICON_PATH
from ..masks import polygon_union_wkt
from ..model_choice import plugin_model
from ..pipeline.model_spec import ModelSpecError
from ..pipeline.options import SegmentOptions
from ..pipeline.request import ModelChoice, SegmentRequest

DEVICES = [value for value, _ in choices.devices()]
MODES = [value for value, _ in choices.modes()]
SCOPES = choices.scopes()
DEFAULTS = choices.engine_defaults()


def split_queries(text: str) -> list[str]:
    parts = []
    for line in (text or "").replace(";", "\n").splitlines():
        line = line.strip()
        if line and line not in parts:
            parts.append(line)
    return parts


class SegmentByTextAlgorithm(QgsProcessingAlgorithm):
    INPUT = "INPUT"
    QUERIES = "QUERIES"
    MODEL = "MODEL"
    DEVICE = "DEVICE"
    MODE = "MODE"
    SCOPE = "SCOPE"
    PRESENCE = "PRESENCE"
    REFINE = "REFINE_EDGES"
    TILE = "TILE"
    OVERLAP = "OVERLAP"
    THRESHOLD = "THRESHOLD"
    MIN_AREA = "MIN_AREA"
    SIMPLIFY = "SIMPLIFY"
    EXTENT = "EXTENT"
    MASK = "MASK"
    OUTPUT = "OUTPUT"
    DEVICE_USED = "DEVICE_USED"
    FEATURE_COUNT = "FEATURE_COUNT"

    def createInstance(self):  # noqa: N802
        return SegmentByTextAlgorithm()

    def name(self):
        return "segment_by_text"

    def displayName(self):  # noqa: N802
        return "Segment by text"

    def group(self):
        return ""

    def groupId(self):  # noqa: N802
        return ""

    def icon(self):
        return QIcon(ICON_PATH)

    def tags(self):
        return ["segmentation", "text", "referring", "sam2", "deep learning", "polygonize", "raster"]

    def shortHelpString(self):  # noqa: N802
        return ("Finds the objects a text describes (\"the white storage tanks\", \"the runway\") in a raster and "
                "returns them as polygons in the raster's CRS, with the attributes query, score, area_m2, model, "
                "device, precision, created_at, presence and rank.\n\n"
                "Answer for: the whole area (default) answers each description once for the area: 'the largest "
                "building' gives one polygon, 'the two white tanks' two, a description of something absent none. "
                "Each tile: every tile answers on its own. The whole area reads sizes ('the largest', 'the second "
                "largest', 'larger than 200 m2'), places ('in the top left', 'the northernmost', 'in the centre'), "
                "numbers ('the two white tanks'), relations ('closest to the road', 'north of the lake', 'next to the "
                "largest lake', 'within 50 m of the river', 'between the lake and the road', 'not next to the road'), "
                "exclusions ('every building except the largest one') and lists ('the lakes and ponds'); the log "
                "says how each description was read.\n\n"
                "Descriptions: one per line, or separated by ';'.\n"
                "Model: 'demo' (small, no download), a model_core preset name (weights from Model settings), a "
                "checkpoint file or release folder, or 'custom': the model code typed in Model settings > Your own "
                "model (a py:module:callable here is refused: a shared model or project must not run code).\n"
                "Device: auto uses CUDA when torch sees a GPU; the log says which device ran and why.\n"
                "Empty tile size / simplify = the engine's automatic choice (the model's input size; half a "
                "pixel).")

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "Raster layer"))
        self.addParameter(QgsProcessingParameterString(self.QUERIES, "Descriptions (one per line or ';'-separated)",
                                                       multiLine=True))
        self.addParameter(QgsProcessingParameterString(self.MODEL, "Model (demo, preset, checkpoint path, custom)",
                                                       defaultValue="demo"))
        self.addParameter(QgsProcessingParameterEnum(self.DEVICE, "Device", options=DEVICES, defaultValue=0))
        tile_min, tile_max = choices.limits("tile")
        tile = QgsProcessingParameterNumber(self.TILE, "Tile size (px; empty = the model's input size)",
                                            NUMBER_INTEGER, defaultValue=None, optional=True,
                                            minValue=tile_min, maxValue=tile_max)
        overlap_min, overlap_max = choices.limits("overlap")
        overlap = QgsProcessingParameterNumber(self.OVERLAP, "Tile overlap (fraction)", NUMBER_DOUBLE,
                                               defaultValue=DEFAULTS["overlap"], minValue=overlap_min,
                                               maxValue=overlap_max)
        threshold_min, threshold_max = choices.limits("threshold")
        threshold = QgsProcessingParameterNumber(self.THRESHOLD, "Probability threshold", NUMBER_DOUBLE,
                                                 defaultValue=DEFAULTS["threshold"], minValue=threshold_min,
                                                 maxValue=threshold_max)
        min_area = QgsProcessingParameterNumber(self.MIN_AREA, "Minimum polygon area (m²)", NUMBER_DOUBLE,
                                                defaultValue=DEFAULTS["min_area_m2"], minValue=0.0)
        simplify = QgsProcessingParameterNumber(self.SIMPLIFY, "Simplify tolerance (map units; empty = half a pixel)",
                                                NUMBER_DOUBLE, defaultValue=None,
                                                optional=True, minValue=0.0)
        extent = QgsProcessingParameterExtent(self.EXTENT, "Only inside this extent", optional=True)
        mask = QgsProcessingParameterFeatureSource(self.MASK, "Only inside these polygons (selected features when "
                                                   "'Selected features only' is ticked)",
                                                   [SOURCE_VECTOR_POLYGON], optional=True)
        mode = QgsProcessingParameterEnum(self.MODE, "Decision (analyst: probabilities at the tile's size; "
                                          "authors: the RS2-SAM2 release's own contract)", options=MODES,
                                          defaultValue=0)
        scope = QgsProcessingParameterEnum(self.SCOPE, "Answer for", options=[label for _, label in SCOPES],
                                           defaultValue=0)
        presence = QgsProcessingParameterNumber(self.PRESENCE, "Presence threshold (whole area: tiles the model "
                                                "believes do not show the description give nothing; empty = the "
                                                "model's calibrated one)", NUMBER_DOUBLE, defaultValue=None,
                                                optional=True, minValue=choices.limits("presence_threshold")[0],
                                                maxValue=choices.limits("presence_threshold")[1])
        refine = QgsProcessingParameterBoolean(self.REFINE, "Outlines on the image's edges (the answer is chosen "
                                               "on the model's own masks)", defaultValue=DEFAULTS["refine_edges"])
        for param in (scope, tile, overlap, threshold, min_area, simplify, extent, mask, mode, presence, refine):
            if param.name() in (self.TILE, self.SIMPLIFY, self.EXTENT, self.MASK, self.MODE, self.PRESENCE,
                                self.REFINE):
                param.setFlags(param.flags() | PARAMETER_ADVANCED)
            self.addParameter(param)
        self.addParameter(QgsProcessingParameterVectorDestination(self.OUTPUT, "Segments",
                                                                  type=SOURCE_VECTOR_POLYGON))
        self.addOutput(QgsProcessingOutputString(self.DEVICE_USED, "Device that ran"))
        self.addOutput(QgsProcessingOutputNumber(self.FEATURE_COUNT, "Number of polygons"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        if layer is None:
            raise QgsProcessingException("the input raster cannot be opened")
        if layer.providerType() != "gdal":
            raise QgsProcessingException(f"'{layer.name()}' is a {layer.providerType()} layer; rs2sam2 reads "
                                         "files (GeoTIFF, VRT, ...): save it as a GeoTIFF first")
        raster_path = layer.source().split("|")[0]
        queries = split_queries(self.parameterAsString(parameters, self.QUERIES, context))
        if not queries:
            raise QgsProcessingException("no description given: put one per line (or separate them with ';')")
        spec = self.parameterAsString(parameters, self.MODEL, context).strip() or "demo"
        try:
            model, allow_code = plugin_model(spec)  # a py: spec is refused here, before anything is imported
        except ModelSpecError as exc:
            raise QgsProcessingException(str(exc)) from None
        device = DEVICES[self.parameterAsEnum(parameters, self.DEVICE, context)]
        mode = MODES[self.parameterAsEnum(parameters, self.MODE, context)]
        out_path = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)

        values = {
            "overlap": self.parameterAsDouble(parameters, self.OVERLAP, context),
            "threshold": self.parameterAsDouble(parameters, self.THRESHOLD, context),
            "min_area_m2": self.parameterAsDouble(parameters, self.MIN_AREA, context),
            "single_layer": True,  # one output layer; the `query` field tells the descriptions apart
            "scope": SCOPES[self.parameterAsEnum(parameters, self.SCOPE, context)][0],
            "refine_edges": self.parameterAsBoolean(parameters, self.REFINE, context),
        }
        if parameters.get(self.PRESENCE) not in (None, ""):
            values["presence_threshold"] = self.parameterAsDouble(parameters, self.PRESENCE, context)
        if parameters.get(self.TILE) not in (None, ""):
            values["tile"] = self.parameterAsInt(parameters, self.TILE, context)
        if parameters.get(self.SIMPLIFY) not in (None, ""):
            values["simplify"] = self.parameterAsDouble(parameters, self.SIMPLIFY, context)
        if parameters.get(self.EXTENT) not in (None, ""):
            rect = self.parameterAsExtent(parameters, self.EXTENT, context, layer.crs())
            if not rect.isNull():
                values["extent"] = [rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum()]

        mask_wkt = None
        if parameters.get(self.MASK) not in (None, ""):
            source = self.parameterAsSource(parameters, self.MASK, context)
            if source is not None:
                mask_wkt = polygon_union_wkt(
                    (feature.geometry() for feature in source.getFeatures(QgsFeatureRequest().setNoAttributes())),
                    source.sourceCrs(), layer.crs(), context.transformContext())
                if mask_wkt is None:
                    raise QgsProcessingException("the mask layer has no polygons (or none selected)")

        target, layer_name = _split_destination(out_path)
        if not _is_file_path(target):  # e.g. memory: or a database: write a temporary GeoPackage
            target, layer_name = os.path.join(tempfile.mkdtemp(prefix="rs2sam2_"), "segments.gpkg"), None

        def progress(fraction, message=""):
            feedback.setProgress(100.0 * float(fraction))
            if message:
                feedback.setProgressText(message)

        from ..worker_client import run_job, segment_job

        feedback.pushInfo(f"Model '{spec}', device {device}; the engine runs in a separate Python process")
        # the engine runs in a child process: see worker.py (pyproj/rasterio wheels cannot load in qgis_process)
        try:
            from ..settings import weight_paths

            weights = weight_paths()
        except Exception:  # noqa: BLE001 - no settings: presets keep random parts
            weights = {}
        choice = ModelChoice(spec=model, allow_code=allow_code, weights=weights, device=device, mode=mode)
        request = SegmentRequest(raster=raster_path, queries=queries, output=target, model=choice,
                                 options=SegmentOptions(**values), mask_wkt=mask_wkt, layer=layer_name)
        reply = run_job(segment_job(request), on_progress=progress, is_cancelled=feedback.isCanceled)
        if reply.get("type") != "done":
            if reply.get("trace"):
                feedback.reportError(reply["trace"])
            if reply.get("kind") == "cancelled":
                raise QgsProcessingException("cancelled by the user; nothing was written")
            raise QgsProcessingException(reply.get("message") or "the run failed")
        stats = reply.get("stats") or {}
        for warning in stats.get("warnings") or []:
            feedback.pushWarning(warning)
        for query, how in (stats.get("plans") or {}).items():  # what the engine understood of each description
            feedback.pushInfo(f"'{query}' read as: {how}")
        device_used = stats.get("device", "")
        feedback.pushInfo(f"{reply['count']} polygons for {len(queries)} description(s) on {device_used} "
                          f"({stats.get('device_reason', '')}), {stats.get('precision', '')} "
                          f"({stats.get('precision_reason', '')})")
        output = target
        if target.lower().endswith(".gpkg") and reply.get("layers"):  # the layer this run wrote, not the first one
            output = f"{target}|layername={reply['layers'][0]}"
        return {self.OUTPUT: output, self.DEVICE_USED: device_used, self.FEATURE_COUNT: int(reply["count"])}


def _split_destination(path: str) -> tuple[str, str | None]:
    """'ogr:dbname=\'/x.gpkg\' table="name" (geom)' (Save to GeoPackage with a layer name) or '/x.gpkg' ->
    (file, layer name or None)."""
    match = re.match(r"""^ogr:dbname='(?P<db>[^']+)'\s+table="(?P<table>[^"]+)".*$""", path or "")
    if match:
        return match.group("db"), match.group("table")
    return path, None


def _is_file_path(path: str) -> bool:
    return bool(path) and not path.startswith(("memory:", "postgres:", "postgis:", "ogr:", "dbname=")) and \
        os.path.splitext(path.split("|")[0])[1] != ""
