"""segment_raster: raster + text queries + predictor -> polygons per query (the engine's one entry point)."""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import rasterio
import shapely
from affine import Affine

from .batching import Prefetcher, batched
from .edges import edge_radius, onto_refined, refine_edges
from .errors import Cancelled, InputError
from .expression import class_phrase, parse_expression, split_conjunction
from .oom import BatchBackoff
from .options import SegmentOptions
from .polygonize import Polygonizer, disk_reader, memory_reader, polygonize_canvas
from .search import predict_presence, prunable, search
from .second_look import SecondLook, sure_absent
from .selection import deduplicate, pixel_points, select
from .source import open_source
from .stitching import GeoTiffSink, MemorySink, Stitcher
from .text_window import check_text_window
from .tile_feature_cache import FeatureCache, cache_usable, predict_cached, source_fingerprint, tile_key
from .tiling import TileGrid, aoi_valid, area_of_interest, mask_in_window, no_valid_pixel

ProgressFn = Callable[[float, str], None]
CancelFn = Callable[[], bool]


@dataclass
class RunStats:
    tiles_total: int = 0
    tiles_run: int = 0
    megapixels: float = 0.0          # area of interest, grid pixels
    seconds_total: float = 0.0
    seconds_read: float = 0.0        # reader thread (overlaps inference)
    seconds_inference: float = 0.0
    seconds_stitch: float = 0.0
    seconds_polygonize: float = 0.0
    device: str = ""
    device_reason: str = ""
    precision: str = ""
    precision_reason: str = ""
    model: str = ""
    canvas: str = ""                 # "memory" or "disk"
    tile: int = 0
    overlap_px: int = 0
    tiles_encoded: int = 0           # tiles whose features were computed (feature-reusable models; else 0)
    feature_cache_hits: int = 0      # tiles whose features came from the feature cache (memory or disk)
    scope: str = ""                  # "extent" or "tile"
    tiles_skipped: int = 0           # fine tiles the coarse-to-fine search did not need (extent scope)
    coarse_windows: int = 0          # overview windows and fine tiles looked at by the search (extent scope)
    forwards: int = 0                # model forwards, one per (tile or window, text) pair
    second_looks: int = 0            # of those, closer windows centred on candidates to judge them (second_look.py)
    plans: dict = field(default_factory=dict)  # query -> how it was read (extent scope)
    batch_size: int = 0              # (image, query) pairs per forward at the end of the run
    cuda_oom_halvings: int = 0       # times CUDA ran out of memory and the batch was halved (pipeline/oom.py)
    warnings: list = field(default_factory=list)  # one line each: the run went on, but the user should know

    @property
    def seconds_per_megapixel(self) -> float:
        return self.seconds_total / self.megapixels if self.megapixels else float("nan")


@dataclass
class SegmentResult:
    queries: list
    polygons: dict                   # query -> list[DetectedPolygon]
    crs_wkt: str | None              # None: pixel coordinates
    raster_path: str
    model: str
    created_at: str
    stats: RunStats = field(default_factory=RunStats)
    single_layer: bool = False       # GeoPackage: one layer with a query column instead of one per query

    def all_polygons(self) -> list:
        return [p for q in self.queries for p in self.polygons[q]]

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.polygons.values())

    @property
    def total_area_m2(self) -> float:
        return float(sum(p.area_m2 or 0.0 for p in self.all_polygons()))


def clean_queries(queries) -> list[str]:
    if isinstance(queries, str):
        queries = [queries]
    out = []
    for q in queries or []:
        q = " ".join(str(q).split())
        bad = next((c for c in q if unicodedata.category(c) == "Cc"), None)
        if bad is not None:
            raise InputError(f"the query {q!r} holds a control character (U+{ord(bad):04X}); type plain text, e.g. "
                             f'"the white storage tanks"')
        if not q:
            raise InputError('empty query; type what to find, e.g. "the white storage tanks"')
        if q not in out:
            out.append(q)
    if not out:
        raise InputError('no query given; type what to find, e.g. "the white storage tanks"')
    return out


def model_texts(queries: list[str], plans: dict) -> list[str]:
    """What the model is asked per tile: each query's noun phrase (extent scope) or the query itself, plus the
    anchors of relations ("the lake" of "the house next to the lake"), each once."""
    out: list[str] = []
    for q in queries:
        for t in (plans[q].texts if q in plans else (q,)):
            if t not in out:
                out.append(t)
    return out


def with_anchors(plans: dict) -> dict:
    """``plans`` with the plans of the anchors read as expressions of their own ("the largest lake" of "the tree
    next to the largest lake", and what "except ..." leaves out), keyed by the anchor's words, each before the
    plans that measure to it, so that ``answer`` can answer an anchor first and the search and the tile gates see
    its texts as a query's."""
    out: dict = {}

    def add(key, plan):
        for anchor in (plan.anchor_plan, plan.anchor2_plan, plan.excluded_plan):
            if anchor is not None:
                add(anchor.query, anchor)
        out.setdefault(key, plan)

    for key, plan in plans.items():
        add(key, plan)
    return out


def search_requests(texts: list[str], plans: dict) -> dict:
    """model text -> (prunable by the coarse-to-fine search, region or None): a text shared by several plans is
    pruned only if every plan allows it, and restricted to a region only if every plan names that region."""
    req: dict = {}
    for plan in plans.values():
        asked = [(t, prunable(plan), plan.region) for t in plan.candidate_texts]
        asked += [(t, False, None) for t in plan.anchor_texts]  # an anchor is looked for everywhere
        for t, prune, region in asked:
            if t in req:
                p0, r0 = req[t]
                req[t] = (p0 and prune, r0 if r0 == region else None)
            else:
                req[t] = (prune, region)
    return {t: req[t] for t in texts}


def _with_presence(polys: list, presence_tq: np.ndarray, grid: TileGrid, transform: Affine) -> list:
    """Each polygon's presence: the highest of the tiles that contain its representative point."""
    if not polys:
        return polys
    cols, rows = pixel_points(polys, transform)
    rs, cs = np.asarray(grid.rows), np.asarray(grid.cols)
    out = []
    for p, r, c in zip(polys, rows, cols):
        ri = np.nonzero((rs <= r) & (r < rs + grid.tile))[0]
        ci = np.nonzero((cs <= c) & (c < cs + grid.tile))[0]
        best = float(presence_tq[np.ix_(ri, ci)].max()) if len(ri) and len(ci) else 0.0
        out.append(dataclasses.replace(p, presence=best))
    return out


#: the tile gate of texts whose plan asks every member of a class (plurals, counts, superlatives, extremes,
#: relations): the presence head's own decision point. The calibrated threshold (higher) decides once for the whole
#: extent whether the class is there at all; a tile then only needs to more likely hold a member than not, so
#: members in weak tiles are neither lost from a set nor from the ranking that picks "the largest".
MEMBER_PRESENCE = 0.5


def tile_gates(plans: dict, texts: list[str], threshold: float) -> np.ndarray:
    """Per text, the presence a tile needs to contribute pixels: ``threshold``, or the lower member gate for a
    text some plan asks every member of (its other plans then keep only candidates at ``threshold``: ``answer``)."""
    members = {t for p in plans.values() if p.asks_members for t in p.candidate_texts}
    return np.array([min(MEMBER_PRESENCE, threshold) if t in members else threshold for t in texts], np.float32)


#: a plural's most present candidates whose steady closer look is tried before the class is held absent (``answer``)
CONFIRM_TRIES = 3


def answer(plans: dict, texts: list[str], found: dict, presence: np.ndarray, grid: TileGrid, transform: Affine,
           aoi_transform: Affine, aoi, threshold: float, second_look: SecondLook | None = None, ds=None) -> dict:
    """Per query, the candidates its plan keeps over the whole extent (selection.select). A plan that asks every
    member of a class is answered when some tile of the extent holds its text at ``threshold``; other plans keep
    candidates whose own tile does.

    With ``second_look`` (read through ``ds``, an open dataset of the source) the answer rests only on candidates
    that a closer look confirms: an object a singular or counted answer would keep is passed over for the next one
    when a closer window centred on it is sure it is absent, and a plan that asks every member is answered only if
    one of its most present candidates holds a steady closer look (second_look.SecondLook.steady) at
    ``threshold``, the test a singular's search confirms a candidate with (search.search). One tile at the
    threshold is a brittle proof that a class is in the scene: an unknown noun ("the swimming pools") can reach it
    on one red roof of the bundled sample, in a model fine-tuned a little (training/README.md, stage 7v). The
    members of a plural then pass the singular's veto, the largest first: a tile sure of houses can draw "the
    houses" on a lake beside them, which a closer look centred there is sure is no house (val, 2 mosaics: 1,270 px
    of one answer on water, closer presence 0.000; no house dropped; bench/results/raster_referring_notes.md).
    Each veto also asks the closer look for the noun without its colours (expression.class_phrase): a model can
    read "the orange car" off an orange roof, sure of it for "the orange car" and sure it is no "car" (val: 0.987
    against 0.001)."""
    cands = {t: _with_presence(found[t], presence[:, :, j], grid, transform) for j, t in enumerate(texts)}
    peak = {t: float(presence[:, :, j].max()) if presence.size else 0.0 for j, t in enumerate(texts)}

    def point(c) -> tuple[float, float]:
        (col,), (row,) = pixel_points([c], transform)
        return row, col

    def vetoed(points: list, text: str) -> np.ndarray:
        """Per point: a closer look centred there is sure it shows no ``text``, or, where it did not say so, no
        object of its noun (``class_phrase``)."""
        no = sure_absent(second_look(points, text, ds), threshold)
        noun = class_phrase(text)
        unsure = np.nonzero(~no)[0]
        if noun and len(unsure):
            no[unsure] = sure_absent(second_look([points[i] for i in unsure], noun, ds), threshold)
        return no

    def ruled_out(c) -> bool:
        return bool(vetoed([point(c)], c.query)[0])

    def held(c) -> bool:
        return bool(second_look.steady([point(c)], c.query, threshold, ds)[0] >= threshold)

    def members_held(members: list, text_of: dict) -> list:
        """A plural's members less those a closer look is sure are not its referent (``sure_absent``), the largest
        first and at most one per tile of the grid looked at, so that a class of thousands costs at most a second
        pass, not a forward per member; ranks renumbered."""
        looked = sorted(members, key=lambda c: -(c.area_m2 if c.area_m2 is not None else c.geometry.area))
        looked = looked[:len(grid.rows) * len(grid.cols)]
        dropped = set()
        for text in dict.fromkeys(text_of[id(c.geometry)] for c in looked):
            group = [c for c in looked if text_of[id(c.geometry)] == text]
            cols, rows = pixel_points(group, transform)
            dropped |= {id(c.geometry) for c, gone in zip(group, vetoed(list(zip(rows, cols)), text)) if gone}
        kept = [c for c in members if id(c.geometry) not in dropped]
        return [dataclasses.replace(c, rank=r) for r, c in enumerate(kept, start=1)]

    def anchors_of(text, anchor_plan) -> list | None:
        """What a relation measures to: the answer to an anchor read as an expression of its own (answered first:
        ``with_anchors``), else every object found for the anchor's words ("the lake": any lake)."""
        if anchor_plan is not None:
            return out[anchor_plan.query]
        return cands[text] if text else None

    accept = None if second_look is None else (lambda c: not ruled_out(c))
    out = {}
    for q, plan in plans.items():
        own = [c for t in plan.candidate_texts for c in cands[t]]
        if not plan.asks_members:
            own = [c for c in own if c.presence >= threshold]
        elif max(peak[t] for t in plan.candidate_texts) < threshold:
            own = []
        elif second_look is not None and not any(held(c) for c in
                                                 sorted(own, key=lambda c: -c.presence)[:CONFIRM_TRIES]):
            own = []
        if plan.alt_text:
            own = deduplicate(own)
        out[q] = select(plan, own, aoi_transform, aoi.height, aoi.width, anchors_of(plan.anchor_text, plan.anchor_plan),
                        accept, anchors_of(plan.anchor2_text, plan.anchor2_plan),
                        out[plan.excluded_plan.query] if plan.excluded_plan is not None else None)
        if second_look is not None and plan.count is None and out[q]:
            out[q] = members_held(out[q], {id(c.geometry): c.query for c in own})
    return out


def on_edges(answer: list, source: dict, outlines: dict, reach: float) -> list:
    """``answer`` with each polygon's outline from the refined canvas of the text it was found with (``source``:
    its geometry's id -> that text; ``outlines``: text -> refined polygons), in the answer's order."""
    out = list(answer)
    for text in dict.fromkeys(source.get(id(p.geometry)) for p in answer):
        idx = [i for i, p in enumerate(answer) if source.get(id(p.geometry)) == text]
        for i, p in zip(idx, onto_refined([answer[i] for i in idx], outlines.get(text, []), reach)):
            out[i] = p
    return out


def joined(query: str, answers: list[list]) -> list:
    """One query's answer from those of its referents ("the lakes and ponds"): together, a polygon two of them
    found once (selection.deduplicate), ranked anew by confidence, each carrying the query as typed."""
    if len(answers) == 1:
        return answers[0]
    return [dataclasses.replace(c, query=query, rank=r)
            for r, c in enumerate(deduplicate([c for a in answers for c in a]), start=1)]


def segment_raster(raster_path, queries: Sequence[str] | str, predictor, options: SegmentOptions | None = None,
                   progress: ProgressFn | None = None, is_cancelled: CancelFn | None = None,
                   feature_cache: FeatureCache | None = None) -> SegmentResult:
    """Find the queried objects in a raster; returns polygons per query in the raster's CRS.

    ``progress(fraction, message)`` is called as tiles finish; ``is_cancelled()`` is polled between batches and
    during polygonizing, and raises ``Cancelled`` (nothing is written by this function). Bad input raises
    ``InputError``.

    When the predictor's model has text-independent image features (``predictor.features_reusable``), each tile is
    encoded once and decoded for every query, through a per-tile feature cache: ``feature_cache`` (a FeatureCache
    kept by the caller across runs), else one built from the options (memory, plus ``options.feature_cache`` on
    disk).
    """
    t_start = time.perf_counter()
    options = (options or SegmentOptions()).validate()
    queries = clean_queries(queries)
    check_text_window(getattr(predictor, "model", None), queries)
    extent_scope = options.scope == "extent"
    # extent scope: each referent of a query its own plan ("the lakes and ponds": the lakes, the ponds)
    parts = {q: split_conjunction(q) if extent_scope else [q] for q in queries}
    sentences = list(dict.fromkeys(s for q in queries for s in parts[q]))
    plans = with_anchors({s: parse_expression(s) for s in sentences}) if extent_scope else {}
    texts = model_texts(sentences, plans)
    src = open_source(raster_path, options)
    mask_geom = options.mask_geometry
    if mask_geom is not None and src.pixel_coords:
        raise InputError("a mask polygon needs a raster with a CRS; drop the mask or georeference the raster")
    aoi = area_of_interest(src, options.extent, mask_geom)
    tile = int(options.tile or predictor.input_size)
    grid = TileGrid(src, tile, options.overlap, aoi)
    transform = src.grid_transform
    aoi_transform = transform * Affine.translation(aoi.col, aoi.row)
    created_at = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    stats = RunStats(tiles_total=len(grid), megapixels=aoi.height * aoi.width / 1e6,
                     device=str(predictor.device), device_reason=getattr(predictor, "device_reason", ""),
                     precision=getattr(predictor, "precision", ""),
                     precision_reason=getattr(predictor, "precision_reason", ""), model=predictor.model_name,
                     tile=tile, overlap_px=grid.overlap_px, scope=options.scope,
                     plans={q: " + ".join(plans[s].describe() for s in parts[q]) for q in queries if plans})
    T = len(texts)
    # outlines onto the image's edges (edges.py), never in the authors' own contract: a second canvas per text,
    # bands T..2T-1, drawn beside the model's own, on which the answer is chosen
    edges = edge_radius(tile, predictor.input_size) if options.refine_edges and \
        getattr(predictor, "mode", "analyst") != "authors" else None
    edges_on = str(getattr(predictor, "device", "cpu"))
    bands = 2 * T if edges else T
    canvas_mb = aoi.height * aoi.width * (4 * bands) / 2**20
    if canvas_mb > options.in_memory_max_mb:
        sink = GeoTiffSink(bands, aoi, options.threshold, aoi_transform, src.crs_wkt, options.temp_dir)
    else:
        sink = MemorySink(bands, aoi, options.threshold)
    stats.canvas = sink.kind
    cache = fingerprint = None
    if cache_usable(predictor):
        cache = feature_cache if feature_cache is not None else FeatureCache(
            options.feature_cache_memory_mb, options.feature_cache, options.feature_cache_max_mb)
        fingerprint = source_fingerprint(src, options, tile, predictor.model_digest())
        cache_before = (cache.stats.memory_hits + cache.stats.disk_hits, cache.stats.encoded)
    cancelled = is_cancelled or (lambda: False)

    def report(frac, msg):
        if progress is not None:
            progress(float(min(max(frac, 0.0), 1.0)), msg)

    done = 0
    searched = 0.0  # the share of the progress bar the search took (extent scope); the tiles fill the rest to 0.9
    n_tiles = len(grid)  # the tiles the run will read: the grid, or what the search leaves

    def tile_fraction() -> float:
        return searched + (0.9 - searched) * done / max(1, n_tiles)

    def search_progress(looked: int, planned: int) -> None:
        """The search's windows as a share of all it has planned and the grid, never going back."""
        nonlocal searched
        searched = max(searched, 0.9 * looked / max(1, planned + len(grid)))
        report(searched, f"searching the extent: {looked} of {planned} windows")

    backoff = BatchBackoff(getattr(predictor, "batch_size", None) or 1, lambda msg: report(tile_fraction(), msg))

    def cached_call(windows, rgbs):
        """predict(images, texts, **kw) through the feature cache for these windows ((row, col, side) each), or
        None when the model's features cannot be reused."""
        if cache is None:
            return None
        keys = [tile_key(fingerprint, (r, c, side, side), rgb) for (r, c, side), rgb in zip(windows, rgbs)]
        return lambda images, qs, **kw: predict_cached(predictor, cache, keys, images, qs, **kw)

    def cached_windows(windows, rgbs, qs):
        call = cached_call(windows, rgbs)
        return backoff.run(lambda bs: predict_presence(predictor, rgbs, qs, call, batch_size=bs))

    presence_threshold = options.presence_threshold
    if presence_threshold is None:
        presence_threshold = float(getattr(predictor, "presence_threshold", 0.5))
    gates = tile_gates(plans, texts, presence_threshold) if extent_scope else None
    second_look = SecondLook(src, tile, cached_windows, options.batch_size, cancelled) if extent_scope else None
    # extent scope: which fine tiles each text needs (coarse-to-fine search), and each tile's presence per text
    fine_needed: dict = {t: None for t in texts}
    promoted: dict = {}  # text -> {fine tile start: the presence its closer look gave} (search.SearchResult)
    searched_valid = True  # the search saw image data (else no tile running is the raster's fault, not absence)
    presence = np.zeros((len(grid.rows), len(grid.cols), T), np.float32) if extent_scope else None
    if extent_scope:
        report(0.0, "searching the extent")
        with rasterio.Env(GDAL_CACHEMAX=options.gdal_cache_mb * 2**20), src.open() as ds:
            found = search(src, ds, aoi, grid.rows, grid.cols, tile, predictor, search_requests(texts, plans),
                           levels=int(options.search_levels), batch_size=options.batch_size,
                           beam=int(options.search_beam), confirm=presence_threshold,
                           mask_threshold=options.threshold, min_pixels=options.min_pixels, cancelled=cancelled,
                           predict_windows=cached_windows, second_look=second_look, progress=search_progress,
                           likely=min(MEMBER_PRESENCE, presence_threshold),
                           analysed=None if mask_geom is None else lambda rows, cols: shapely.contains_xy(
                               mask_geom, *(transform * (cols, rows))))
        fine_needed, promoted = found.fine, found.promoted
        stats.coarse_windows, stats.forwards = found.windows_read, found.forwards
        searched_valid = found.windows_valid > 0 or not found.windows_read
    run_all = any(v is None for v in fine_needed.values())
    wanted = set().union(*[v for v in fine_needed.values() if v is not None]) if not run_all else None
    tiles = [t for t in grid if wanted is None or (t.row, t.col) in wanted]
    n_tiles = len(tiles)
    stats.tiles_skipped = len(grid) - len(tiles)
    row_index = {r: i for i, r in enumerate(grid.rows)}
    col_index = {c: i for i, c in enumerate(grid.cols)}

    def produce():
        with rasterio.Env(GDAL_CACHEMAX=options.gdal_cache_mb * 2**20), src.open() as ds:
            for batch in batched(tiles, options.batch_size):
                items = []
                for t in batch:
                    rgb, valid = src.read(ds, t.row, t.col, t.size, t.size)
                    if mask_geom is not None:
                        valid &= mask_in_window(mask_geom, transform, t.row, t.col, t.size, t.size)
                    items.append((t, rgb, valid, aoi_valid(valid, t, aoi)))
                yield items

    def infer(run):
        """(probabilities [n,T,h,w] of the tiles that run, opinion [n,T] or None); in extent scope a tile without
        the referent (below its gate, or not needed by the search) abstains for that text (stitching.py). A tile's
        presence is its own, or that of the steady closer look that promoted it in the search, if higher."""
        rgbs = np.stack([it[1] for it in run])
        call = cached_call([(it[0].row, it[0].col, it[0].size) for it in run], rgbs)
        if not extent_scope:
            return backoff.run(lambda bs: call(rgbs, texts, batch_size=bs) if call else
                               predictor.predict(rgbs, texts, bs)), None
        prob, pres = backoff.run(lambda bs: predict_presence(predictor, rgbs, texts, call, batch_size=bs))
        opinion = np.ones(pres.shape, bool)
        for k, it in enumerate(run):
            t = it[0]
            for j, text in enumerate(texts):
                pres[k, j] = max(pres[k, j], promoted.get(text, {}).get((t.row, t.col), 0.0))
                need = fine_needed[text]
                if pres[k, j] < gates[j] or (need is not None and (t.row, t.col) not in need):
                    opinion[k, j] = False
            presence[row_index[t.row], col_index[t.col]] = pres[k]
        return prob, opinion

    try:
        with rasterio.Env(GDAL_CACHEMAX=options.gdal_cache_mb * 2**20):
            stitcher = Stitcher(bands, aoi, tile, grid.overlap_px, sink, grid.rows, grid.cols, abstain=extent_scope)
            report(searched, f"{len(tiles)} of {len(grid)} tiles of {tile} px on {stats.device} ({stats.precision})")
            with Prefetcher(produce, depth=options.prefetch) as reader:
                for items in reader:
                    if cancelled():
                        raise Cancelled()
                    run = [it for it in items if it[3]]
                    if run:
                        t0 = time.perf_counter()
                        prob, opinion = infer(run)
                        stats.seconds_inference += time.perf_counter() - t0
                        stats.tiles_run += len(run)
                        stats.forwards += len(run) * T
                    t0 = time.perf_counter()
                    k = 0
                    for t, rgb, valid, has in items:
                        if has:
                            p, o = prob[k], None if opinion is None else opinion[k]
                            if edges:
                                p = np.concatenate([p, refine_edges(p, rgb, edges, options.threshold,
                                                                    device=edges_on)])
                                o = None if o is None else np.concatenate([o, o])
                            stitcher.add(t, p, valid, o)
                            k += 1
                    stats.seconds_stitch += time.perf_counter() - t0
                    done += len(items)
                    report(tile_fraction(), f"tile {done}/{len(tiles)}")
                stats.seconds_read = reader.seconds_busy
            stats.batch_size, stats.cuda_oom_halvings = backoff.batch_size, backoff.halvings
            if stats.tiles_run == 0 and (tiles or not searched_valid):
                raise no_valid_pixel(src, options)
            if cancelled():
                raise Cancelled()
            t0 = time.perf_counter()
            stitcher.finish()
            stats.seconds_stitch += time.perf_counter() - t0

            t0 = time.perf_counter()
            simplify = 0.5 * src.pixel_size if options.simplify is None else float(options.simplify)
            if src.pixel_coords and options.simplify is None:
                simplify = 0.5
            poly = Polygonizer(aoi_transform, src.crs_wkt, options.threshold, simplify, options.min_area_m2,
                               options.min_pixels, options.fill_holes_m2, predictor.model_name, created_at,
                               options.connectivity, stats.device, stats.precision)
            found_polygons = {}
            with contextlib.ExitStack() as stack:
                if sink.kind != "memory":
                    mds = stack.enter_context(rasterio.open(sink.mask_path))
                    pds = stack.enter_context(rasterio.open(sink.prob_path))

                def drawn(q: str, band: int) -> tuple[list, str | None]:
                    read_mask, read_prob = (memory_reader(sink.prob[band], options.threshold)
                                            if sink.kind == "memory" else disk_reader(mds, pds, band + 1))
                    return polygonize_canvas(poly, q, read_mask, read_prob, aoi.height, aoi.width,
                                             options.connectivity, cancelled, options.polygonize_max_edges)

                for i, q in enumerate(texts):
                    report(0.9 + 0.05 * i / T, f"polygonizing '{q}'")
                    found_polygons[q], warning = drawn(q, i)
                    if warning:
                        stats.warnings.append(warning)
                if extent_scope:
                    with src.open() as ds:  # one open for every second look of the answers
                        answered = answer(plans, texts, found_polygons, presence, grid, transform, aoi_transform,
                                          aoi, presence_threshold, second_look, ds)
                    polygons = {q: joined(q, [answered[s] for s in parts[q]]) for q in queries}
                    stats.second_looks = second_look.forwards
                    stats.forwards += second_look.forwards
                else:
                    polygons = found_polygons
                if edges:  # the answer chosen, each of its polygons gets its outline on the image's edges
                    source = {id(c.geometry): t for t, found in found_polygons.items() for c in found}
                    answering = list(dict.fromkeys(source[id(p.geometry)] for ps in polygons.values() for p in ps
                                                   if id(p.geometry) in source))
                    outlines = {}
                    for k, q in enumerate(answering):  # only the texts an answer was found with
                        report(0.95 + 0.05 * k / len(answering), f"outlining '{q}'")
                        outlines[q] = drawn(q, T + texts.index(q))[0]
                    reach = edges * float(np.sqrt(abs(aoi_transform.determinant)))  # the radius in map units
                    polygons = {q: on_edges(polygons[q], source, outlines, reach) for q in polygons}
            stats.seconds_polygonize = time.perf_counter() - t0
            if cache is not None:  # the search, the fine tiles and the second looks
                stats.feature_cache_hits = cache.stats.memory_hits + cache.stats.disk_hits - cache_before[0]
                stats.tiles_encoded = cache.stats.encoded - cache_before[1]
    finally:
        sink.cleanup()
    stats.seconds_total = time.perf_counter() - t_start
    n = sum(len(v) for v in polygons.values())
    report(1.0, f"{n} polygon(s) in {stats.seconds_total:.1f} s on {stats.device} ({stats.precision})")
    return SegmentResult(queries=queries, polygons=polygons, crs_wkt=src.crs_wkt, raster_path=str(raster_path),
                         model=predictor.model_name, created_at=created_at, stats=stats,
                         single_layer=options.single_layer)
