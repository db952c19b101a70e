"""precision="auto" (model_core/precision.py) and the engine's answer to CUDA out of memory (pipeline/oom.py),
both on CPU: the CPU's flags are given, the OOM is the exception torch raises, thrown by a model at large batches."""
import pytest
import torch
from affine import Affine

from model_core import PRESETS
from model_core.precision import auto_precision, cpu_bf16_flags, resolve_precision
from model_core.predictor import Predictor
from rs2sam2_qgis.pipeline import SegmentOptions, segment_raster
from rs2sam2_qgis.pipeline.oom import BatchBackoff, is_cuda_oom
from tests.colour_model import ColourModel, rgb_scene, write_raster

CPU = torch.device("cpu")


class PresetStub(ColourModel):
    """The colour model carrying a preset's config (auto precision reads only the config's declaration)."""

    def __init__(self, preset: str):
        super().__init__(16, name=f"stub-{preset}")
        self.cfg = PRESETS[preset]


def test_cpuinfo_flags_are_read(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16 amx_tile\n\nprocessor\t: 1\n")
    assert cpu_bf16_flags(info) == ["avx512_bf16"]
    info.write_text("flags\t\t: fpu sse avx2 amx_bf16 amx_tile\n")
    assert cpu_bf16_flags(info) == ["amx_bf16"]
    assert cpu_bf16_flags(tmp_path / "absent") == []


@pytest.mark.parametrize("preset,flags,expected", [
    ("paper", ["avx512_bf16"], "bf16"),   # measured 2.5x faster (bench/results/cpu_precision.md)
    ("paper", ["amx_bf16"], "bf16"),
    ("paper", [], "fp32"),                # emulated bf16 is slower than fp32
    ("nano", ["avx512_bf16"], "fp32"),    # the demo's preset: measured slower in bf16
])
def test_auto_precision_needs_native_bf16_and_the_models_declaration(preset, flags, expected):
    name, why = auto_precision(CPU, PresetStub(preset), cpu_flags=flags)
    assert name == expected and why.startswith("auto: ")


def test_a_model_without_a_declaration_stays_fp32():
    assert auto_precision(CPU, ColourModel(16), cpu_flags=["avx512_bf16"])[0] == "fp32"


def test_predictor_reports_precision_and_why():
    p = Predictor(PresetStub("paper"), device="cpu")
    assert p.precision == ("bf16" if cpu_bf16_flags() else "fp32") and p.precision_reason.startswith("auto: ")
    assert p.dtype == {"bf16": torch.bfloat16, "fp32": torch.float32}[p.precision]
    q = Predictor(PresetStub("paper"), device="cpu", precision="fp32")
    assert (q.precision, q.precision_reason) == ("fp32", "fp32 requested")
    assert Predictor(PresetStub("paper"), device="cpu", mode="analyst", precision="bf16").dtype == torch.bfloat16
    with pytest.raises(ValueError, match="fp16 autocast is not supported on CPU"):
        resolve_precision("fp16", CPU, ColourModel(16))


class OOMAbove(ColourModel):
    """Raises what the CUDA caching allocator raises when a forward holds more than `limit` pairs."""

    def __init__(self, limit: int):
        super().__init__(32)
        self.limit, self.batches = limit, []

    def predict_masks(self, pixels, texts):
        self.batches.append(len(texts))
        if len(texts) > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")
        return super().predict_masks(pixels, texts)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    img = rgb_scene(96, 96, [(8, 8, 40, 40, (255, 0, 0)), (50, 50, 90, 90, (0, 0, 255))], (60, 60, 60))
    return write_raster(tmp_path_factory.mktemp("oom") / "scene.tif", img,
                        transform=Affine(1.0, 0, 500000.0, 0, -1.0, 5000000.0))


def test_engine_halves_the_batch_on_cuda_oom_and_finishes(scene):
    queries, opts = ["red roofs", "blue pools"], SegmentOptions(overlap=0.0, batch_size=4)
    reference = segment_raster(scene, queries, Predictor(ColourModel(32), device="cpu", batch_size=8), opts)
    model = OOMAbove(limit=2)
    messages = []
    got = segment_raster(scene, queries, Predictor(model, device="cpu", batch_size=8), opts,
                         progress=lambda f, m: messages.append(m))
    assert (got.stats.cuda_oom_halvings, got.stats.batch_size) == (2, 2)  # 8 -> 4 -> 2, kept for the run
    assert model.batches[:2] == [8, 4] and max(model.batches[2:]) == 2  # halved twice, then kept for the run
    assert sum("CUDA out of memory: batch halved to 4" in m for m in messages) == 1
    assert any("batch halved to 2, continuing" in m for m in messages)
    for q in queries:
        assert [p.geometry.wkt for p in got.polygons[q]] == [p.geometry.wkt for p in reference.polygons[q]]
    assert reference.stats.cuda_oom_halvings == 0 and reference.stats.batch_size == 8


def test_oom_at_batch_one_and_other_errors_are_raised():
    def always(_bs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")

    b = BatchBackoff(4)
    with pytest.raises(torch.OutOfMemoryError):
        b.run(always)
    assert (b.batch_size, b.halvings) == (1, 2)
    c = BatchBackoff(8)
    with pytest.raises(ValueError):
        c.run(lambda bs: (_ for _ in ()).throw(ValueError("bad input")))
    assert (c.batch_size, c.halvings) == (8, 0)
    assert is_cuda_oom(RuntimeError("CUDA out of memory. Tried to allocate"))  # torch < 2.5
    assert not is_cuda_oom(RuntimeError("DefaultCPUAllocator: not enough memory"))
    assert BatchBackoff(3).run(lambda bs: bs) == 3
