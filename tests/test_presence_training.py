"""Presence from negatives (training/presence.py, model_core/presence.py) and raster-scale mosaics
(training/datasets/mosaic.py)."""
import numpy as np
import pytest
import torch

from model_core import Predictor, build_model, load_model, save_model
from training.datasets.mosaic import KINDS, build_mosaic, describe_beyond, describe_mosaic
from training.datasets.vocabulary import NEVER_DRAWN
from training.presence import TRAIN_ABSENT, features, train_head, window_pairs, write_with_head


def test_mosaic_sentences_hold_over_the_whole_mosaic():
    m = build_mosaic(1, "val", 0, 2, exclude=("tank",))
    assert m.image.shape == (512, 512, 3) and m.labels.shape == (512, 512)
    assert not any(o.cls == "tank" for o in m.objects)
    labels = {o.label for o in m.objects}
    assert set(np.unique(m.labels)) - {0} <= labels            # every painted label is a listed object
    qs = describe_mosaic(m, np.random.default_rng(0))
    assert {q.kind for q in qs} <= set(KINDS) and any(not q.template for q in qs)
    absent = [q for q in qs if q.kind == "absent"]
    assert absent and all(q.target == [] for q in absent)
    assert any(q.text in ("the tanks", "the storage tanks", "the oil tanks") for q in absent)  # excluded class
    assert any(q.text.endswith("nearest the storage tank") for q in absent)  # a relation to the excluded class
    by = {o.label: o for o in m.objects}
    for q in qs:
        if q.kind == "superlative" and "largest" in q.text and "building" in q.text:
            (t,) = q.target
            assert by[t].area == max(o.area for o in m.objects if o.cls == "building")


def test_sentences_beyond_the_templates_hold_and_read_as_their_kind():
    """describe_beyond's targets are what its sentences say over the whole mosaic, and the engine's grammar reads
    each as its kind asks (a count, one object, an area, a list)."""
    from rs2sam2_qgis.pipeline.expression import ALL, ONE, parse_expression, split_conjunction

    qs = [q for split in ("test", "val") for i in range(6)
          for q in describe_beyond(build_mosaic(2401, split, i, (2, 3, 4)[i % 3], unique_colours=True))]
    assert {q.kind for q in qs} <= set(KINDS) and not any(q.template for q in qs)
    for q in qs:
        parts = split_conjunction(q.text)
        plans = [parse_expression(p) for p in parts]
        if " within " in q.text:  # "the buildings within 7.9 m of the lake": every one that near
            assert q.kind == "relation" and q.target and [p.cardinality for p in plans] == [ALL], q.text
            assert plans[0].distance_m[1] == float(q.text.split(" within ")[1].split()[0])
        elif q.kind in ("attribute", "superlative", "position", "relation"):
            assert len(q.target) == 1 and [p.cardinality for p in plans] == [ONE], q.text
        elif q.kind == "count":
            assert [p.cardinality for p in plans] == [len(q.target)], q.text
        elif q.kind == "class":
            assert q.target and all(p.cardinality == ALL for p in plans), q.text
        else:
            assert q.target == [], q.text
        if "larger than" in q.text:
            assert plans[0].area_m2[0] is not None
        if q.text.endswith(("corner of the image", "centre of the image", "middle of the image")):
            assert plans[0].point is not None and plans[0].anchor_text is None, q.text
        if " of the two " in q.text:  # "the smaller of the two buildings with gray roofs"
            assert plans[0].size is not None and plans[0].count == 1, q.text
    assert any(len(split_conjunction(q.text)) == 2 for q in qs) and any(" within " in q.text for q in qs)
    assert any("corner of the image" in q.text for q in qs) and any(" of the two " in q.text for q in qs)


def test_window_pairs_label_positives_free_hard_and_vocabulary_negatives():
    m = build_mosaic(3, "train", 0, 2)
    rng = np.random.default_rng(0)
    pairs = window_pairs(m.image, m.labels, m.objects, 0, 0, 256, 128, rng)
    texts = {p.text: p.label for p in pairs}
    assert all(p.window.shape == (128, 128, 3) for p in pairs)
    present_classes = {o.cls for o in m.objects if o.bbox[0] < 256 and o.bbox[1] < 256 and
                       (m.labels[:256, :256] == o.label).sum() >= 16}
    assert any(v == 1 for v in texts.values()) and any(v == 0 for v in texts.values())
    assert any(t in TRAIN_ABSENT and v == 0 for t, v in texts.items())
    assert not any(t in NEVER_DRAWN for t in texts)            # the benchmark's absent referents stay unseen
    if "building" in present_classes:
        assert any(v == 1 and ("building" in t or "house" in t) for t, v in texts.items())


def test_trained_head_travels_in_the_checkpoint_and_drives_the_predictor(tmp_path):
    torch.manual_seed(0)
    model = build_model("nano").eval()
    src = save_model(model, tmp_path / "base.pt")
    m = build_mosaic(5, "train", 0, 1)
    pairs = window_pairs(m.image, m.labels, m.objects, 0, 0, 256, model.input_size, np.random.default_rng(1))
    tok, st = features(model, pairs)
    y = torch.tensor([p.label for p in pairs], dtype=torch.float32)
    from model_core.presence import PresenceHead

    head = PresenceHead(model.cfg.union.width)
    losses = train_head(head, tok, st, y, steps=60)
    assert losses[-1] < losses[0]
    out = write_with_head(src, tmp_path / "with_head.pt", head, {"note": "test"})
    loaded = load_model(out).eval()
    assert loaded.cfg.heads.presence and loaded.presence_head is not None
    pred = Predictor(loaded, device="cpu")
    tiles = np.stack([pairs[0].window, pairs[1].window])
    _, pres = pred.predict(tiles, [pairs[0].text], presence=True)
    with torch.no_grad():
        px = torch.from_numpy(tiles).permute(0, 3, 1, 2).float() / 255.0
        expect = torch.sigmoid(loaded(px, [pairs[0].text] * 2)["presence_logits"]).numpy()
    np.testing.assert_allclose(pres[:, 0], expect, atol=1e-5)
    # a model without the head still reports presence (the pseudo-mask's peak), and loads as before
    assert not load_model(src).cfg.heads.presence
    # shipping sets the head's val-chosen threshold, which the predictor gates with; a model without a head refuses
    from training.train import export_checkpoint

    shipped = export_checkpoint(out, tmp_path / "shipped.pt", presence_threshold=0.85)
    assert Predictor(load_model(str(shipped)), device="cpu").presence_threshold == 0.85
    with pytest.raises(ValueError, match="no presence head"):
        export_checkpoint(src, tmp_path / "refused.pt", presence_threshold=0.85)
    assert not (tmp_path / "refused.pt").exists()


def test_unique_colours_leave_one_object_of_a_colour_painted_in_it():
    from training.datasets.mosaic import plant_unique_colour
    from training.datasets.vocabulary import ROOF_COLOURS

    plain = build_mosaic(2401, "test", 0, 2)
    m = build_mosaic(2401, "test", 0, 2, unique_colours=True)
    buildings = [o for o in m.objects if o.cls == "building"]
    colours = [o.colour for o in buildings]
    assert any(colours.count(c) == 1 for c in colours)
    assert any(o.colour != p.colour for o, p in zip(m.objects, plain.objects))
    for o in buildings:  # every roof reads as its (new) colour: its median pixel is nearest that palette entry
        rgb = np.median(m.image[m.labels == o.label].astype(float), axis=0)
        assert min(ROOF_COLOURS, key=lambda c: np.abs(rgb - ROOF_COLOURS[c]).sum()) == o.colour
    (sentence,) = [q for q in describe_mosaic(m, np.random.default_rng(0))
                   if q.kind == "attribute" and q.template and "roofed" in q.text]
    (target,) = sentence.target
    assert next(o for o in buildings if o.label == target).colour in sentence.text
    before = m.image.copy()
    plant_unique_colour(m, "building", ROOF_COLOURS, np.random.default_rng(1))  # already unique: untouched
    assert (m.image == before).all()
