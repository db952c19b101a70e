"""The environment the project stands on: QGIS headless, rasterio <-> QGIS interplay, and the three model
libraries (sam2, open_clip, torchscale) building and running offline with random weights."""
from __future__ import annotations

import numpy as np
import pytest
import torch


def test_qgis_starts_headless(qgis_app):
    from qgis.core import Qgis, QgsApplication

    assert QgsApplication.instance() is qgis_app
    assert Qgis.QGIS_VERSION_INT >= 32200
    assert QgsApplication.processingRegistry() is not None


def test_rasterio_geotiff_opens_in_qgis_with_its_crs(qgis_app, tmp_path):
    import rasterio
    from qgis.core import QgsCoordinateReferenceSystem, QgsRasterLayer
    from rasterio.transform import from_origin

    path = tmp_path / "utm.tif"
    data = np.random.default_rng(0).integers(0, 255, size=(3, 64, 48), dtype=np.uint8)
    transform = from_origin(500000.0, 4649776.0, 0.5, 0.5)
    with rasterio.open(path, "w", driver="GTiff", width=48, height=64, count=3, dtype="uint8",
                       crs="EPSG:32633", transform=transform) as dst:
        dst.write(data)

    layer = QgsRasterLayer(str(path), "utm")
    assert layer.isValid()
    assert layer.crs() == QgsCoordinateReferenceSystem("EPSG:32633")
    assert (layer.width(), layer.height(), layer.bandCount()) == (48, 64, 3)
    extent = layer.extent()
    assert extent.xMinimum() == pytest.approx(500000.0)
    assert extent.yMaximum() == pytest.approx(4649776.0)
    assert extent.width() == pytest.approx(24.0) and extent.height() == pytest.approx(32.0)


def test_sam2_hiera_tiny_forward_on_cpu():
    import sam2  # noqa: F401  (initialises the global Hydra config module that sam2's builders use)
    from hydra import compose
    from hydra.utils import instantiate

    # Compose inside sam2's own Hydra set-up; clearing it would break every later build_sam2 in this process.
    cfg = compose(config_name="configs/sam2.1/sam2.1_hiera_t.yaml")
    torch.manual_seed(0)
    encoder = instantiate(cfg.model.image_encoder).eval()
    size = 256  # hiera-tiny's windowed attention works at any multiple of 32
    with torch.inference_mode():
        out = encoder(torch.randn(1, 3, size, size))
    fpn = out["backbone_fpn"]
    assert [tuple(f.shape) for f in fpn] == [(1, 256, 64, 64), (1, 256, 32, 32), (1, 256, 16, 16)]
    assert all(torch.isfinite(f).all() for f in fpn)


def test_open_clip_builds_a_vit_offline_with_random_weights():
    import open_clip

    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32", pretrained=None).eval()
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    with torch.inference_mode():
        image_features = model.encode_image(torch.randn(1, 3, 224, 224))
        text_features = model.encode_text(tokenizer(["two white storage tanks next to the harbour"]))
    assert image_features.shape == (1, 512) and text_features.shape == (1, 512)


def test_torchscale_builds_a_small_beit3():
    from torchscale.architecture.config import EncoderConfig
    from torchscale.model.BEiT3 import BEiT3

    config = EncoderConfig(img_size=32, patch_size=16, vocab_size=100, multiway=True, layernorm_embedding=False,
                           normalize_output=True, no_output_layer=True, encoder_embed_dim=64,
                           encoder_attention_heads=4, encoder_ffn_embed_dim=128, encoder_layers=2)
    torch.manual_seed(0)
    model = BEiT3(config).eval()
    tokens = torch.randint(4, 100, (2, 7))
    with torch.inference_mode():
        out = model(textual_tokens=tokens, visual_tokens=torch.randn(2, 3, 32, 32),
                    text_padding_position=torch.zeros_like(tokens, dtype=torch.bool))
    # [CLS | 2x2 patches | 7 text tokens]
    assert out["encoder_out"].shape == (2, 1 + 4 + 7, 64)
    assert out["multiway_split_position"] == 5


def test_our_packages_are_imported_outside_the_repo(tmp_path):
    """sam2's wheel ships a top-level `training` package; ours must win wherever `rs2sam2` runs from."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", "import training, model_core, rs2sam2_qgis;"
                          "print(training.__file__); print(model_core.__file__); print(rs2sam2_qgis.__file__)"],
                         cwd=tmp_path, capture_output=True, text=True, check=True, env={"PATH": "/usr/bin"})
    for line in out.stdout.split():
        assert Path(line).resolve().is_relative_to(repo), line
