"""rs2sam2 batch on a local Ray cluster (started once for the module): same results as the local path, a killed
inference actor is replaced and its rasters redone without duplicates. Ray is installed by scripts/setup_env.sh."""
from __future__ import annotations

import csv
import functools
import json
import os
import time

import pytest
import ray  # noqa: E402 - a missing ray fails, never skips

from rs2sam2_qgis.pipeline.batch import run_batch  # noqa: E402
from rs2sam2_qgis.pipeline.batch_ray import init_local_ray  # noqa: E402
from rs2sam2_qgis.pipeline.request import ModelChoice  # noqa: E402
from tests.colour_model import ColourModel  # noqa: E402
from tests.test_batch_common import MODEL, OPTIONS, QUERIES, assert_same_vectors, make_rasters  # noqa: E402


class SlowColourModel(ColourModel):
    """The colour model with a pause per forward pass, so rasters are surely in flight when an actor dies."""

    def predict_masks(self, pixels, texts):
        time.sleep(0.05)
        return super().predict_masks(pixels, texts)


@pytest.fixture(scope="module")
def cluster():
    init_local_ray(num_cpus=2, object_store_memory=100 * 2**20)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    d = tmp_path_factory.mktemp("batch_ray")
    rasters = make_rasters(d / "in")
    local = d / "local"
    run_batch(str(d / "in"), QUERIES, local, model=ModelChoice(MODEL, device="cpu"), options=OPTIONS)
    return {"dir": str(d / "in"), "rasters": rasters, "local": local}


def manifest_sources(folder):
    return [json.loads(x)["source"] for x in open(os.path.join(folder, "manifest.jsonl"))]


def test_ray_equals_local_and_records_a_corrupt_raster(cluster, scenes, tmp_path):
    out = tmp_path / "out"
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"II*\x00" + os.urandom(1000))
    s = run_batch([scenes["dir"], str(bad)], QUERIES, out, model=ModelChoice(MODEL), options=OPTIONS, ray=True,
                  workers=2, retries=1, backoff=0)
    assert (s.executor, s.workers, s.done, s.failed) == ("ray", 2, 6, 1)
    rows = list(csv.DictReader(open(out / "failures.csv")))
    assert [(r["source"], r["attempts"], r["error_type"]) for r in rows] == [(str(bad), "2", "InputError")]
    assert s.extra["ray"]["actor_options"] == {"num_cpus": 1.0}
    assert len({t["pid"] for t in s.extra["ray"]["timings"]}) == 2  # both actors worked
    for i in range(6):
        assert_same_vectors(out / f"scene_{i}.gpkg", scenes["local"] / f"scene_{i}.gpkg")
    assert sorted(manifest_sources(out)) == sorted(manifest_sources(scenes["local"]))


def test_killed_actor_is_replaced_and_its_rasters_redone_once(cluster, scenes, tmp_path):
    out = tmp_path / "out"
    state = {}

    def on_start(run, pool):
        state["pool"] = pool

    def kill_a_busy_actor(run, job):
        if "killed" in state:
            return
        pool = state["pool"]
        busy = [a for a in pool.actors if pool.load.get(a._actor_id, 0) > 0]
        assert busy, "no raster in flight to lose"
        ray.kill(busy[0])
        state["killed"] = busy[0]._actor_id

    s = run_batch(scenes["dir"], QUERIES, out, model=ModelChoice(functools.partial(SlowColourModel, 32)),
                  options=OPTIONS, ray=True, workers=2, on_start=on_start, on_result=kill_a_busy_actor)
    assert "killed" in state
    assert (s.done, s.failed, s.actors_replaced) == (6, 0, 1)
    assert s.redone_after_worker_loss >= 1
    srcs = manifest_sources(out)
    assert len(srcs) == len(set(srcs)) == 6  # each raster committed exactly once
    for i in range(6):
        assert_same_vectors(out / f"scene_{i}.gpkg", scenes["local"] / f"scene_{i}.gpkg")
    assert not [f for f in os.listdir(out) if f.startswith(".")]


def test_resume_on_ray_after_an_interrupted_run_redoes_only_the_missing(cluster, scenes, tmp_path, capsys,
                                                                        monkeypatch):
    from rs2sam2_qgis.pipeline import cli, model_spec

    monkeypatch.setattr(model_spec, "resolve_model", lambda spec, **kw: MODEL())  # --model demo -> the colour model
    out = tmp_path / "out"

    def interrupt_after_two(run, job):
        if run.summary.done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch(scenes["dir"], QUERIES, out, model=ModelChoice("demo"), options=OPTIONS, ray=True, workers=2,
                  on_result=interrupt_after_two)
    first = manifest_sources(out)
    assert len(first) == 2 and sorted(f for f in os.listdir(out) if f.endswith(".gpkg")) == \
        sorted(os.path.splitext(os.path.basename(p))[0] + ".gpkg" for p in first)
    assert not [f for f in os.listdir(out) if f.startswith(".")]  # only complete outputs
    # the CLI, `--ray` before the inputs (argparse hands it the first input; batch gives it back)
    rc = cli.main(["batch", "--ray", scenes["dir"], "-q", QUERIES[0], "-q", QUERIES[1], "-o", str(out), "--resume",
                   "--workers", "2", "--tile", "32", "--overlap", "0.25", "--batch-size", "4", "--quiet"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert "6 raster(s): 4 done, 2 skipped (complete), 0 failed" in cap.out
    srcs = manifest_sources(out)
    assert len(srcs) == len(set(srcs)) == 6 and srcs[:2] == first
    for i in range(6):
        assert_same_vectors(out / f"scene_{i}.gpkg", scenes["local"] / f"scene_{i}.gpkg")
