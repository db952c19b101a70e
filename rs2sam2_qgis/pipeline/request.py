"""The job type of every front end. ModelChoice: which model and how it runs (CLI, batch local and Ray, the worker).
SegmentRequest: one segmentation job (raster, queries, model choice, options, output), built once by the CLI, the
dock or the Processing algorithm and carried as JSON to the plugin's worker process, which runs it the same way as
the CLI (request_run.run_request). Standard library only: the plugin builds requests inside QGIS's own process."""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .options import MODES, SegmentOptions


@dataclass
class ModelChoice:
    #: model spec (see model_spec.resolve_model): demo, a preset, a checkpoint file, a release folder, py:...; or a
    #: zero-argument callable returning a model (tests, benchmarks; it does not travel as JSON)
    spec: str | Callable[[], Any] = "demo"
    #: accept a py: model spec; True only where a person typed the spec (see model_spec.refuse_code)
    allow_code: bool = False
    #: part weight paths for a preset model (model_spec.PART_KINDS keys and "beit3_spm")
    weights: dict = field(default_factory=dict)
    device: str = "auto"
    precision: str = "auto"
    #: the Predictor's mode (options.MODES)
    mode: str = MODES[0]


@dataclass
class SegmentRequest:
    raster: str
    queries: list[str]
    #: .gpkg, .geojson or .shp
    output: str
    model: ModelChoice = field(default_factory=ModelChoice)
    #: every engine option but the mask, which travels as mask_wkt (mask_geometry must stay None here)
    options: SegmentOptions = field(default_factory=SegmentOptions)
    #: only pixels inside this (Multi)Polygon, WKT in the raster's CRS
    mask_wkt: str | None = None
    #: GeoPackage layer name (None: one per query, or one for all with options.single_layer)
    layer: str | None = None
    #: append to an existing layer of the same schema
    append: bool = False
    #: where to pickle the engine's SegmentResult for a later export (the dock's Export button)
    result_file: str | None = None

    def __post_init__(self) -> None:
        if self.options.mask_geometry is not None:
            raise ValueError("give the mask of a SegmentRequest as mask_wkt (it travels as text)")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only."""
        if not isinstance(self.model.spec, str):
            raise TypeError("a model given as a callable runs in this process only; give a model spec to send it")
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        options = dataclasses.asdict(self.options)
        del options["mask_geometry"]
        values["options"] = options
        values["queries"] = list(self.queries)
        values["model"] = dataclasses.asdict(self.model)
        return json.loads(json.dumps(values))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SegmentRequest:
        values = dict(values)
        options = {k: tuple(v) if isinstance(v, list) else v for k, v in (values.pop("options", None) or {}).items()}
        model = ModelChoice(**values.pop("model", None) or {})
        return cls(**values, model=model, options=SegmentOptions(**options))

    def segment_options(self) -> SegmentOptions:
        """The engine's options with the mask geometry (shapely is imported only when there is a mask)."""
        if not self.mask_wkt:
            return self.options
        import shapely.wkt

        return self.options.replace(mask_geometry=shapely.wkt.loads(self.mask_wkt))
