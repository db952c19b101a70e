"""The CUDA path (marker `cuda`: skipped without a GPU; bench/gpu_check.sh selects them with `-m cuda`): the
Predictor in fp32, bf16 and fp16 against the CPU, the engine and the CLI end to end with the device shown, and a
real CUDA out-of-memory error answered by halving the batch."""
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.windows import Window

import model_core
from model_core.predictor import Predictor
from rs2sam2_qgis.pipeline import SegmentOptions, cli, segment_raster

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible to torch")]

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample" / "sample_scene.tif"
QUERY = "the storage tanks"


@pytest.fixture(scope="module")
def demo():
    return model_core.load_model("demo").eval()


@pytest.fixture(scope="module")
def crop(tmp_path_factory):
    """The sample's north-east 512 x 512 (storage tanks, buildings, roads) as its own GeoTIFF."""
    out = tmp_path_factory.mktemp("cuda") / "crop.tif"
    with rasterio.open(SAMPLE) as src:
        win = Window(512, 0, 512, 512)
        profile = {**src.profile, "width": 512, "height": 512, "transform": src.window_transform(win)}
        data = src.read(window=win)
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(data)
    return out


def _tiles(path, size):
    with rasterio.open(path) as ds:
        img = np.moveaxis(ds.read([1, 2, 3]), 0, -1)
    return np.stack([img[r:r + size, c:c + size] for r in range(0, 512, size) for c in range(0, 512, size)])


@pytest.mark.parametrize("precision,min_equal", [("fp32", 0.9995), ("bf16", 0.995), ("fp16", 0.995)])
def test_predictor_on_cuda_matches_cpu(demo, crop, precision, min_equal):
    tiles = _tiles(crop, demo.input_size)
    cpu = Predictor(demo, device="cpu", precision="fp32").predict(tiles, [QUERY, "the buildings"])
    gpu = Predictor(demo, device="cuda", precision=precision)
    assert gpu.device.type == "cuda" and gpu.precision == precision
    prob = gpu.predict(tiles, [QUERY, "the buildings"])
    assert prob.dtype == np.float32 and np.isfinite(prob).all() and prob.min() >= 0 and prob.max() <= 1
    equal = float(((prob >= 0.5) == (cpu >= 0.5)).mean())
    assert equal >= min_equal, f"{precision}: {100 * equal:.3f} % of decisions equal to CPU fp32"
    demo.to("cpu")


def test_auto_precision_on_cuda(demo):
    p = Predictor(demo, device="auto")
    assert p.device.type == "cuda" and "CUDA available" in p.device_reason
    assert p.precision == ("bf16" if torch.cuda.is_bf16_supported() else "fp16")
    demo.to("cpu")


def test_engine_and_cli_end_to_end_on_cuda(demo, crop, tmp_path, capsys):
    res = segment_raster(crop, [QUERY], Predictor(demo, device="cuda"))
    assert res.stats.device.startswith("cuda") and res.stats.precision in ("bf16", "fp16")
    assert res.polygons[QUERY] and all(p.device.startswith("cuda") for p in res.polygons[QUERY])
    demo.to("cpu")
    assert cli.main(["segment", str(crop), QUERY, "-o", str(tmp_path / "out.gpkg"), "--model", "demo",
                     "--device", "cuda", "--quiet"]) == 0
    out = capsys.readouterr()
    assert "device cuda" in out.out and "model rs2sam2" in out.err and " on cuda" in out.err


class AllocatesAbove(torch.nn.Module):
    """The demo model, asking the CUDA allocator for 1 PiB whenever a forward holds more than `limit` pairs."""

    def __init__(self, model, limit: int):
        super().__init__()
        self.inner, self.limit, self.batches = model, limit, []
        self.input_size, self.name = model.input_size, model.name

    def predict_masks(self, pixels, texts):
        self.batches.append(len(texts))
        if len(texts) > self.limit:
            torch.empty(2 ** 50, dtype=torch.uint8, device=pixels.device)
        return self.inner.predict_masks(pixels, texts)

    def logits_to_prob(self, logits):
        return self.inner.logits_to_prob(logits)


def test_cuda_out_of_memory_halves_the_batch_and_continues(demo, crop):
    model = AllocatesAbove(demo, limit=2)
    messages = []
    res = segment_raster(crop, [QUERY, "the buildings"], Predictor(model, device="cuda", batch_size=8),
                         SegmentOptions(batch_size=4), progress=lambda f, m: messages.append(m))
    assert (res.stats.cuda_oom_halvings, res.stats.batch_size) == (2, 2)
    assert model.batches[:2] == [8, 4] and max(model.batches[2:]) == 2
    assert any("CUDA out of memory: batch halved to 2" in m for m in messages)
    reference = segment_raster(crop, [QUERY, "the buildings"], Predictor(demo, device="cuda", batch_size=2),
                               SegmentOptions(batch_size=4))
    assert [p.geometry.wkt for p in res.polygons[QUERY]] == [p.geometry.wkt for p in reference.polygons[QUERY]]
    demo.to("cpu")
