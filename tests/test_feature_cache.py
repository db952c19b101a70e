"""Per-tile feature cache of the engine (feature-reusable models: rsrefseg-tiny on CPU, random weights)."""
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from model_core import Predictor, build_model
from rs2sam2_qgis.pipeline import SegmentOptions, segment_raster
from rs2sam2_qgis.pipeline.source import open_source
from rs2sam2_qgis.pipeline.tile_feature_cache import FeatureCache, predict_cached, source_fingerprint, tile_key
from tests.colour_model import rgb_scene, write_raster

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def predictor():
    torch.manual_seed(0)
    model = build_model("rsrefseg-tiny", **{"sam.image_size": 128, "towers.image_size": 64,
                                             "towers.clip_overrides": {
                                                 "embed_dim": 64, "init_logit_bias": -10.0,
                                                 "vision_cfg": {"image_size": 64, "patch_size": 16, "width": 64,
                                                                "layers": 1, "head_width": 32},
                                                 "text_cfg": {"context_length": 32, "width": 64, "heads": 2,
                                                              "layers": 1}}})
    pred = Predictor(model, device="cpu", batch_size=4)
    calls = {"images": 0}
    orig = model.encode_images

    def counting(pixels):
        calls["images"] += int(pixels.shape[0])
        return orig(pixels)

    model.encode_images = counting
    pred.calls = calls
    return pred


def _raster(path, seed=0):
    img = rgb_scene(200, 200, [(20, 30, 90, 120, (220, 40, 40)), (120, 100, 180, 190, (30, 200, 60))])
    img = img.copy()
    img[:, 0, 0] = seed
    return write_raster(path, img)


def test_multi_query_run_encodes_each_tile_once_and_a_second_query_hits(predictor, tmp_path):
    path = _raster(tmp_path / "a.tif")
    cache = FeatureCache(memory_mb=64)
    opts = SegmentOptions(overlap=0.25, scope="tile")
    before = predictor.calls["images"]
    r1 = segment_raster(path, ["red roof", "green field", "water"], predictor, opts, feature_cache=cache)
    n_tiles = r1.stats.tiles_run
    assert n_tiles > 1
    assert predictor.calls["images"] - before == n_tiles  # 3 queries, each tile encoded once
    assert r1.stats.tiles_encoded == n_tiles and r1.stats.feature_cache_hits == 0
    before = predictor.calls["images"]
    r2 = segment_raster(path, "a second query", predictor, opts, feature_cache=cache)
    assert predictor.calls["images"] == before  # no encoder call: every tile from the cache
    assert r2.stats.feature_cache_hits == n_tiles and r2.stats.tiles_encoded == 0
    # same probabilities as an uncached run would give (same query set): compare with a fresh cache
    r3 = segment_raster(path, "a second query", predictor, opts, feature_cache=FeatureCache(memory_mb=64))
    assert [p.geometry.wkb for p in r3.all_polygons()] == [p.geometry.wkb for p in r2.all_polygons()]


def test_extent_scope_caches_the_search_windows_too(predictor, tmp_path):
    """A singular query runs the coarse-to-fine search: its windows are cached like the tiles, so a second
    query of the same kind encodes nothing."""
    path = _raster(tmp_path / "a.tif")
    cache = FeatureCache(memory_mb=64)
    opts = SegmentOptions(overlap=0.25, scope="extent", search_levels=2)
    r1 = segment_raster(path, "the red roof", predictor, opts, feature_cache=cache)
    assert r1.stats.coarse_windows > 0 and r1.stats.tiles_encoded > 0
    before = predictor.calls["images"]
    r2 = segment_raster(path, "the green field", predictor, opts, feature_cache=cache)
    assert predictor.calls["images"] == before
    assert r2.stats.tiles_encoded == 0 and r2.stats.feature_cache_hits > 0


def test_cached_decode_equals_predict(predictor):
    tiles = np.random.default_rng(0).integers(0, 256, (3, 128, 128, 3), dtype=np.uint8)
    cache = FeatureCache(memory_mb=64)
    keys = [f"{i:064x}" for i in range(3)]
    p1 = predict_cached(predictor, cache, keys, tiles, ["a", "b"])
    p2 = predict_cached(predictor, cache, keys, tiles, ["a", "b"])  # all from memory
    assert cache.stats.memory_hits == 3
    assert np.array_equal(p1, predictor.predict(tiles, ["a", "b"]))
    assert np.array_equal(p1, p2)


def test_memory_cache_is_a_bounded_lru():
    class F:
        nbytes = 400 * 1024

        def to_bytes(self):
            return b""

    c = FeatureCache(memory_mb=1.0)
    for k in "abc":
        c.put(k, F())
    assert len(c) == 2 and c.get("a") is None and c.get("c") is not None
    c.get("b")
    c.put("d", F())  # b was used after c: c is the oldest and goes
    assert c.get("b") is not None and c.get("d") is not None and c.get("c") is None
    assert c.memory_bytes <= 2**20


def test_disk_cache_reused_by_a_later_run(predictor, tmp_path):
    path = _raster(tmp_path / "b.tif")
    d = tmp_path / "cache"
    opts = SegmentOptions(feature_cache=str(d))
    r1 = segment_raster(path, "roof", predictor, opts)
    files = sorted(d.rglob("*.feat"))
    # every window encoded went to disk: the fine tiles, and the second look at the plural's best candidate
    assert len(files) == r1.stats.tiles_encoded == r1.stats.tiles_run + r1.stats.second_looks
    assert not list(d.rglob("*.tmp"))
    before = predictor.calls["images"]
    r2 = segment_raster(path, "roof", predictor, opts)  # a fresh in-memory cache: served from disk
    assert predictor.calls["images"] == before and r2.stats.feature_cache_hits == r1.stats.tiles_encoded
    assert [p.geometry.wkb for p in r1.all_polygons()] == [p.geometry.wkb for p in r2.all_polygons()]


def test_key_changes_with_raster_and_band_mapping(predictor, tmp_path):
    path = _raster(tmp_path / "c.tif")
    digest = predictor.model_digest()
    rgb = np.zeros((128, 128, 3), np.uint8)

    def key(opts, pixels=rgb):
        src = open_source(path, opts)
        return tile_key(source_fingerprint(src, opts, 128, digest), (0, 0, 128, 128), pixels)

    k0 = key(SegmentOptions())
    assert key(SegmentOptions()) == k0
    assert key(SegmentOptions(bands=(3, 2, 1))) != k0
    assert key(SegmentOptions(), rgb + 1) != k0
    assert tile_key(source_fingerprint(open_source(path, SegmentOptions()), SegmentOptions(), 128, "other"),
                    (0, 0, 128, 128), rgb) != k0
    assert tile_key(source_fingerprint(open_source(path, SegmentOptions()), SegmentOptions(), 128, digest),
                    (0, 64, 128, 128), rgb) != k0
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # the raster changed on disk
    assert key(SegmentOptions()) != k0
    _raster(tmp_path / "c.tif", seed=7)
    assert key(SegmentOptions()) != k0


def test_truncated_or_corrupt_file_is_recomputed(predictor, tmp_path):
    tiles = np.random.default_rng(2).integers(0, 256, (2, 128, 128, 3), dtype=np.uint8)
    keys = [f"{i:064x}" for i in (10, 11)]
    d = tmp_path / "cache"
    ref = predict_cached(predictor, FeatureCache(disk_dir=d), keys, tiles, ["a"])
    f0, f1 = (FeatureCache(disk_dir=d).path_for(k) for k in keys)
    data = f0.read_bytes()
    f0.write_bytes(data[: len(data) // 2])  # truncated
    raw = bytearray(f1.read_bytes())
    raw[-10] ^= 0xFF  # one flipped byte
    f1.write_bytes(bytes(raw))
    c = FeatureCache(disk_dir=d)
    before = predictor.calls["images"]
    out = predict_cached(predictor, c, keys, tiles, ["a"])
    assert c.stats.disk_rejected == 2 and c.stats.disk_hits == 0 and c.stats.encoded == 2
    assert predictor.calls["images"] - before == 2
    assert np.array_equal(out, ref)
    c2 = FeatureCache(disk_dir=d)  # rewritten, valid again
    assert predict_cached(predictor, c2, keys, tiles, ["a"]).shape == ref.shape and c2.stats.disk_hits == 2


def test_disk_cache_is_bounded_oldest_evicted(tmp_path):
    class F:
        nbytes = 1000

        def __init__(self, i):
            self.i = i

        def to_bytes(self):
            return bytes([self.i]) * 300_000

    d = tmp_path / "c"
    c = FeatureCache(disk_dir=d, disk_max_mb=1.0)
    keys = [f"{i:064x}" for i in range(5)]
    for i, k in enumerate(keys):
        c.put(k, F(i))
        p = c.path_for(k)
        os.utime(p, ns=(10**18 + i * 10**9, 10**18 + i * 10**9))  # distinct ages
    left = sorted(p.name[:64] for p in Path(d).rglob("*.feat"))
    total = sum(p.stat().st_size for p in Path(d).rglob("*.feat"))
    assert total <= 2**20 and c.stats.disk_evicted >= 2
    assert keys[-1] in left and keys[0] not in left


def test_cli_has_feature_cache_option():
    from rs2sam2_qgis.pipeline.cli import _parser
    from rs2sam2_qgis.pipeline.cli_options import options_from_args

    a = _parser().parse_args(["segment", "r.tif", "roof", "-o", "o.gpkg", "--feature-cache", "/tmp/fc",
                                   "--feature-cache-mb", "100"])
    o = options_from_args(a)
    assert o.feature_cache == "/tmp/fc" and o.feature_cache_max_mb == 100
