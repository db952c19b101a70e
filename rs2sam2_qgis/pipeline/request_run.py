"""Runs one SegmentRequest with a Predictor: segment, write the output, keep the result. The path below every
front end: the CLI calls it in its own process, the plugin's worker process for the dock and Processing."""
from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import TYPE_CHECKING

from .errors import Cancelled
from .export import write_vector
from .request import SegmentRequest
from .run import SegmentResult, segment_raster

if TYPE_CHECKING:
    from .tile_feature_cache import FeatureCache


def run_request(request: SegmentRequest, predictor, *, progress: Callable[[float, str], None] | None = None,
                is_cancelled: Callable[[], bool] | None = None,
                feature_cache: FeatureCache | None = None) -> tuple[SegmentResult, list[str]]:
    """(the engine's result, the layers written). A cancel before the write raises Cancelled: nothing written."""
    result = segment_raster(request.raster, request.queries, predictor, request.segment_options(), progress=progress,
                            is_cancelled=is_cancelled, feature_cache=feature_cache)
    if is_cancelled is not None and is_cancelled():
        raise Cancelled("cancelled")
    layers = write_vector(result, request.output, layer=request.layer, append=request.append)
    if request.result_file:
        with open(request.result_file, "wb") as fh:
            pickle.dump(result, fh)
    return result, list(layers)
