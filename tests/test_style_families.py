"""Style families (domain randomization) and negatives of the synthetic set, and the joint loss they train with."""
from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest
import torch

from training.datasets import build_dataset
from training.datasets.negatives import TRAIN_ABSENT, negative_sentence
from training.datasets.styles import FAMILIES, HELD_OUT, TRAIN_FAMILIES, sample_look
from training.datasets.synthetic import generate_scene
from training.datasets.vocabulary import ABSENT_ROOF, ABSENT_VEHICLE, NEVER_DRAWN, OFF_PALETTE, ROOF_COLOURS
from training.presence_loss import joint_loss

STYLED = dict(scene_size=128, density=1.6, families=list(TRAIN_FAMILIES), native_share=0.3)


def test_the_generators_own_look_is_unchanged():
    # digest of these three scenes as the generator drew them before style families existed (commit 59dbc3a)
    h = hashlib.sha1()
    for k in range(3):
        s = generate_scene(np.random.SeedSequence([2401, 1, k]), 128, 1.6)
        h.update(s.image.tobytes())
        h.update(s.labels.tobytes())
    assert h.hexdigest() == "da7eac15edd11f1c5dc3631c7dfac711cfa5fd51"


def test_styled_scenes_are_a_function_of_seed_split_and_index():
    a, b = build_dataset("synthetic", "train", 128, **STYLED), build_dataset("synthetic", "train", 128, **STYLED)
    other = build_dataset("synthetic", "train", 128, **STYLED, seed=7)
    for i in (0, 17):
        assert np.array_equal(a.raw(i)[0], b.raw(i)[0]) and a.raw(i)[2] == b.raw(i)[2]
    assert not np.array_equal(a.raw(0)[0], other.raw(0)[0])
    assert sample_look("arid", np.random.default_rng(3)) == sample_look("arid", np.random.default_rng(3))
    looks = [a.look(k) for k in range(60)]
    assert any(lk is None for lk in looks)  # native_share of scenes keep the generator's own look
    assert {lk.family for lk in looks if lk is not None} == set(TRAIN_FAMILIES)


def test_the_held_out_family_never_trains():
    assert HELD_OUT in FAMILIES and HELD_OUT not in TRAIN_FAMILIES
    with pytest.raises(ValueError, match="held out"):
        build_dataset("synthetic", "train", 128, families=[HELD_OUT])
    ds = build_dataset("synthetic", "train", 128, **STYLED)
    assert all(ds.look(k) is None or ds.look(k).family != HELD_OUT for k in range(500))
    val = build_dataset("synthetic", "val", None, scene_size=128, families=[HELD_OUT])
    assert {val.look(k).family for k in range(10)} == {HELD_OUT}


def test_ground_sample_distance_sets_object_sizes_in_pixels():
    look = sample_look("temperate", np.random.default_rng(0))

    def building_area(gsd):
        areas = [o.area for k in range(8) for o in generate_scene(
            np.random.SeedSequence([1, k]), 128, 1.6, look=dataclasses.replace(look, gsd=gsd)).objects
                 if o.cls == "building"]
        return np.median(areas)

    assert building_area(0.5) > 4 * building_area(1.5)  # (1.5 / 0.5) ** 2 = 9 in theory


def test_negatives_have_empty_targets_presence_zero_and_name_nothing_shown():
    ds = build_dataset("synthetic", "train", 128, **STYLED, negatives=1.0, length=80)
    for i in range(0, 80, 4):
        sample, (_, expr) = ds[i], ds.expression(i)
        assert sample["present"] == 0.0 and sample["mask"].sum() == 0 and expr.target == []
    rng = np.random.default_rng(0)
    kinds = set()
    for k in range(20):
        scene = ds.scene(k)
        for _ in range(10):
            neg = negative_sentence(scene, rng)
            kinds.add(neg.kind)
            assert neg.text not in NEVER_DRAWN
            if neg.kind == "vocabulary":
                assert neg.text in TRAIN_ABSENT
            elif neg.kind == "class":
                assert all(o.cls != neg.cls for o in scene.objects) and neg.cls not in scene.faint
            else:  # hard / unseen colour: the class is there, no object of it has that colour
                assert any(o.cls == neg.cls for o in scene.objects)
                assert all(o.colour != neg.colour for o in scene.objects if o.cls == neg.cls)
                assert neg.colour in neg.text
                # the benchmark's absent colours stay unseen
                assert neg.colour not in {"building": ABSENT_ROOF, "vehicle": ABSENT_VEHICLE}[neg.cls]
                if neg.kind == "unseen_colour":
                    assert neg.colour in OFF_PALETTE[neg.cls]
    assert kinds == {"vocabulary", "class", "hard", "unseen_colour"}
    mixed = build_dataset("synthetic", "train", 128, **STYLED, negatives=0.3, length=200)
    present = np.array([float(mixed.expression(i)[1].kind != "absent") for i in range(200)])
    assert 0.15 < 1 - present.mean() < 0.45
    assert all(mixed[i]["present"] == 1.0 and mixed[i]["mask"].sum() > 0 for i in np.flatnonzero(present)[:30])


def test_wide_vocabulary_negatives_draw_more_names_and_none_of_the_benchmarks():
    """``wide_vocabulary`` widens the unseen objects a negative names (TRAIN_ABSENT_WIDE, a superset of
    TRAIN_ABSENT); the benchmark's absent referents and palette colours stay out, and the default is unchanged."""
    from training.datasets.negatives import TRAIN_ABSENT_WIDE

    assert set(TRAIN_ABSENT) < set(TRAIN_ABSENT_WIDE) and not set(TRAIN_ABSENT_WIDE) & set(NEVER_DRAWN)
    scene = generate_scene(np.random.SeedSequence([3, 1]), 128, 1.6)
    rng, wide_rng = np.random.default_rng(1), np.random.default_rng(1)
    plain = [negative_sentence(scene, rng) for _ in range(400)]
    wide = [negative_sentence(scene, wide_rng, wide_vocabulary=True) for _ in range(400)]
    assert all(n.text in TRAIN_ABSENT for n in plain if n.kind == "vocabulary")
    named = {n.text for n in wide if n.kind == "vocabulary"}
    assert named <= set(TRAIN_ABSENT_WIDE) and named - set(TRAIN_ABSENT)
    assert [n.kind for n in plain] == [n.kind for n in wide]  # only the vocabulary's names differ


def test_pseudo_word_negatives_name_made_up_nouns_the_generator_never_uses():
    from training.datasets.negatives import pseudo_noun
    from training.datasets.vocabulary import NAMES

    known = {w for names in NAMES.values() for group in names for n in group for w in n.split()}
    rng = np.random.default_rng(4)
    nouns = [pseudo_noun(rng) for _ in range(300)]
    assert not set(nouns) & known and len(set(nouns)) > 250
    scene = generate_scene(np.random.SeedSequence([3, 1]), 128, 1.6)
    negs = [negative_sentence(scene, rng, pseudo_words=1.0) for _ in range(300)]
    made_up = [n.text for n in negs if n.kind == "vocabulary"]
    assert made_up and not set(made_up) & set(TRAIN_ABSENT) and all(t.startswith("the ") for t in made_up)
    assert {n.kind for n in negs} - {"vocabulary"}  # the other kinds are drawn as before


def test_joint_loss_masks_learn_from_positives_only_presence_from_all():
    class Stub:
        def loss(self, out, target):
            return ((out["logits"][:, 0] - target) ** 2).mean(), {"mse": 0.0}

    logits = torch.zeros(4, 1, 8, 8, requires_grad=True)
    presence = torch.zeros(4, requires_grad=True)
    target = torch.ones(4, 8, 8)
    target[2:] = 0
    present = torch.tensor([1.0, 1.0, 0.0, 0.0])
    total, parts = joint_loss(Stub(), {"logits": logits, "presence_logits": presence}, target, present)
    total.backward()
    assert logits.grad[:2].abs().sum() > 0 and logits.grad[2:].abs().sum() == 0
    # BCE pushes presence up for positives, down for negatives
    assert (presence.grad[:2] < 0).all() and (presence.grad[2:] > 0).all()
    assert parts["positives"] == 0.5 and "mse" in parts


def test_zoom_in_crops_hold_the_target_and_leave_scene_wide_sentences_whole():
    from training.datasets.synthetic import zoom_in

    ds = build_dataset("synthetic", "train", 128, **STYLED, negatives=0.3, zoom=1.0, length=60)
    zoomed = whole = 0
    for i in range(60):
        scene, expr = ds.expression(i)
        image, mask, text, _ = ds.raw(i)
        assert image.shape == scene.image.shape and mask.shape == scene.labels.shape and text == expr.text
        if expr.kind in ("class", "colour"):
            assert mask.any()                                   # the crop holds part of the target
            zoomed += int(mask.sum() > scene.mask(expr.target).sum())  # enlarged
        elif expr.kind == "absent":
            assert not mask.any()
        else:                                                   # position, size, relation: the whole scene
            assert (image == scene.image).all() and (mask == scene.mask(expr.target)).all()
            whole += 1
    assert zoomed > 5 and whole > 5
    # a window inside one object: the crop is all target
    img, m = np.zeros((64, 64, 3), np.uint8), np.ones((64, 64), bool)
    _, crop = zoom_in(img, m, "class", np.random.default_rng(0))
    assert crop.all()


def test_absent_sentences_can_be_seen_closer_on_an_object_as_the_engine_looks():
    """zoom_on_objects centres an absent sentence's crop on one object (the engine's closer look is centred on what
    a tile's mask found), every object as likely; without it the crop may fall anywhere, as before."""
    from training.datasets.synthetic import object_pixels, zoom_in

    img, empty = np.zeros((64, 64, 3), np.uint8), np.zeros((64, 64), bool)
    img[3, 60] = 255
    near = empty.copy()
    near[3, 60] = True
    for seed in range(20):  # the crop always holds the one object pixel, enlarged
        crop, mask = zoom_in(img, empty, "absent", np.random.default_rng(seed), near=near)
        assert not mask.any() and crop.max() > 0
    held = [zoom_in(img, empty, "absent", np.random.default_rng(s))[0].max() > 0 for s in range(20)]
    assert not all(held)  # anywhere: most crops miss it

    ds = build_dataset("synthetic", "train", 128, **STYLED, length=8)
    scene = ds.scene(0)
    labels = {o.label for o in scene.objects if o.cls not in scene.faint}
    drawn = [object_pixels(scene, np.random.default_rng(s)) for s in range(60)]
    assert all(set(np.unique(scene.labels[m])) <= labels and len(np.unique(scene.labels[m])) == 1 for m in drawn)
    assert len({int(np.unique(scene.labels[m])[0]) for m in drawn}) > min(3, len(labels) - 1)


def test_tile_views_shift_the_scene_at_its_scale_and_leave_scene_wide_sentences_whole():
    """A tile view is the scene shifted with wrap-around: the same pixels and target pixels, objects cut by the
    view's edges; position, size and relation sentences stay whole; zoom and tile views share one draw."""
    ds = build_dataset("synthetic", "train", 128, **STYLED, negatives=0.3, tile_view=1.0, length=60)
    shifted = whole = 0
    for i in range(60):
        scene, expr = ds.expression(i)
        image, mask, _, _ = ds.raw(i)
        target = scene.mask(expr.target)
        if expr.kind in ("class", "colour", "absent"):
            assert mask.sum() == target.sum()                   # nothing enlarged, nothing lost
            assert sorted(map(tuple, image.reshape(-1, 3))) == sorted(map(tuple, scene.image.reshape(-1, 3)))
            shifted += int(not (image == scene.image).all())
        else:
            assert (image == scene.image).all() and (mask == target).all()
            whole += 1
    assert shifted > 5 and whole > 5
    with pytest.raises(ValueError, match="share"):
        build_dataset("synthetic", "train", 128, **STYLED, zoom=0.6, tile_view=0.6, length=4)


def test_near_colour_negatives_favour_colours_close_to_those_shown():
    """With near_colours, "red" is named more often over orange roofs than a far colour is; off by default (the
    shipped stages trained without it)."""
    ds = build_dataset("synthetic", "train", 128, scene_size=128, density=1.6, level=2, length=60)
    counts = {False: [0, 0], True: [0, 0]}  # per mode: (red named, white named) over scenes with orange roofs and
    for near in (False, True):                # neither red, white nor gray ones
        rng = np.random.default_rng(0)
        for k in range(60):
            scene = ds.scene(k)
            roofs = {o.colour for o in scene.objects if o.cls == "building"}
            if "orange" not in roofs or roofs & {"red", "white", "gray"}:
                continue
            for _ in range(40):
                neg = negative_sentence(scene, rng, near_colours=near)
                if neg.kind == "hard" and neg.cls == "building":
                    counts[near][0] += neg.colour == "red"
                    counts[near][1] += neg.colour == "white"
    assert sum(counts[True]) > 20
    assert counts[True][0] > 1.5 * counts[True][1] and counts[True][0] / sum(counts[True]) > \
        counts[False][0] / max(sum(counts[False]), 1)


def test_contrast_pairs_show_the_two_nearest_colours_and_name_one():
    """A contrast pair repaints one object of a class into the palette colour nearest another's (red and orange
    roofs side by side), keeps its shading, and names one colour: the target is every object of the class in it."""
    from training.datasets.contrast import contrast_pair, nearest_colour
    from training.datasets.negatives import PALETTES

    assert nearest_colour(PALETTES["building"], "red") == "orange"
    assert nearest_colour(PALETTES["building"], "orange") == "red"
    seen = 0
    for k in range(40):
        scene = generate_scene(np.random.SeedSequence([5, k]), 128, 1.6)
        pair = contrast_pair(scene, np.random.default_rng(k))
        if pair is None:
            assert all(sum(o.cls == c for o in scene.objects) < 2 for c in PALETTES)
            continue
        seen += 1
        shown, text, target = pair
        changed = [(o, n) for o, n in zip(scene.objects, shown.objects) if o.colour != n.colour]
        assert len(changed) <= 1 and np.array_equal(shown.labels, scene.labels)
        for old, new in changed:
            px = scene.labels == old.label
            partners = [o.colour for o in shown.objects if o.cls == old.cls and o.label != old.label]
            assert any(nearest_colour(PALETTES[old.cls], c) == new.colour for c in partners)
            assert not np.array_equal(shown.image[px], scene.image[px])
            assert np.array_equal(shown.image[~px], scene.image[~px])
            # shading survives: the brightest and darkest roof pixels stay in order
            lum_old, lum_new = scene.image[px].sum(1), shown.image[px].astype(int).sum(1)
            assert np.corrcoef(lum_old, lum_new)[0, 1] > 0.5
        cls = next(o.cls for o in shown.objects if o.label == target[0])
        named = {o.colour for o in shown.objects if o.label in target}
        assert len(named) == 1
        (colour,) = named
        assert colour in text
        assert sorted(target) == sorted(o.label for o in shown.objects if o.cls == cls and o.colour == colour)
        plural = len(target) > 1
        assert any(w in text for w in (("buildings", "houses", "cars", "vehicles") if plural else
                                            ("building", "house", "car", "vehicle")))
        if not plural:
            assert not any(w in text for w in ("buildings", "houses", "cars", "vehicles"))
    assert seen >= 10


def test_contrast_pairs_show_the_colours_a_model_confuses(tmp_path):
    """Given a measured confusion (red cars read as yellow), pairs show the confused colours, not the RGB-nearest
    (black for red cars): two objects of the class wear the two, one is named, and its target is every object of
    the class in that colour."""
    import json

    from training.datasets.contrast import confused_pairs, contrast_pair

    measured = {"classes": {"vehicle": {"colours": ["red", "blue", "yellow"],
                                        "counts": [[10, 0, 9], [0, 10, 1], [10, 0, 10]]},
                            "building": {"colours": ["red", "blue"], "counts": [[10, 2], [0, 10]]}}}
    (tmp_path / "m.json").write_text(json.dumps(measured))
    confused = confused_pairs(tmp_path / "m.json")
    assert confused == {"vehicle": [("red", "yellow")]}
    seen = 0
    for k in range(60):
        scene = generate_scene(np.random.SeedSequence([7, k]), 128, 1.6)
        if sum(o.cls == "vehicle" and o.colour is not None for o in scene.objects) < 2:
            continue
        pair = contrast_pair(scene, np.random.default_rng(k), confused)
        if pair is None:
            continue
        seen += 1
        shown, text, target = pair
        worn = [o.colour for o in shown.objects if o.cls == "vehicle"]
        assert {"red", "yellow"} <= set(worn) and np.array_equal(shown.labels, scene.labels)
        named = "red" if "red" in text else "yellow"
        assert ("yellow" in text) != ("red" in text)
        assert sorted(target) == sorted(o.label for o in shown.objects if o.cls == "vehicle" and o.colour == named)
        for old, new in zip(scene.objects, shown.objects):
            if old.colour != new.colour:
                assert old.cls == "vehicle" and new.colour in ("red", "yellow")
                assert not np.array_equal(shown.image[scene.labels == old.label],
                                          scene.image[scene.labels == old.label])
    assert seen >= 5


def test_confused_pairs_given_for_one_class_never_repaint_another():
    from training.datasets.contrast import confused_spec, contrast_pair

    roofs = confused_spec({"building": [["orange", "red"]]})
    assert roofs == {"building": [("orange", "red")]} and confused_spec(None) is None
    made = 0
    for k in range(60):
        scene = generate_scene(np.random.SeedSequence([9, k]), 128, 1.6)
        pair = contrast_pair(scene, np.random.default_rng(k), roofs)
        if sum(o.cls == "building" and o.colour is not None for o in scene.objects) < 2:
            assert pair is None
            continue
        if pair is None:
            continue
        made += 1
        shown, text, _ = pair
        assert all(o.colour == n.colour for o, n in zip(scene.objects, shown.objects) if o.cls != "building")
        assert ("red" in text) != ("orange" in text)
    assert made >= 5


def test_contrast_share_draws_pairs_for_positives_only_and_is_off_by_default():
    plain = build_dataset("synthetic", "train", 128, scene_size=128, density=1.6, level=2, length=80,
                          negatives=0.3)
    paired = build_dataset("synthetic", "train", 128, scene_size=128, density=1.6, level=2, length=80,
                           negatives=0.3, contrast=1.0)
    repainted = 0
    for i in range(80):
        (s0, e0), (s1, e1) = plain.expression(i), paired.expression(i)
        if e0.kind == "absent":  # negatives are drawn first and stay as they were
            assert (e1.text, e1.target) == (e0.text, e0.target)
            continue
        assert s0 is plain.scene(i // plain.refs_per_scene)
        if s1 is not paired.scene(i // paired.refs_per_scene):
            repainted += 1
        assert e1.kind == "colour" or all(sum(o.cls == c for o in s1.objects) < 2 for c in ("building", "vehicle"))
    assert repainted > 10


def test_unseen_names_count_answers_only_where_presence_passes_and_a_mask_is_drawn():
    from training.unseen_names import PROBE_NAMES, answers, scene_tiles

    class FiresOn:
        """Sure of "the car wash" everywhere but draws it only on tile 0; half sure of "the jetty", drawn."""

        def predict(self, tiles, texts, batch_size=None, presence=False):
            prob = np.zeros((len(tiles), len(texts), 8, 8), np.float32)
            pres = np.zeros((len(tiles), len(texts)), np.float32)
            for j, t in enumerate(texts):
                if t == "the car wash":
                    pres[:, j], prob[0, j] = 0.99, 1.0
                elif t == "the jetty":
                    pres[:, j], prob[:, j] = 0.5, 1.0
            return prob, pres

    tiles = scene_tiles([generate_scene(np.random.SeedSequence([1, 2]), 256)], 128)
    assert tiles.shape == (4, 128, 128, 3)
    hit = answers(FiresOn(), tiles, PROBE_NAMES, threshold=0.85)
    assert hit.sum() == 1 and hit[0, PROBE_NAMES.index("the car wash")]


def test_colour_confusion_reads_every_word_a_model_answers_on_an_object():
    """A model that answers "red" and "orange" alike reads both on either roof: the measure counts it, where an
    argmax over the words would hide it in a coin toss."""
    from training.colour_confusion import confusion, scenes_of

    class WarmIsWarm:
        """Covers the tile for the words in ``words``: its object's colour, and both red and orange on a warm roof."""

        words: set = set()

        def predict(self, tiles, texts):
            out = np.zeros((1, len(texts), *tiles.shape[1:3]), np.float32)
            for j, t in enumerate(texts):
                out[0, j] = any(w in t for w in self.words)
            return out

    scene = next(scenes_of("val", 1, None))
    model = WarmIsWarm()
    result = {}
    for o in scene.objects:  # one object at a time, so the fake knows which words to answer
        if o.cls not in ("building", "vehicle") or o.colour is None:
            continue
        model.words = {o.colour} | ({"red", "orange"} if o.colour in ("red", "orange") and o.cls == "building"
                                    else set())
        one = dataclasses.replace(scene, objects=[o])
        for cls, (colours, m, right, n) in confusion(model, [one], 64).items():
            prev = result.get(cls, (colours, 0, 0, 0))
            result[cls] = (colours, prev[1] + m, prev[2] + right, prev[3] + n)
    colours, m, right, n = result["building"]
    warm = [o for o in scene.objects if o.cls == "building" and o.colour in ("red", "orange")]
    assert warm and n == sum(o.cls == "building" for o in scene.objects) and right == n - len(warm)
    for o in warm:
        assert m[colours.index(o.colour), colours.index("red")] and m[colours.index(o.colour), colours.index("orange")]


def test_contrast_repaints_under_a_look_take_the_colour_the_scene_shows():
    """Under a style family's look a palette colour shows otherwise (white balance, gamma, stretch): the repaint
    takes the new colour from an object of the scene wearing it, and without one makes no pair."""
    from training.datasets.contrast import recolour

    checked = refused = 0
    for k in range(30):
        ss = np.random.SeedSequence([6, k])
        scene = generate_scene(ss, 128, 1.6, look=sample_look("arid", np.random.default_rng(k)))
        roofs = [o for o in scene.objects if o.cls == "building"]
        if len(roofs) < 2:
            continue
        obj = roofs[0]
        for colour in {o.colour for o in roofs[1:]} - {obj.colour}:
            image = recolour(scene, obj, colour)
            worn = np.concatenate([scene.image[scene.labels == o.label] for o in roofs if o.colour == colour])
            got = image[scene.labels == obj.label].astype(float).mean(0)
            assert np.abs(got - worn.astype(float).mean(0)).max() < 25
            checked += 1
        unseen = [c for c in ROOF_COLOURS if c not in {o.colour for o in roofs}]
        if unseen:
            assert recolour(scene, obj, unseen[0]) is None
            refused += 1
    assert checked >= 5 and refused >= 5


def test_colour_probe_held_out_boxes_name_one_of_two_colours():
    from training.colour_probe import ORANGE, RED, box_pairs

    px, masks, texts = box_pairs(6, 128, np.random.default_rng(0))
    assert px.shape == (6, 3, 128, 128) and masks.shape == (6, 1, 128, 128) and float(px.max()) <= 1.0
    for k, text in enumerate(texts):
        img = (px[k].permute(1, 2, 0).numpy() * 255).astype(int)
        named = masks[k, 0].numpy() > 0
        colour = RED if "red" in text else ORANGE
        assert named.any() and np.abs(img[named].mean(0) - colour).max() < 30  # a box is its colour +- noise
        other = ORANGE if colour == RED else RED
        assert (np.abs(img - other).max(-1) < 30)[~named].sum() > 100  # the other box is there, unnamed


def test_lookalike_negatives_favour_absent_classes_the_model_finds_in_what_is_shown(tmp_path):
    """confused_classes: over scenes with buildings and no tank, "the storage tank" is named as a negative more
    often when tanks are taken for buildings; other scenes and the default draws are untouched."""
    from training.datasets.negatives import GROUND, confused_classes, lookalike_spec

    measured = {"tank": {"asked": 700, "answered": 1, "on": {"building": 1}, "shown": {"building": 550}},
                "tree": {"asked": 300, "answered": 1, "on": {GROUND: 1}, "shown": {"building": 200}},
                "water": {"asked": 700, "answered": 0, "on": {}, "shown": {"building": 500}}}
    assert confused_classes(measured) == {"tank": ["building"]}  # a mask on no object names no look-alike
    assert confused_classes(measured, min_rate=0.01) == {}
    path = tmp_path / "cc.json"
    path.write_text(json.dumps({"classes": measured}))
    assert lookalike_spec(str(path)) == {"tank": ["building"]} and lookalike_spec(None) is None
    assert lookalike_spec({"tank": ("building",)}) == {"tank": ["building"]}

    ds = build_dataset("synthetic", "train", 128, scene_size=128, density=1.6, level=2, length=200)
    scenes = [ds.scene(k) for k in range(200)]
    with_roofs = [s for s in scenes if {o.cls for o in s.objects} >= {"building"} and
                  "tank" not in {o.cls for o in s.objects} | set(s.faint)]
    assert len(with_roofs) >= 10
    tanks = {}
    for spec in (None, {"tank": ["building"]}):
        rng, named, classes = np.random.default_rng(0), 0, 0
        for scene in with_roofs:
            for _ in range(30):
                neg = negative_sentence(scene, rng, confused_classes=spec)
                if neg.kind == "class":
                    classes += 1
                    named += neg.cls == "tank"
        tanks[spec is not None] = named / classes
    assert tanks[True] > 1.5 * tanks[False]
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)  # off: the draws of before
    for scene in scenes[:40]:
        assert negative_sentence(scene, rng_a) == negative_sentence(scene, rng_b, confused_classes=None)


def test_class_confusion_counts_answers_against_the_class_under_the_mask():
    """A model that answers "the storage tank" by drawing every building is counted once per tile that shows
    buildings and no tank, against "building"; a tile that shows tanks is never asked for them."""
    from training.class_confusion import class_confusion
    from training.datasets.negatives import confused_classes

    scenes = [generate_scene(np.random.SeedSequence([3, k]), 256) for k in range(6)]
    labels = {}

    class DrawsBuildings:
        input_size = 128

        def predict(self, tiles, texts, batch_size=None, presence=False):
            prob = np.zeros((len(tiles), len(texts), 128, 128), np.float32)
            pres = np.zeros((len(tiles), len(texts)), np.float32)
            j = texts.index("the storage tank")
            for t in range(len(tiles)):
                prob[t, j] = labels["building"][t]
                pres[t, j] = 0.99
            return prob, pres

    side = 128
    tiles_of = [(sc, r, c) for sc in scenes for r in (0, side) for c in (0, side)]
    labels["building"] = [np.isin(sc.labels[r:r + side, c:c + side],
                                  [o.label for o in sc.objects if o.cls == "building"]).astype(np.float32)
                          for sc, r, c in tiles_of]
    shows = [{o.cls for o in sc.objects if (sc.labels[r:r + side, c:c + side] == o.label).any()}
             for sc, r, c in tiles_of]
    got = class_confusion(DrawsBuildings(), scenes, threshold=0.85)["tank"]
    no_tank = [s for s in shows if "tank" not in s]
    assert got["asked"] == len(no_tank)
    assert got["on"].get("building", 0) == got["answered"] == sum("building" in s for s in no_tank) > 0
    assert got["shown"]["building"] == sum("building" in s for s in no_tank)
    assert "tank" in confused_classes({"tank": got}) and confused_classes({"tank": got})["tank"] == ["building"]


def test_roadless_scenes_have_no_road_and_no_vehicle_and_name_the_road_as_absent():
    """roadless: that share of scenes drawn without roads (so without vehicles, which park on them), where "the
    road" can be a negative; a scene with nothing else left is drawn with its roads; off by default."""
    plain = build_dataset("synthetic", "train", 128, scene_size=128, density=1.6, level=2, length=400)
    ds = build_dataset("synthetic", "train", 128, scene_size=128, density=1.6, level=2, length=400,
                       negatives=0.5, roadless=0.3)
    roadless = [k for k in range(100) if ds.excluded(k)]
    assert 15 <= len(roadless) <= 45 and not plain.excluded(0)
    kept = [k for k in range(100) if k not in roadless]
    assert all(ds.scene(k).image.tobytes() == plain.scene(k).image.tobytes() for k in kept[:10])
    for k in roadless:
        classes = {o.cls for o in ds.scene(k).objects}
        if not classes - set(ds.scene(k).faint):
            continue
        assert "road" not in classes or ds.scene(k).image.tobytes() == plain.scene(k).image.tobytes()
        if "road" not in classes:
            assert "vehicle" not in classes
    named = [ds.expression(i)[1] for i in range(400) if ds.drawn(i)[2] == "negative"]
    assert any("road" in e.text for e in named)
    for i in range(400):  # every sample still has a sentence
        assert ds.expression(i)[1].text
    with pytest.raises(ValueError, match="cannot exclude"):
        generate_scene(np.random.SeedSequence([1]), 128, exclude=("runway",))
