"""Referring-segmentation metrics against hand-computed values (training/metrics.py)."""
from __future__ import annotations

import numpy as np
import pytest

from training.metrics import RefMetrics, intersection_union, score_pair, to_markdown


def _mask(h, w, boxes):
    m = np.zeros((h, w), bool)
    for y0, y1, x0, x1 in boxes:
        m[y0:y1, x0:x1] = True
    return m


def test_intersection_union_by_hand():
    gt = _mask(10, 10, [(0, 4, 0, 4)])  # 16 px
    pred = _mask(10, 10, [(2, 6, 2, 6)])  # 16 px, overlap 2x2 = 4
    assert intersection_union(pred, gt) == (4, 28)


def test_summary_by_hand():
    m = RefMetrics()
    # IoUs: 1.0, 0.75, 0.5 (exactly: counts as >= 0.5), 0.0 (empty GT predicted empty), 0.6
    m.add_counts(10, 10)
    m.add_counts(30, 40)
    m.add_counts(5, 10)
    m.add_counts(0, 0)
    m.add_counts(6, 10)
    s = m.summary()
    assert s["n"] == 5
    assert s["pr@0.5"] == pytest.approx(4 / 5)
    assert s["pr@0.6"] == pytest.approx(3 / 5)
    assert s["pr@0.7"] == pytest.approx(2 / 5)
    assert s["pr@0.8"] == pytest.approx(1 / 5)
    assert s["pr@0.9"] == pytest.approx(1 / 5)
    assert s["mIoU"] == pytest.approx((1.0 + 0.75 + 0.5 + 0.0 + 0.6) / 5)
    assert s["oIoU"] == pytest.approx((10 + 30 + 5 + 0 + 6) / (10 + 40 + 10 + 0 + 10))
    assert set(s) == {"pr@0.5", "pr@0.6", "pr@0.7", "pr@0.8", "pr@0.9", "oIoU", "mIoU", "n"}


def test_add_masks_matches_counts():
    gt = _mask(8, 8, [(0, 8, 0, 4)])  # 32
    pred = _mask(8, 8, [(0, 8, 2, 6)])  # 32, overlap 16 -> IoU 16/48
    m = RefMetrics()
    assert m.add(pred, gt) == pytest.approx(1 / 3)
    assert m.summary()["oIoU"] == pytest.approx(1 / 3)


def test_empty_split_and_shape_mismatch():
    assert RefMetrics().summary()["n"] == 0
    with pytest.raises(ValueError):
        intersection_union(np.zeros((2, 2), bool), np.zeros((3, 3), bool))


def test_score_pair_own_size_and_authors_1024():
    gt = _mask(4, 4, [(0, 2, 0, 2)])
    prob = np.zeros((8, 8), np.float32)
    prob[:4, :4] = 1.0  # top-left quarter at 8x8 -> top-left 2x2 at 4x4 (bilinear edge at exactly 0.5 + eps)
    pred, g = score_pair(prob, gt)
    assert pred.shape == (4, 4) and intersection_union(pred, g) == (4, 4)
    # authors' convention: both at 1024 (gt nearest-resized): top-left 512x512 each
    pred, g = score_pair(prob, gt, score_size=1024)
    assert pred.shape == g.shape == (1024, 1024)
    assert g.sum() == 512 * 512 and g[:512, :512].all()  # nearest-resized ground truth, exact
    i, u = intersection_union(pred, g)
    assert i / u > 0.99  # bilinear upsampling moves the predicted edge by at most a pixel or two
    # threshold is strict (> t)
    pred, _ = score_pair(np.full((4, 4), 0.5, np.float32), gt, threshold=0.5)
    assert not pred.any()


def test_markdown_in_percent():
    m = RefMetrics()
    m.add_counts(1, 2)
    md = to_markdown({"val": m.summary()})
    assert "| val | 100.00 | 0.00 | 0.00 | 0.00 | 0.00 | 50.00 | 50.00 | 1 |" in md


def test_metrics_by_group_by_hand():
    m = RefMetrics()
    for i, u in ((10, 10), (30, 40), (5, 10), (6, 10)):
        m.add_counts(i, u)
    kinds = ["class", "size", "class", "size"]
    by = m.by(lambda k: kinds[k])
    assert list(by) == ["class", "size"]
    assert by["class"]["mIoU"] == pytest.approx((1.0 + 0.5) / 2) and by["class"]["n"] == 2
    assert by["size"]["oIoU"] == pytest.approx((30 + 6) / (40 + 10))
    md = to_markdown({"val": {**m.summary(), "by_group": by}})
    assert "| val: class | 100.00 | 50.00 | 50.00 | 50.00 | 50.00 | 75.00 | 75.00 | 2 |" in md


@pytest.mark.usefixtures("one_torch_thread")
def test_eval_cli_by_kind_on_the_demo(capsys):
    """`rs2sam2 eval --by-kind`: per-sentence-kind rows for the synthetic set; a clear error for other sets."""
    from training import evaluate

    assert evaluate.main(["--model", "demo", "--split", "val", "--limit", "8", "--by-kind", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "| val |" in out and "| val: class |" in out
    assert evaluate.main(["--model", "demo", "--dataset", "refsegrs", "--data-root", "/nonexistent", "--by-kind"]) == 2
