"""Outlines on the image's edges (rs2sam2_qgis/pipeline/edges.py): the refinement moves an outline onto the colour
edge near it and nothing else, and the engine chooses its answer on the model's own canvas."""
import numpy as np
import shapely
from affine import Affine

from model_core.predictor import Predictor
from rs2sam2_qgis.pipeline import DetectedPolygon, SegmentOptions, segment_raster
from rs2sam2_qgis.pipeline.edges import edge_radius, onto_refined, refine_edges
from tests.colour_model import ColourModel, rgb_scene, write_raster

T = Affine(0.5, 0, 500000.0, 0, -0.5, 5000000.0)


def _blurred_square(size=64, lo=20, hi=40, shift=1, ramp=4):
    """A white square on grey (rows and columns lo..hi) and a probability map of it drawn ``shift`` px too far
    right and down, its edge ramped over ``ramp`` px as an enlarged coarse mask is."""
    rgb = np.full((size, size, 3), 90, np.uint8)
    rgb[lo:hi, lo:hi] = 250
    x = np.arange(size) + 0.5
    edge = np.clip((x - (lo + shift)) / ramp + 0.5, 0, 1) * np.clip(((hi + shift) - x) / ramp + 0.5, 0, 1)
    return rgb, np.outer(edge, edge).astype(np.float32)[None]


def test_the_outline_moves_onto_the_colour_edge_and_nothing_far_from_it_changes():
    rgb, prob = _blurred_square()
    truth = np.zeros((64, 64), bool)
    truth[20:40, 20:40] = True
    out = refine_edges(prob, rgb, radius=2)
    before, after = prob[0] >= 0.5, out[0] >= 0.5
    iou = lambda m: (m & truth).sum() / (m | truth).sum()  # noqa: E731
    assert iou(before) < 0.85 and iou(after) > 0.95  # 0.826 -> 0.985
    assert out.shape == prob.shape and out.dtype == np.float32 and 0.0 <= out.min() and out.max() <= 1.0
    inside = np.zeros((64, 64), bool)
    inside[28:32, 28:32] = True  # 6 px and more from the outline either way: untouched
    assert np.array_equal(out[0][inside], prob[0][inside]) and out[0][0, 0] == prob[0][0, 0]


def test_a_faint_blob_under_the_threshold_stays_under_it():
    rgb, prob = _blurred_square()
    faint = prob * 0.45
    assert np.array_equal(refine_edges(faint, rgb, radius=2), faint)


def test_the_radius_is_half_a_mask_cell_of_the_tile():
    assert edge_radius(128, 128) == 2 and edge_radius(1024, 1024) == 2
    assert edge_radius(256, 128) == 4 and edge_radius(64, 1024) == 1


def _det(geom, area_m2=None, score=0.9):
    return DetectedPolygon(geom, "q", score, area_m2 if area_m2 is not None else geom.area, "m", "t")


def test_an_answer_takes_its_own_refined_outline_not_its_neighbours():
    raw = _det(shapely.box(0, 0, 10, 10), area_m2=400.0)                 # 4 m2 per map unit2 (say)
    mine = _det(shapely.box(1, 0, 11, 10))                               # drawn 1 unit to the right
    neighbour = _det(shapely.box(10.5, 0, 20, 10))                      # touches the answer's zone only
    (out,) = onto_refined([raw], [neighbour, mine], reach=2.0)
    assert out.geometry.equals(shapely.box(1, 0, 11, 10)) and out.area_m2 == 400.0
    assert (out.query, out.score) == (raw.query, raw.score)
    # a refined outline merged with a neighbour stays within reach of the answer
    (merged,) = onto_refined([raw], [_det(shapely.box(0, 0, 30, 10))], reach=2.0)
    assert merged.geometry.equals(shapely.box(0, 0, 12, 10))
    # a speck the refinement thinned away keeps its own outline
    (kept,) = onto_refined([raw], [_det(shapely.box(0, 0, 3, 3))], reach=2.0)
    assert kept is raw


def test_the_engine_chooses_on_the_models_canvas_and_draws_on_the_images_edges(tmp_path):
    """A model that draws its masks on 4 px cells (as SAM's decoder does) outlines boxes whose edges fall between
    cells a little off; refined, the outlines lie on the boxes' edges, while the same boxes answer with the same
    ranks and scores. The authors' mode is never refined."""
    red, blue, grey = (230, 20, 20), (20, 20, 230), (90, 90, 90)
    boxes = [(21, 22, 51, 61, red), (70, 91, 89, 118, red), (102, 10, 121, 31, blue)]
    raster = write_raster(tmp_path / "boxes.tif", rgb_scene(128, 128, boxes, grey), transform=T)
    model = Predictor(ColourModel(64, out_stride=4), device="cpu")
    opts = SegmentOptions(tile=64, overlap=0.25)
    truth = shapely.union_all([shapely.box(*(T * (c0, r1)), *(T * (c1, r0))) for r0, c0, r1, c1, _ in boxes[:2]])
    for query in ("the red boxes", "the largest red box", "the blue box"):
        on = segment_raster(raster, query, model, opts).polygons[query]
        off = segment_raster(raster, query, model, opts.replace(refine_edges=False)).polygons[query]
        assert [(p.rank, round(p.score, 6)) for p in on] == [(p.rank, round(p.score, 6)) for p in off]
        assert all(a.geometry.intersection(b.geometry).area > 0.5 * b.geometry.area for a, b in zip(on, off))
        if query == "the red boxes":
            iou = lambda ps: (shapely.union_all([p.geometry for p in ps]).intersection(truth).area /  # noqa: E731
                              shapely.union_all([p.geometry for p in ps]).union(truth).area)
            assert iou(on) > iou(off) + 0.05, (iou(off), iou(on))  # 0.783 -> 0.866

    class AuthorsMode:  # the engine reads the mode off the predictor; this one predicts as the model does
        mode = "authors"

        def __getattr__(self, name):
            return getattr(model, name)

    run = lambda refine: [p.geometry.wkb for p in segment_raster(  # noqa: E731
        raster, "the red boxes", AuthorsMode(), opts.replace(refine_edges=refine)).polygons["the red boxes"]]
    assert run(True) == run(False)


def test_the_filter_reads_only_around_the_outline_and_gives_what_the_whole_tile_would():
    """The filter runs on the window around the pixels inside (its reach added), and the outline's values are
    those of the filter over the whole tile."""
    import torch

    from rs2sam2_qgis.pipeline.edges import EDGE_EPS, _box_mean

    rng = np.random.default_rng(0)
    rgb = (rng.random((96, 96, 3)) * 255).astype(np.uint8)
    prob = np.zeros((2, 96, 96), np.float32)
    prob[0, 10:30, 60:90] = rng.random((20, 30)).astype(np.float32)  # ragged: many outline pixels
    prob[1, 88:96, 0:8] = 0.9                                        # at the tile's corner
    out = refine_edges(prob, rgb, radius=2)
    guide = torch.from_numpy(np.moveaxis(rgb, -1, 0).astype(np.float32)) / 255.0
    for t in range(2):
        p = torch.from_numpy(prob[t])
        mi, mp = _box_mean(guide, 2), _box_mean(p, 2)
        a = (_box_mean(guide * p, 2) - mi * mp) / (_box_mean(guide * guide, 2) - mi * mi + EDGE_EPS)
        whole = (_box_mean(a, 2) * guide + _box_mean(mp - a * mi, 2)).mean(0).clamp(0, 1).numpy()
        changed = out[t] != prob[t]
        assert changed.any() and np.allclose(out[t][changed], whole[changed], atol=1e-5)
