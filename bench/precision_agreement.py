"""bf16 against fp32, decision by decision (not a test): what a lower precision changes in the masks.

    .venv/bin/python bench/precision_agreement.py --threads 1          # CPU: the demo on the sample + golden
    .venv/bin/python bench/precision_agreement.py --skip-golden         # the demo part only (~1 min)

1. Demo model on the bundled sample (data/sample/sample_scene.tif), the six class-level queries:
   - decisions (the model's probability >= 0.5) of every pixel of the 64 tiles of 128 px, bf16 against fp32;
   - the engine end to end (`segment_raster`, default options as `make demo`) per precision: seconds (median of 3
     after a warm-up) and IoU of each query's polygons with the ground truth (sample_scene.gpkg);
   - the same IoUs under the probability rule used before issue 18 (sigmoid(x)), next to the trained rule.
2. Golden fixture (paper preset, the fixture's rule-filled weights; needs ~9 GB of RAM): the authors' contract
   (their preprocessing, one caption) in fp32 and in bf16; share of the 1024 x 1024 decisions (logit > 0.5, which
   the analyst's threshold 0.5 equals) that bf16 keeps, against fp32 and against the authors' own final_mask.

Writes OUT.json and OUT.md (default bench/results/cpu_precision_agreement); the Markdown starts with the command.
`golden_agreement` is also the bf16 step of bench/gpu_check.py.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SAMPLE = ROOT / "data" / "sample" / "sample_scene.tif"
TRUTH = ROOT / "data" / "sample" / "sample_scene.gpkg"
GOLDEN = ROOT.parent / "shared" / "reference" / "golden"
CLASS_QUERIES = {"the storage tanks": "tank", "the buildings": "building", "the water": "water",
                 "the roads": "road", "the trees": "tree", "the cars": "vehicle"}


def _tiles(path: Path, size: int) -> np.ndarray:
    import rasterio

    with rasterio.open(path) as ds:
        img = np.moveaxis(ds.read([1, 2, 3]), 0, -1)
    h, w = img.shape[0] // size * size, img.shape[1] // size * size
    t = img[:h, :w].reshape(h // size, size, w // size, size, 3).swapaxes(1, 2)
    return np.ascontiguousarray(t.reshape(-1, size, size, 3))


def _ious(result, queries: dict) -> dict:
    import pyogrio
    import shapely

    out = {}
    for q, klass in queries.items():
        found = shapely.union_all([p.geometry for p in result.polygons[q]]) if result.polygons[q] else \
            shapely.Polygon()
        info = pyogrio.raw.read(TRUTH, where=f"class = '{klass}'", read_geometry=True, columns=[])
        truth = shapely.union_all(shapely.from_wkb(info[2]))
        union = found.union(truth).area
        out[q] = round(found.intersection(truth).area / union, 4) if union else 0.0
    return out


def sample_agreement(device: str = "cpu", precisions=("fp32", "bf16"), repeats: int = 3,
                     sample: Path = SAMPLE, queries: dict | None = None) -> dict:
    """The demo model on the sample: decision agreement with the first precision, engine seconds and IoUs."""
    import model_core
    from model_core.predictor import Predictor
    from rs2sam2_qgis.pipeline import SegmentOptions, segment_raster

    queries = queries or CLASS_QUERIES
    model = model_core.load_model("demo")
    auto = Predictor(model, device=device)
    res: dict = {"model": model.name, "queries": list(queries), "auto": [auto.precision, auto.precision_reason],
                 "precisions": {}}
    ref = None
    for name in precisions:
        pred = Predictor(model, device=device, precision=name)
        tiles = _tiles(sample, pred.input_size)
        fg = pred.predict(tiles, list(queries)) >= 0.5
        row = {"precision_reason": pred.precision_reason, "decisions": int(fg.size),
               "foreground_share": round(float(fg.mean()), 5)}
        if ref is None:
            ref = fg
        else:
            row["decisions_equal_to_" + precisions[0]] = round(float((fg == ref).mean()), 6)
            row["decisions_differing"] = int((fg != ref).sum())
        segment_raster(sample, list(queries), pred, SegmentOptions())  # warm-up
        secs = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            result = segment_raster(sample, list(queries), pred, SegmentOptions())
            secs.append(time.perf_counter() - t0)
        row.update(engine_s=round(statistics.median(secs), 3), engine_s_all=[round(s, 3) for s in secs],
                   iou=_ious(result, queries))
        res["precisions"][name] = row
    # the rule before issue 18 (sigmoid(x)) against the trained one, first precision
    pred = Predictor(model, device=device, precision=precisions[0])
    model.prob_rule = "sigmoid"  # instance attribute over the class's trained rule, for this comparison only
    try:
        res["iou_rule_sigmoid_before"] = _ious(segment_raster(sample, list(queries), pred, SegmentOptions()), queries)
    finally:
        del model.prob_rule
    res["iou_rule_two_class_now"] = res["precisions"][precisions[0]]["iou"]
    return res


def golden_agreement(golden: Path = GOLDEN, device: str = "cpu", precisions=("fp32", "bf16"),
                     release: Path | None = None, model=None, image: np.ndarray | None = None,
                     input_ids=None) -> dict:
    """The authors' contract per precision, on the golden input (or `image` + `input_ids`, then without the
    authors' mask): forward seconds and the share of decisions (probability >= 0.5 under the model's trained rule,
    i.e. logit > 0.5) equal to the first precision's and to the authors' final_mask."""
    import torch

    import model_core
    from model_core.fidelity import golden_input, write_release
    from model_core.predictor import Predictor

    tmp = None
    res: dict = {"precisions": {}}
    try:
        if model is None:
            if release is None:
                tmp = Path(tempfile.mkdtemp(prefix="rs2sam2-release-"))
                release = tmp / "release"
                res["release_write_s"] = round(write_release(golden, release), 1)
            model = model_core.load_model(release)
        theirs = None
        if image is None:
            image, spec = golden_input(golden)
            input_ids = spec["input_ids"]
            theirs = np.load(golden / "outputs.npz")["final_mask"] > 0.5
        ref = None
        for name in precisions:
            pred = Predictor(model, device=device, precision=name, mode="authors")
            pred.authors_outputs(image[None], input_ids=input_ids)
            t0 = time.perf_counter()  # second forward: kernels warm, weights paged in
            out = pred.authors_outputs(image[None], input_ids=input_ids)
            secs = time.perf_counter() - t0
            fg = model.logits_to_prob(torch.from_numpy(out["final_logits"])).numpy()[:, 0] >= 0.5
            row = {"forward_s": round(secs, 3), "foreground_share": round(float(fg.mean()), 5)}
            if theirs is not None:
                row["decisions_equal_to_authors_final_mask"] = round(float((fg == theirs).mean()), 6)
            if ref is None:
                ref = fg
            else:
                row["decisions_equal_to_" + precisions[0]] = round(float((fg == ref).mean()), 6)
                row["decisions_differing"] = int((fg != ref).sum())
            res["precisions"][name] = row
        res["decisions"] = int(ref.size)
        return res
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _equal(row: dict, digits: int) -> str:
    eq = row.get("decisions_equal_to_fp32")
    return "-" if eq is None else f"{100 * eq:.{digits}f} % ({row['decisions_differing']} differ)"


def to_markdown(meta: dict, res: dict) -> str:
    lines = ["# bf16 against fp32: decisions and time", "", f"Command: `{meta['command']}`", "",
             f"{meta['date_utc']}, torch {meta['torch']}, device {meta['device']}, {meta['threads']} torch thread(s), "
             f"native bf16: {', '.join(meta['cpu_native_bf16']) or 'none'}, load average at end "
             f"{meta['load_avg_at_end']:.1f}.", ""]
    s = res.get("sample")
    if s:
        qs = s["queries"]
        lines += [f"## Demo model ({s['model']}) on data/sample/sample_scene.tif", "",
                  f"precision=\"auto\" picks {s['auto'][0]} here ({s['auto'][1]}).", "",
                  "| precision | decisions (64 tiles x 6 queries) | equal to fp32 | engine s (median of 3) | "
                  + " | ".join(f"IoU {q}" for q in qs) + " |", "|---|---:|---:|---:|" + "---:|" * len(qs)]
        for name, r in s["precisions"].items():
            lines.append(f"| {name} | {r['decisions']} | {_equal(r, 4)} | "
                         f"{r['engine_s']:.3f} | " + " | ".join(f"{r['iou'][q]:.3f}" for q in qs) + " |")
        lines += ["", "IoU by probability rule (fp32, engine defaults):", "",
                  "| rule | " + " | ".join(qs) + " |", "|---|" + "---:|" * len(qs),
                  "| sigmoid(x) (before issue 18) | " + " | ".join(f"{s['iou_rule_sigmoid_before'][q]:.3f}" for q in qs)
                  + " |",
                  "| sigmoid(2x - 1) (trained, now) | " + " | ".join(f"{s['iou_rule_two_class_now'][q]:.3f}"
                                                                  for q in qs) + " |", ""]
    g = res.get("golden")
    if g:
        lines += ["## Golden fixture (paper preset, rule-filled weights), the authors' contract, 1024 x 1024", "",
                  "| precision | forward s | foreground share | equal to fp32 | equal to the authors' final_mask |",
                  "|---|---:|---:|---:|---:|"]
        for name, r in g["precisions"].items():
            lines.append(f"| {name} | {r['forward_s']:.2f} | {r['foreground_share']:.4f} | {_equal(r, 3)} | "
                         f"{100 * r['decisions_equal_to_authors_final_mask']:.3f} % |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--skip-golden", action="store_true")
    ap.add_argument("--golden", default=str(GOLDEN))
    ap.add_argument("--release", default=None, help="an existing release folder (default: written from the rule)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "cpu_precision_agreement"))
    args = ap.parse_args(argv)
    import torch

    from model_core.precision import cpu_bf16_flags

    if args.threads:
        torch.set_num_threads(args.threads)
    res = {"sample": sample_agreement(args.device)}
    if not args.skip_golden:
        res["golden"] = golden_agreement(Path(args.golden), args.device,
                                         release=Path(args.release) if args.release else None)
    cmd = list(sys.argv[1:] if argv is None else argv)
    meta = {"command": " ".join([".venv/bin/python", "bench/precision_agreement.py", *map(shlex.quote, cmd)]),
            "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "torch": torch.__version__,
            "device": args.device, "threads": torch.get_num_threads(), "cpu_native_bf16": cpu_bf16_flags(),
            "load_avg_at_end": os.getloadavg()[0]}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "results": res}, indent=1) + "\n")
    out.with_suffix(".md").write_text(to_markdown(meta, res))
    print(out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
