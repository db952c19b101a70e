"""A real engine worker process killed with SIGKILL mid-run (what the kernel's out-of-memory killer does): the reply
is one line ("the engine process was killed (out of memory?)"), nothing is written, and the next job starts a fresh
worker and succeeds. The dock and the Processing algorithm show this reply: tests/test_plugin_dock.py and
tests/test_processing_segment_by_text.py run the same kill through them."""
from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from rs2sam2_qgis import worker_client
from rs2sam2_qgis.pipeline.options import SegmentOptions
from rs2sam2_qgis.pipeline.request import ModelChoice, SegmentRequest
from rs2sam2_qgis.worker_client import segment_job

SLOW = "py:tests.test_worker_killed:slow_model"
COLOUR = "py:tests.colour_model:ColourModel"


def slow_model():
    """ColourModel at 0.2 s per call on 32 px tiles: a run lasts long enough to be killed midway."""
    from tests.colour_model import ColourModel

    class Slow(ColourModel):
        def predict_masks(self, pixels, texts):
            time.sleep(0.2)
            return super().predict_masks(pixels, texts)

    return Slow(input_size=32)


@pytest.fixture
def raster(tmp_path):
    data = np.full((3, 256, 256), 90, np.uint8)
    data[0, 40:90, 40:90] = 255
    data[1:, 40:90, 40:90] = 0
    path = tmp_path / "scene.tif"
    with rasterio.open(path, "w", driver="GTiff", width=256, height=256, count=3, dtype="uint8", crs="EPSG:32633",
                       transform=from_origin(500000.0, 4649776.0, 0.5, 0.5)) as ds:
        ds.write(data)
    return str(path)


def kill_worker_after_progress(progressed: threading.Event, killed: list) -> threading.Thread:
    """SIGKILL the long-lived worker as soon as it has reported tile progress; its pid goes to ``killed``."""
    def kill():
        assert progressed.wait(60), "the worker reported no progress"
        killed.append(worker_client._server.proc.pid)
        os.kill(killed[0], signal.SIGKILL)
    t = threading.Thread(target=kill, daemon=True)
    t.start()
    return t


def test_sigkill_mid_run_is_one_line_and_the_next_run_gets_a_fresh_worker(raster, tmp_path):
    worker_client.shutdown()
    out = tmp_path / "out.gpkg"
    request = SegmentRequest(raster=raster, queries=["red"], model=ModelChoice(SLOW, allow_code=True, device="cpu"),
                             output=str(out), options=SegmentOptions(tile=32, overlap=0.0))
    progressed = threading.Event()

    def on_progress(fraction, message):
        if message.startswith("tile "):
            progressed.set()

    killed: list = []
    killer = kill_worker_after_progress(progressed, killed)
    reply = worker_client.run_job(segment_job(request), on_progress=on_progress)
    killer.join(5)
    assert reply["type"] == "error" and reply["kind"] == "killed", reply
    assert reply["message"].startswith("the engine process was killed (out of memory?)")
    assert "\n" not in reply["message"] and not reply["trace"]
    assert not out.exists() and sorted(os.listdir(tmp_path)) == ["scene.tif"]  # nothing written, no stray file
    assert worker_client._server is None  # the dead worker was dropped
    colour = ModelChoice(COLOUR, allow_code=True, device="cpu")
    reply = worker_client.run_job(segment_job(dataclasses.replace(request, model=colour,
                                                                  options=SegmentOptions(tile=64))))
    assert reply["type"] == "done" and reply["count"] == 1, reply
    assert worker_client._server.alive() and worker_client._server.proc.pid != killed[0]
    worker_client.shutdown()


def test_other_signals_are_named(raster, tmp_path):
    worker_client.shutdown()
    progressed = threading.Event()

    def stop():
        assert progressed.wait(60)
        os.kill(worker_client._server.proc.pid, signal.SIGTERM)
    t = threading.Thread(target=stop, daemon=True)
    t.start()
    request = SegmentRequest(raster=raster, queries=["red"], model=ModelChoice(SLOW, allow_code=True, device="cpu"),
                             output=str(tmp_path / "o.gpkg"), options=SegmentOptions(tile=32, overlap=0.0))
    reply = worker_client.run_job(segment_job(request),
                                  on_progress=lambda f, m: m.startswith("tile ") and progressed.set())
    t.join(5)
    assert reply["kind"] == "killed" and "stopped by SIGTERM" in reply["message"], reply
    worker_client.shutdown()
