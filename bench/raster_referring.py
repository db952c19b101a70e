"""Raster-scale referring benchmark (not a test): does a query find its referent in the whole raster, and nothing
where there is none? Today's per-tile engine (scope "tile") and whole-extent referring (scope "extent") answer the
same sentences on the same held-out mosaics in one run.

    .venv/bin/python bench/raster_referring.py [--split test] [--mosaics 6] [--per-kind 3] [--big 8192]
        [--model demo] [--wordings beyond] [--out bench/results] [--name raster_referring]

Mosaics (training/datasets/mosaic.py) paste 2x2 to 4x4 synthetic scenes of 256 px (4x4 to 8x8 tiles of the demo
model's 128 px) drawn from the split's own seeds (the test split is never trained on); some leave tanks or water out
everywhere. Sentences are judged over the whole mosaic, in seven kinds (class, attribute, superlative, position,
count, relation, absent), template wordings and paraphrases the generator never uses. ``--big`` adds one mosaic of
that side with a single referent (one storage tank in one cell, none elsewhere) to count tile forwards.

Metrics per kind and scope (generalised referring segmentation, taken to raster scale):
N-acc (absent referents answered with nothing), T-acc (present ones not emptied), gIoU (mean IoU per sentence, a
correct empty answer counting 1), raster IoU (summed intersection over summed union of the present sentences), false
positive area outside the ground truth (m2 and share of the answer), model forwards (one per tile or window and text)
and seconds; for class-level plurals, the share of referent objects found, small ones apart. Writes NAME.json and NAME.md into --out.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from collections import defaultdict

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

RES = 0.5
ORIGIN = (455_000.0, 5_110_000.0)
EXCLUDES = [(), ("tank",), ("water",), ("tank", "water"), ("vehicle",), ()]


def write_geotiff(path: str, image: np.ndarray):
    import rasterio
    from rasterio.transform import from_origin

    h, w, _ = image.shape
    prof = dict(driver="GTiff", width=w, height=h, count=3, dtype="uint8", crs="EPSG:32633",
                transform=from_origin(ORIGIN[0], ORIGIN[1], RES, RES), tiled=True, blockxsize=256, blockysize=256,
                compress="deflate", photometric="RGB")
    with rasterio.open(path, "w", **prof) as dst:
        dst.write(image.transpose(2, 0, 1))
    return prof["transform"]


def rasterize(polys, shape, transform) -> np.ndarray:
    from rasterio import features

    if not polys:
        return np.zeros(shape, bool)
    return features.rasterize([(p.geometry, 1) for p in polys], out_shape=shape, transform=transform, fill=0,
                              dtype="uint8").astype(bool)


def score(pred: np.ndarray, truth: np.ndarray) -> dict:
    inter, union = int((pred & truth).sum()), int((pred | truth).sum())
    return {"inter": inter, "union": union, "fp_px": int((pred & ~truth).sum()), "pred_px": int(pred.sum()),
            "iou": 1.0 if union == 0 else inter / union, "empty": not pred.any()}


#: objects under this many pixels (25 m2 at 0.5 m: cars, small tanks) are "small" in the plural recall
SMALL_PX = 100


def object_hits(pred: np.ndarray, labels: np.ndarray, target: list[int]) -> list[tuple[int, bool]]:
    """(pixels, found) per referent object; found = at least half its pixels answered. Class-level plurals must
    not lose small objects, which the raster IoU (dominated by large ones) would hide."""
    sizes = np.bincount(labels.ravel(), minlength=max(target) + 1)
    covered = np.bincount(labels[pred].ravel(), minlength=max(target) + 1)
    return [(int(sizes[t]), bool(covered[t] * 2 >= sizes[t])) for t in target if sizes[t]]


def pick(queries, per_kind: int, rng) -> list:
    """At most ``per_kind`` sentences of each kind, paraphrases and templates alike."""
    by = defaultdict(list)
    for q in queries:
        by[q.kind].append(q)
    out = []
    for qs in by.values():
        idx = rng.permutation(len(qs))[:per_kind]
        out += [qs[i] for i in sorted(idx)]
    return out


def run_scopes(path, mosaic, queries, predictor, transform, scopes, options) -> list[dict]:
    from rs2sam2_qgis.pipeline import segment_raster

    rows = []
    shape = mosaic.labels.shape
    for scope in scopes:
        opts = options.replace(scope=scope)
        t0 = time.perf_counter()
        res = segment_raster(path, [q.text for q in queries], predictor, opts)
        secs = time.perf_counter() - t0
        st = res.stats
        for q in queries:
            polys = res.polygons[" ".join(q.text.split())]
            pred = rasterize(polys, shape, transform)
            s = score(pred, mosaic.mask(q.target))
            hits = object_hits(pred, mosaic.labels, q.target) if q.kind == "class" else []
            rows.append(dict(scope=scope, text=q.text, kind=q.kind, template=q.template, present=bool(q.target),
                             polygons=len(polys), plan=st.plans.get(" ".join(q.text.split()), ""), objects=hits,
                             **s))
        rows.append(dict(scope=scope, run=True, seconds=secs, forwards=st.forwards, tiles_total=st.tiles_total,
                         tiles_run=st.tiles_run, tiles_skipped=st.tiles_skipped, coarse_windows=st.coarse_windows,
                         queries=len(queries), size=shape[0]))
    return rows


def one_referent_scene(seed: int):
    """A 256 px scene with exactly one storage tank (the lone referent of the big mosaic)."""
    from training.datasets.synthetic import generate_scene

    for k in range(10_000):
        sc = generate_scene(np.random.SeedSequence([seed, 99, k]), 256, exclude=("water",))
        if sum(o.cls == "tank" for o in sc.objects) == 1:
            return sc
    raise RuntimeError("no scene with one tank found")


def summarise(rows: list[dict]) -> dict:
    """Metrics per scope and kind ("all" too), and per wording (template / paraphrase)."""
    px_m2 = RES * RES
    out: dict = {}
    for scope in sorted({r["scope"] for r in rows}):
        qs = [r for r in rows if r["scope"] == scope and not r.get("run")]
        groups = {"all": qs}
        for kind in ("class", "attribute", "superlative", "position", "count", "relation", "absent"):
            groups[kind] = [r for r in qs if r["kind"] == kind]
        groups["template"] = [r for r in qs if r["template"]]
        groups["paraphrase"] = [r for r in qs if not r["template"]]
        res = {}
        for g, rs in groups.items():
            if not rs:
                continue
            pres = [r for r in rs if r["present"]]
            absent = [r for r in rs if not r["present"]]
            inter = sum(r["inter"] for r in pres)
            union = sum(r["union"] for r in pres)
            fp = sum(r["fp_px"] for r in rs)
            pred = sum(r["pred_px"] for r in rs)
            res[g] = dict(n=len(rs), n_present=len(pres), n_absent=len(absent),
                          n_acc=float(np.mean([r["empty"] for r in absent])) if absent else None,
                          t_acc=float(np.mean([not r["empty"] for r in pres])) if pres else None,
                          giou=float(np.mean([r["iou"] for r in rs])),
                          raster_iou=inter / union if union else None,
                          miou_present=float(np.mean([r["iou"] for r in pres])) if pres else None,
                          fp_m2=fp * px_m2, fp_share=fp / pred if pred else 0.0,
                          polygons=int(sum(r["polygons"] for r in rs)))
        objects = [o for r in qs for o in r.get("objects", [])]
        small = [found for px, found in objects if px < SMALL_PX]
        res["class_objects"] = dict(n=len(objects), recall=float(np.mean([f for _, f in objects])) if objects else None,
                                    n_small=len(small), recall_small=float(np.mean(small)) if small else None)
        runs = [r for r in rows if r["scope"] == scope and r.get("run")]
        res["runs"] = dict(seconds=sum(r["seconds"] for r in runs), forwards=sum(r["forwards"] for r in runs),
                           tiles_total=sum(r["tiles_total"] for r in runs), tiles_run=sum(r["tiles_run"] for r in runs))
        out[scope] = res
    return out


def fmt(v, nd=3):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def markdown(meta: dict, summary: dict, big: dict | None) -> str:
    wordings = "" if meta.get("wordings", "generator") == "generator" else f", wordings {meta['wordings']}"
    lines = [f"# Raster-scale referring ({meta['split']} split, model {meta['model']}{wordings})", "",
             f"Command: `{meta['command']}` (commit {meta.get('commit', 'unknown')})", "",
             f"{meta['mosaics']} mosaics ({', '.join(str(s) for s in meta['sizes'])} px at {RES} m), "
             f"{meta['queries']} sentences; {meta['machine']}; {meta['date']}.", "",
             "| kind | scope | n (present/absent) | N-acc | T-acc | gIoU | raster IoU | FP area m2 | FP share | "
             "polygons |", "|---|---|---|---|---|---|---|---|---|---|"]
    kinds = ["class", "attribute", "superlative", "position", "count", "relation", "absent", "template",
             "paraphrase", "all"]
    for kind in kinds:
        for scope in ("tile", "extent"):
            r = summary.get(scope, {}).get(kind)
            if not r:
                continue
            lines.append(f"| {kind} | {scope} | {r['n']} ({r['n_present']}/{r['n_absent']}) | {fmt(r['n_acc'])} | "
                         f"{fmt(r['t_acc'])} | {fmt(r['giou'])} | {fmt(r['raster_iou'])} | {r['fp_m2']:,.0f} | "
                         f"{r['fp_share']:.3f} | {r['polygons']} |")
    lines += ["", f"Class-level plurals, object recall (an object is found when half its pixels are answered; small: "
              f"under {SMALL_PX} px):", "", "| scope | objects | recall | small objects | recall of small |",
              "|---|---|---|---|---|"]
    for scope in ("tile", "extent"):
        r = summary.get(scope, {}).get("class_objects")
        if r:
            lines.append(f"| {scope} | {r['n']} | {fmt(r['recall'])} | {r['n_small']} | {fmt(r['recall_small'])} |")
    lines += ["", "| scope | seconds | model forwards | fine tiles run / grid |", "|---|---|---|---|"]
    for scope in ("tile", "extent"):
        r = summary.get(scope, {}).get("runs")
        if r:
            lines.append(f"| {scope} | {r['seconds']:.1f} | {r['forwards']:,} | {r['tiles_run']:,} / "
                         f"{r['tiles_total']:,} |")
    if big:
        lines += ["", f"## One referent in a {big['size']} x {big['size']} px mosaic: '{big['query']}'", "",
                  "| scope | IoU | polygons | model forwards | fine tiles run / grid | coarse windows | seconds |",
                  "|---|---|---|---|---|---|---|"]
        for scope in ("tile", "extent"):
            r = big.get(scope)
            if r:
                lines.append(f"| {scope} | {r['iou']:.3f} | {r['polygons']} | {r['forwards']:,} | "
                             f"{r['tiles_run']:,} / {r['tiles_total']:,} | {r['coarse_windows']} | "
                             f"{r['seconds']:.1f} |")
        if big.get("tile") and big.get("extent"):
            lines.append(f"\nForwards: {big['tile']['forwards'] / max(1, big['extent']['forwards']):.1f}x fewer "
                         f"in extent scope.")
    return "\n".join(lines) + "\n"


def _git_commit() -> str:
    import subprocess

    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def bench_mosaics(seed: int, split: str, count: int, per_kind: int, rng: np.random.Generator,
                  unique_colours: bool = True, wordings: str = "generator"):
    """The benchmark's mosaics in order, each with the sentences drawn for it from ``rng``: (index, mosaic,
    queries). Every bench that scores these sentences draws them here, so that it sees the same ones.
    ``wordings``: "generator" (``describe_mosaic``: templates and paraphrases) or "beyond" (``describe_beyond``:
    requests, ordinals, the centre, relations by side and distance, lists, areas)."""
    from training.datasets.mosaic import build_mosaic, describe_beyond, describe_mosaic

    for i in range(count):
        cells = (2, 3, 4)[i % 3]
        mosaic = build_mosaic(seed, split, i, cells, exclude=EXCLUDES[i % len(EXCLUDES)],
                              unique_colours=unique_colours)
        sentences = describe_mosaic(mosaic, rng) if wordings == "generator" else describe_beyond(mosaic, RES * RES)
        yield i, mosaic, pick(sentences, per_kind, rng)


def cpu_predictor(model: str):
    """The model a bench runs: ``model`` as the engine resolves it (a name or a checkpoint path), on the CPU."""
    from model_core import Predictor
    from rs2sam2_qgis.pipeline.model_spec import resolve_model

    return Predictor(resolve_model(model, allow_code=True), device="cpu")


def recorded_command(script: str, argv) -> str:
    """The command a results file records: ``script`` run from the repository root with these arguments."""
    return " ".join(shlex.quote(x) for x in [".venv/bin/python", script, *(argv if argv is not None else sys.argv[1:])])


def save_results(out: str, name: str, record: dict, text: str) -> None:
    """NAME.json (``record``) and NAME.md (``text``, also printed) in ``out``."""
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, f"{name}.json"), "w") as f:
        json.dump(record, f, indent=1)
    with open(os.path.join(out, f"{name}.md"), "w") as f:
        f.write(text)
    print(text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", default="test", choices=("train", "val", "test"))
    ap.add_argument("--mosaics", type=int, default=6)
    ap.add_argument("--per-kind", type=int, default=3, help="sentences of each kind per mosaic (at most)")
    ap.add_argument("--big", type=int, default=8192, help="side of the one-referent mosaic (0: none)")
    ap.add_argument("--model", default="demo")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--presence-threshold", type=float, help="extent scope (default: the engine's)")
    ap.add_argument("--seed", type=int, default=2401)
    ap.add_argument("--unique-colours", action=argparse.BooleanOptionalAction, default=True,
                    help="repaint one building and one vehicle per mosaic into a colour no other has, so that "
                         "singular attribute sentences exist (training.datasets.mosaic.plant_unique_colour)")
    ap.add_argument("--refine-edges", action=argparse.BooleanOptionalAction, default=None,
                    help="the engine's edge refinement on or off (default: SegmentOptions.refine_edges)")
    ap.add_argument("--wordings", default="generator", choices=("generator", "beyond"),
                    help="the generator's templates and paraphrases, or wordings beyond them (requests, ordinals, "
                         "the centre, relations by side and distance, lists, areas: "
                         "training.datasets.mosaic.describe_beyond)")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    ap.add_argument("--name", default="raster_referring")
    a = ap.parse_args(argv)

    from rs2sam2_qgis.pipeline import SegmentOptions
    from training.datasets.mosaic import build_mosaic

    commit = _git_commit()  # the code that runs, taken before the (long) run
    predictor = cpu_predictor(a.model)
    options = SegmentOptions(batch_size=a.batch_size)
    if a.refine_edges is not None:
        options = options.replace(refine_edges=a.refine_edges)
    if a.presence_threshold is not None:
        options = options.replace(presence_threshold=a.presence_threshold)
    rng = np.random.default_rng(a.seed)
    rows, sizes, n_queries = [], [], 0
    with tempfile.TemporaryDirectory(prefix="rs2sam2-bench-") as tmp:
        for i, mosaic, queries in bench_mosaics(a.seed, a.split, a.mosaics, a.per_kind, rng, a.unique_colours,
                                                  a.wordings):
            path = os.path.join(tmp, f"mosaic_{i}.tif")
            transform = write_geotiff(path, mosaic.image)
            sizes.append(mosaic.labels.shape[0])
            n_queries += len(queries)
            print(f"mosaic {i}: {mosaic.labels.shape[0]} px, {len(queries)} sentences", file=sys.stderr, flush=True)
            rows += run_scopes(path, mosaic, queries, predictor, transform, ("tile", "extent"), options)
        big = None
        if a.big:
            from training.datasets.mosaic import Query

            cells = a.big // 256
            lone = one_referent_scene(a.seed)
            where = int(rng.integers(cells * cells))
            mosaic = build_mosaic(a.seed, a.split, 999, cells, exclude=("tank", "water"), only_cell=(where, lone))
            path = os.path.join(tmp, "big.tif")
            transform = write_geotiff(path, mosaic.image)
            target = [o.label for o in mosaic.objects if o.cls == "tank"]
            q = Query("the storage tank", "attribute", target, True)
            print(f"big mosaic: {a.big} px, one tank in cell {where}", file=sys.stderr, flush=True)
            del mosaic.image
            big_rows = run_scopes(path, mosaic, [q], predictor, transform, ("extent", "tile"), options)
            big = {"size": a.big, "query": q.text}
            for scope in ("tile", "extent"):
                qrow = next(r for r in big_rows if r["scope"] == scope and not r.get("run"))
                run = next(r for r in big_rows if r["scope"] == scope and r.get("run"))
                big[scope] = {**qrow, **run}
    summary = summarise(rows)
    meta = dict(command=recorded_command("bench/raster_referring.py", argv), commit=commit, split=a.split,
                model=a.model, mosaics=a.mosaics, sizes=sizes, unique_colours=a.unique_colours, queries=n_queries,
                wordings=a.wordings,
                machine=f"{platform.machine()}, {os.cpu_count()} CPU(s), torch threads "
                        f"{__import__('torch').get_num_threads()}",
                date=time.strftime("%Y-%m-%d"))
    save_results(a.out, a.name, {"meta": meta, "summary": summary, "big": big, "rows": rows},
                 markdown(meta, summary, big))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
