"""The GPU check of issue 18 in one go (run through bench/gpu_check.sh); every step in its own process with a time
cap, so one failure or hang costs only its step and the report is still written.

Steps (GPU / `--dry-run`: the same code on CPU with tiny sizes, so the script cannot rot):
  a  the `cuda` tests of the suite (tests/test_cuda.py: Predictor fp32/bf16/fp16, engine + CLI on cuda, CUDA OOM)
  b  golden fixture on the device: the authors' mode in fp32 with TF32 off within tolerances.json, then bf16's
     share of equal decisions (dry run: the tiny preset, no tolerance check)
  c  paper preset throughput in bf16 at batch 1, 2, 4, 8 (eager; flash SDPA; torch.compile at the best batch):
     tile-queries/s, % of the GPU's dense bf16 peak, peak memory (dry run: tiny preset, batch 1 and 2)
  d  end to end: a 10240 x 10240 raster (the sample scene 10 x 10) with the demo model, then with the paper preset
     (random weights: its masks are noise, so that run keeps probability >= 0.99 only; polygonizing 100 Mpx of
     noise would measure nothing real), s/Mpx (dry run: 512 x 512, tiny preset)

Writes OUT/gpu_check_<device>.md and .json: the command, the device, the versions, one section per step.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# the fixture beside the checkout (developers' layout) or inside it (a copy that travels to a GPU machine)
GOLDEN = next((p for p in (ROOT.parent / "shared" / "reference" / "golden", ROOT / "shared" / "reference" / "golden")
               if (p / "outputs.npz").is_file()), ROOT.parent / "shared" / "reference" / "golden")
SAMPLE = ROOT / "data" / "sample" / "sample_scene.tif"
FLOPS_PER_TILE_QUERY = 2.13e12  # paper preset, one 1024 tile + one caption (bench/results/model_speed_paper.md)
DENSE_BF16_PEAK = {"H100": 989e12, "H200": 989e12, "H800": 989e12, "GH200": 989e12, "A100": 312e12,
                   "L40S": 362e12, "L4": 121e12}  # TFLOP/s without sparsity, from the vendors' sheets
TOKENS = [0, 581, 9351, 12421, 111, 70, 62816, 4093, 5, 2]  # the golden caption's ids (no spm file needed)
# seconds per step, full run (GPU; 480 in all, the 8 minutes) / dry run (~5-10 s each on 2 quiet cores;
# generous, for a shared, loaded CPU); a step past its cap keeps what it reported so far
CAPS = {"a": (60, 300), "b": (120, 300), "c": (120, 300), "d_demo": (120, 300), "d_paper": (60, 300)}


# ------------------------------------------------------------------------------------------------ helpers
def _device(dry: bool) -> torch.device:
    return torch.device("cpu" if dry else "cuda")


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


class FixedTokens(torch.nn.Module):
    """A BEiT-3 preset built without its sentencepiece file, under the model protocol: every text becomes the same
    token ids (speed does not depend on the words). Only for this benchmark."""

    def __init__(self, model, ids):
        super().__init__()
        self.inner = model
        self.input_size, self.name, self.cfg = model.input_size, model.name, model.cfg
        self.register_buffer("ids", torch.tensor([ids]), persistent=False)

    def predict_masks(self, pixels, texts):
        ids = self.ids.expand(len(texts), -1)
        return self.inner(pixels, input_ids=ids, text_pad=torch.zeros_like(ids, dtype=torch.bool))["logits"]

    def logits_to_prob(self, logits):
        return self.inner.logits_to_prob(logits)


def _preset(dry: bool):
    from model_core import build_model

    return build_model("tiny" if dry else "paper").eval()


def _ids(dry: bool):
    return [0, 5, 6, 7, 8, 2] if dry else TOKENS


# ------------------------------------------------------------------------------------------------ steps
def step_a(dry: bool, out: Path) -> dict:
    """The suite's `cuda` tests (they skip on a CPU: the dry run checks they are collected and skip cleanly)."""
    junit = out / "cuda_tests.xml"
    cmd = [sys.executable, "-m", "pytest", "-q", "-rA", "-m", "cuda", "-p", "no:cacheprovider",
           f"--junitxml={junit}", "tests/test_cuda.py"]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    summary = [line for line in p.stdout.splitlines() if line.startswith(("PASSED", "FAILED", "SKIPPED", "ERROR"))]
    tail = p.stdout.strip().splitlines()[-1:] if p.stdout.strip() else []
    # on a GPU a skipped CUDA test is a failure of the check (it did not run); the dry run expects them skipped
    ran = dry or not any("skipped" in line for line in tail)
    return {"ok": p.returncode == 0 and ran, "command": " ".join(cmd[1:]), "returncode": p.returncode,
            "summary": tail, "tests": summary}


def _sample_crop(size: int):
    import rasterio

    with rasterio.open(SAMPLE) as src:
        return src.read([1, 2, 3], window=rasterio.windows.Window(512, 0, size, size)).transpose(1, 2, 0).copy()


def step_b(dry: bool, out: Path) -> dict:
    """Golden: the authors' mode fp32 (TF32 off inside it) within tolerance, then bf16's equal decisions."""
    import model_core
    from bench.precision_agreement import golden_agreement
    from model_core.predictor import Predictor

    dev = _device(dry)
    res: dict = {"device": str(dev)}
    if dry:
        model = _preset(True)
        res["note"] = "dry run: tiny preset (random weights), no tolerance check (the fixture needs the paper model)"
        res["agreement"] = golden_agreement(GOLDEN, str(dev), model=model, image=_sample_crop(256),
                                            input_ids=[_ids(True)])
        res["ok"] = True
        return res
    from model_core.fidelity import check_golden, write_release

    rel = Path(tempfile.mkdtemp(prefix="rs2sam2-release-")) / "release"
    res["release_write_s"] = round(write_release(GOLDEN, rel), 1)
    model = model_core.load_model(rel)
    pred = Predictor(model, device=str(dev), precision="fp32", mode="authors")
    t0 = time.perf_counter()
    golden = check_golden(GOLDEN, pred)
    res["authors_fp32_s"] = round(time.perf_counter() - t0, 2)
    res["tf32_after"] = {"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32}
    res["cases"] = {case: {"ok": r["ok"], "rows": r["rows"]} for case, r in golden.items()}
    _partial(res)
    res["agreement"] = golden_agreement(GOLDEN, str(dev), model=model)
    res["ok"] = all(r["ok"] for r in golden.values())
    return res


def _throughput(model, dev, batch: int, dry: bool, seconds: float) -> dict:
    s = model.input_size
    x = torch.rand(batch, 3, s, s, device=dev)
    texts = ["q"] * batch
    with torch.inference_mode(), torch.autocast(device_type=dev.type, dtype=torch.bfloat16):
        for _ in range(1 if dry else 3):
            model.predict_masks(x, texts)
        _sync(dev)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        n, t0 = 0, time.perf_counter()
        while True:
            model.predict_masks(x, texts)
            n += 1
            _sync(dev)
            if time.perf_counter() - t0 >= seconds or dry:
                break
        dt = time.perf_counter() - t0
    row = {"batch": batch, "forwards": n, "seconds": round(dt, 3), "tile_queries_per_s": round(n * batch / dt, 2)}
    if dev.type == "cuda":
        row["peak_mem_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return row


def _partial(res: dict) -> None:
    """Results so far, as the step's last line (kept when the step runs past its cap)."""
    print("STEP " + json.dumps({**res, "ok": False, "partial": True}, default=str), flush=True)


def step_c(dry: bool, out: Path) -> dict:
    """Paper throughput in bf16 at batch 1-8: eager, flash SDPA, torch.compile at the best eager batch."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    dev = _device(dry)
    model = FixedTokens(_preset(dry), _ids(dry)).to(dev)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu"
    peak = next((v for k, v in DENSE_BF16_PEAK.items() if k in name), None)
    flops = FLOPS_PER_TILE_QUERY if not dry else None
    batches = (1, 2) if dry else (1, 2, 4, 8)
    secs = 0.0 if dry else 3.0
    res: dict = {"device_name": name, "dense_bf16_peak_tflops": peak and peak / 1e12, "variants": {}}

    def pct(row):
        if peak and flops:
            row["pct_of_dense_bf16_peak"] = round(100 * row["tile_queries_per_s"] * flops / peak, 1)
        return row

    res["variants"]["eager"] = [pct(_throughput(model, dev, b, dry, secs)) for b in batches]
    _partial(res)
    try:
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            res["variants"]["flash_sdpa"] = [pct(_throughput(model, dev, b, dry, secs)) for b in batches]
    except RuntimeError as exc:  # a shape or mask flash does not take: say so, keep the default kernels
        res["variants"]["flash_sdpa"] = {"error": str(exc).splitlines()[0][:300]}
    _partial(res)
    best = max(res["variants"]["eager"], key=lambda r: r["tile_queries_per_s"])["batch"]
    if dry:
        res["variants"]["compile"] = {"skipped": "dry run (compiling on CPU takes minutes)"}
    else:
        t0 = time.perf_counter()
        try:
            model.inner = torch.compile(model.inner)
            row = pct(_throughput(model, dev, best, dry, secs))
            row["compile_and_warmup_s"] = round(time.perf_counter() - t0 - row["seconds"], 1)
            res["variants"]["compile"] = [row]
        except Exception as exc:  # noqa: BLE001 - report and go on
            res["variants"]["compile"] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"}
    rows = [r for v in res["variants"].values() if isinstance(v, list) for r in v]
    res["best"] = max(rows, key=lambda r: r["tile_queries_per_s"])
    res["ok"] = True
    return res


def _big_raster(path: Path, repeat: int) -> Path:
    """The sample scene tiled repeat x repeat times (real content, so the masks polygonize like real runs)."""
    import numpy as np
    import rasterio

    with rasterio.open(SAMPLE) as src:
        data, profile = src.read(), src.profile
    h, w = data.shape[1] * repeat, data.shape[2] * repeat
    profile.update(width=w, height=h, tiled=True, blockxsize=512, blockysize=512, compress=None)
    strip = np.tile(data, (1, 1, repeat))
    with rasterio.open(path, "w", **profile) as dst:
        for r in range(repeat):
            dst.write(strip, window=rasterio.windows.Window(0, r * data.shape[1], w, data.shape[1]))
    return path


def _raster(dry: bool, tmp: Path) -> Path:
    """The run's raster: the sample's north-east 512 x 512 (dry run), else the sample 10 x 10 (10240 px)."""
    import rasterio

    if not dry:
        return _big_raster(tmp / "big.tif", 10)
    raster = tmp / "crop.tif"
    with rasterio.open(SAMPLE) as src:
        win = rasterio.windows.Window(512, 0, 512, 512)
        profile = {**src.profile, "width": 512, "height": 512, "transform": src.window_transform(win)}
        with rasterio.open(raster, "w", **profile) as dst:
            dst.write(src.read(window=win))
    return raster


def _end_to_end(dry: bool, label: str) -> dict:
    """segment_raster on the raster with one model, auto device and precision (as the analyst runs it)."""
    import model_core
    from model_core.predictor import Predictor
    from rs2sam2_qgis.pipeline import SegmentOptions, segment_raster

    dev = _device(dry)
    tmp = Path(tempfile.mkdtemp(prefix="rs2sam2-gpu-check-"))
    t0 = time.perf_counter()
    raster = _raster(dry, tmp)
    write_s = time.perf_counter() - t0
    if label == "demo":
        model, options = model_core.load_model("demo"), SegmentOptions()
    else:  # random weights: keep only confident pixels (see the module's docstring)
        model, options = FixedTokens(_preset(dry), _ids(dry)), SegmentOptions(threshold=0.99)
    pred = Predictor(model, device=str(dev))
    t0 = time.perf_counter()
    r = segment_raster(raster, ["the storage tanks"], pred, options)
    st = r.stats
    return {"ok": bool(st.megapixels > 0), "model": "tiny" if dry and label != "demo" else label,
            "raster": f"{raster.name}", "raster_write_s": round(write_s, 1), "device": st.device,
            "device_reason": st.device_reason, "precision": st.precision, "threshold": options.threshold,
            "tile": st.tile, "tiles": st.tiles_run, "megapixels": round(st.megapixels, 2),
            "seconds": round(time.perf_counter() - t0, 2), "s_per_mpx": round(st.seconds_per_megapixel, 4),
            "inference_s": round(st.seconds_inference, 2), "stitch_s": round(st.seconds_stitch, 2),
            "polygonize_s": round(st.seconds_polygonize, 2), "polygons": r.count, "batch_size": st.batch_size,
            "cuda_oom_halvings": st.cuda_oom_halvings}


def step_d_demo(dry: bool, out: Path) -> dict:
    return _end_to_end(dry, "demo")


def step_d_paper(dry: bool, out: Path) -> dict:
    return _end_to_end(dry, "paper")


STEPS = {"a": step_a, "b": step_b, "c": step_c, "d_demo": step_d_demo, "d_paper": step_d_paper}
TITLES = {"a": "(a) CUDA tests of the suite", "b": "(b) golden fixture on the device",
          "c": "(c) paper preset throughput, bf16", "d_demo": "(d) end to end, demo model",
          "d_paper": "(d) end to end, paper preset"}


# ------------------------------------------------------------------------------------------------ driver
def _versions() -> dict:
    v = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
         "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None}
    if torch.cuda.is_available():
        v["gpu"] = torch.cuda.get_device_name(0)
        v["gpu_memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
        try:
            smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=20)
            v["driver"] = smi.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            v["driver"] = None
    try:
        v["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                     text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        v["commit"] = None
    return v


def _run_step(key: str, dry: bool, out: Path) -> dict:
    """One step in a child process with its time cap; its JSON is the last line it prints."""
    cap = CAPS[key][1 if dry else 0]
    cmd = [sys.executable, __file__, "--step", key, "--out", str(out)] + (["--dry-run"] if dry else [])
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=cap,
                           env={**os.environ, "PYTHONUNBUFFERED": "1"})
    except subprocess.TimeoutExpired as exc:
        so_far = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        lines = [line for line in so_far.splitlines() if line.startswith("STEP ")]
        res = json.loads(lines[-1][len("STEP "):]) if lines else {}
        return {**res, "ok": False, "error": f"timed out after {cap} s" + (" (results so far kept)" if lines else ""),
                "wall_s": round(time.perf_counter() - t0, 1)}
    lines = [line for line in p.stdout.splitlines() if line.startswith("STEP ")]
    if p.returncode != 0 or not lines:
        err = (p.stderr.strip().splitlines() or ["(no output)"])[-3:]
        return {"ok": False, "error": " | ".join(err)[:1000], "wall_s": round(time.perf_counter() - t0, 1)}
    res = json.loads(lines[-1][len("STEP "):])
    res["wall_s"] = round(time.perf_counter() - t0, 1)
    return res


def _markdown(report: dict) -> str:
    v = report["versions"]
    lines = ["# GPU check" + (" (dry run on CPU, tiny sizes)" if report["dry_run"] else ""), "",
             f"Command: `{report['command']}`", "",
             f"{report['date_utc']}; device: {v.get('gpu') or 'cpu'}"
             + (f" ({v['gpu_memory_gib']} GiB, driver {v.get('driver')})" if v.get("gpu") else "")
             + f"; torch {v['torch']}, CUDA {v['cuda']}, cuDNN {v['cudnn']}, Python {v['python']}; commit "
             f"{v['commit']}; {report['total_s']:.0f} s in all.", ""]
    for key, title in TITLES.items():
        r = report["steps"][key]
        lines += [f"## {title}: {'ok' if r.get('ok') else 'FAILED'} ({r.get('wall_s', '?')} s)", ""]
        if "error" in r:
            lines += [f"Error: {r['error']}", ""]
        body = {k: val for k, val in r.items() if k not in ("ok", "wall_s", "error")}
        lines += ["```json", json.dumps(body, indent=1), "```", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes: checks the script itself")
    ap.add_argument("--out", default=None, help="results folder (default: bench/results; dry run: a temp folder)")
    ap.add_argument("--steps", default="abcd", help="which steps: letters of a, b, c, d (default abcd)")
    ap.add_argument("--command", default=None, help=argparse.SUPPRESS)  # the shell command, from gpu_check.sh
    ap.add_argument("--step", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    out = Path(args.out) if args.out else (Path(tempfile.mkdtemp(prefix="gpu-check-dry-")) if args.dry_run
                                           else ROOT / "bench" / "results")
    out.mkdir(parents=True, exist_ok=True)
    if args.step:  # child: one step, its result as the last line
        print("STEP " + json.dumps(STEPS[args.step](args.dry_run, out), default=str), flush=True)
        return 0
    if not args.dry_run and not torch.cuda.is_available():
        print("gpu_check: no CUDA device visible to torch; use --dry-run to check the script on CPU",
              file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    report = {"command": args.command or " ".join(["python", "bench/gpu_check.py", *(argv or sys.argv[1:])]),
              "dry_run": args.dry_run, "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "versions": _versions(), "steps": {}}
    for key in STEPS:
        if key[0] in args.steps:
            print(f"[gpu_check] {TITLES[key]} ...", flush=True)
            report["steps"][key] = _run_step(key, args.dry_run, out)
            print(f"  {'ok' if report['steps'][key].get('ok') else 'FAILED'} in {report['steps'][key]['wall_s']} s",
                  flush=True)
        else:
            report["steps"][key] = {"ok": True, "skipped": "not selected (--steps)"}
    report["total_s"] = round(time.perf_counter() - t0, 1)
    slug = "dryrun_cpu" if args.dry_run else "".join(c if c.isalnum() else "_" for c in
                                                     report["versions"]["gpu"]).strip("_").lower()
    path = out / f"gpu_check_{slug}"
    path.with_suffix(".json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    path.with_suffix(".md").write_text(_markdown(report))
    print(f"[gpu_check] wrote {path.with_suffix('.md')} and .json ({report['total_s']:.0f} s)")
    return 0 if all(r.get("ok") for r in report["steps"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
