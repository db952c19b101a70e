"""Fidelity check against the golden fixture (shared/reference/golden): do we compute what the authors compute?

    python -m model_core.fidelity --golden ../shared/reference/golden --out /tmp/ours.npz [--bin] [--release DIR]

1. writes the authors' release directory from the fixture's weight rule (`official_weights.py DIR`, in a child
   process, into a temporary folder; `--bin` for pytorch_model.bin; `--release DIR` uses an existing one),
2. loads it with `model_core.load_model(DIR)` (meta build, memory-mapped weights) and reports the load time and the
   peak RSS of this process,
3. runs the golden input (input.png + the token ids of input.json) through `Predictor(mode="authors")` (their
   preprocessing, float32, CPU) and records every stage we expose (forward hooks),
4. writes OUT.npz with the keys of outputs.npz (and OUT_batch2_padded.npz for the padded batch-of-2 case),
5. prints, per key, the max and mean abs difference from the fixture against tolerances.json; final_mask may flip
   only where |golden logit - 0.5| < 5e-4. Exit status 1 when anything is beyond tolerance.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

MASK_BAND = 5e-4  # final_mask may differ only where |golden logit - 0.5| < this
BATCH2 = "batch2_padded"


# ------------------------------------------------------------------------------------------------ memory / time
def rss_mb() -> float:
    """Current resident set size of this process (MB)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb(who=resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux: KB


def mem_available_gb() -> float:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return float("inf")


# ------------------------------------------------------------------------------------------------ fixture
def write_release(golden: Path, out_dir: Path, use_bin: bool = False) -> float:
    """The fixture's weights as the authors' release directory (child process: its ~4.5 GB are freed after)."""
    t0 = time.perf_counter()
    cmd = [sys.executable, str(Path(golden) / "official_weights.py"), str(out_dir)] + (["--bin"] if use_bin else [])
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def golden_input(golden: Path) -> tuple[np.ndarray, dict]:
    from PIL import Image

    img = np.asarray(Image.open(Path(golden) / "input.png").convert("RGB"))
    spec = json.loads((Path(golden) / "input.json").read_text())
    return img, spec


def tolerances(golden: Path) -> dict[str, dict[str, float]]:
    t = json.loads((Path(golden) / "tolerances.json").read_text())
    return {k: {"max_abs": float(v["max_abs"]), "mean_abs": float(v["mean_abs"])}
            for k, v in t["proposed"]["per_output"].items() if "max_abs" in v}


# ------------------------------------------------------------------------------------------------ stages
@contextlib.contextmanager
def record_stages(model):
    """Forward hooks that record the intermediates of outputs.npz under its key names."""
    rec: dict[str, torch.Tensor] = {}
    c = lambda t: t.detach().float().cpu().clone()  # noqa: E731
    hooks = []

    def beit3(_m, _a, out):
        x = out["encoder_out"]
        rec["beit3_encoder_out"], rec["beit3_cls"] = c(x), c(x[:, 0])

    def vmtoken(_m, args, out):  # c * MHA(c, V): args[0] is the class-token query
        rec["vmtoken_out"] = c((args[0] * out[0])[:, 0])

    def pre_decoder(_m, _args, kwargs):
        rec["image_embed"] = c(kwargs["image_embeddings"])

    ue = model.union_encoder.backend
    if hasattr(ue, "beit3"):
        hooks.append(ue.beit3.register_forward_hook(beit3))
    hooks.append(model.mask_prompt.attn.register_forward_hook(vmtoken))
    hooks.append(model.mask_prompt.proj.register_forward_hook(
        lambda _m, _a, out: rec.__setitem__("mask_linear_out", c(out[:, 0]))))
    hooks.append(model.prompt_encoder.mask_downscaling.register_forward_pre_hook(
        lambda _m, args: rec.__setitem__("mask_prompt_256", c(args[0]))))
    hooks.append(model.sparse_prompt.register_forward_hook(
        lambda _m, _a, out: rec.__setitem__("sparse_prompt", c(out))))
    hooks.append(model.text_proj.register_forward_hook(lambda _m, _a, out: rec.__setitem__("text_feat", c(out))))
    hooks.append(model.mask_decoder.register_forward_pre_hook(pre_decoder, with_kwargs=True))
    try:
        yield rec
    finally:
        for h in hooks:
            h.remove()


def run_case(predictor, image: np.ndarray, input_ids, attention_mask) -> dict[str, np.ndarray]:
    """The authors' contract on n copies of `image` (one per caption row of input_ids): outputs + stages."""
    n = len(input_ids)
    images = np.stack([image] * n)
    with record_stages(predictor.model) as rec:
        out = predictor.authors_outputs(images, input_ids=input_ids, attention_mask=attention_mask)
    out.update({k: v.numpy() for k, v in rec.items()})
    return out


# ------------------------------------------------------------------------------------------------ comparison
def compare(got: dict[str, np.ndarray], ref, tol: dict[str, dict[str, float]]) -> tuple[list[dict], bool]:
    """One row per key of ref: max/mean abs difference and whether it is within tolerance."""
    rows, ok_all = [], True
    ref_logits = ref["final_logits"] if "final_logits" in ref else F.interpolate(
        torch.from_numpy(ref["low_res_logits"]), size=got["final_logits"].shape[-2:], mode="bilinear",
        align_corners=False).numpy()  # batch2 file: final logits = bilinear upsampling of the low-res ones
    for key in ref:
        r = ref[key]
        if key not in got:
            rows.append({"key": key, "ok": False, "note": "not produced"})
            ok_all = False
            continue
        g = got[key]
        if g.shape != r.shape:
            rows.append({"key": key, "ok": False, "note": f"shape {g.shape} vs {r.shape}"})
            ok_all = False
            continue
        if key == "final_mask":
            differ = (g > 0.5) != (r > 0.5)
            band = np.abs(ref_logits[:, 0] - 0.5) < MASK_BAND
            bad = int((differ & ~band).sum())
            row = {"key": key, "flips": int(differ.sum()), "flips_outside_band": bad,
                   "band_pixels": int(band.sum()), "ok": bad == 0}
        else:
            d = np.abs(g.astype(np.float64) - r.astype(np.float64))
            t = tol.get(key, {"max_abs": 0.0, "mean_abs": 0.0})
            row = {"key": key, "max_abs": float(d.max()), "mean_abs": float(d.mean()), "tol_max": t["max_abs"],
                   "tol_mean": t["mean_abs"], "ok": bool(d.max() <= t["max_abs"] and d.mean() <= t["mean_abs"])}
        rows.append(row)
        ok_all &= row["ok"]
    return rows, ok_all


def format_rows(title: str, rows: list[dict]) -> str:
    lines = [title, f"  {'key':<22}{'max abs':>12}{'mean abs':>12}{'tol max':>10}{'tol mean':>10}  ok"]
    for r in rows:
        if "max_abs" in r:
            lines.append(f"  {r['key']:<22}{r['max_abs']:>12.3e}{r['mean_abs']:>12.3e}{r['tol_max']:>10.0e}"
                         f"{r['tol_mean']:>10.0e}  {'ok' if r['ok'] else 'FAIL'}")
        elif "flips" in r:
            lines.append(f"  {r['key']:<22}{r['flips']:>6} flipped px, {r['flips_outside_band']} outside the "
                         f"|logit-0.5|<{MASK_BAND:g} band ({r['band_pixels']} px)  {'ok' if r['ok'] else 'FAIL'}")
        else:
            lines.append(f"  {r['key']:<22}{r.get('note', '')}  FAIL")
    return "\n".join(lines)


def check_golden(golden: Path, predictor) -> dict[str, dict]:
    """Both golden cases on a loaded predictor: {case: {"got": arrays, "rows": rows, "ok": bool, "seconds": s}}."""
    golden = Path(golden)
    image, spec = golden_input(golden)
    tol = tolerances(golden)
    res = {}
    for case, ids, mask, ref_file in (
            ("single", spec["input_ids"], spec["attention_mask"], "outputs.npz"),
            (BATCH2, spec[BATCH2]["input_ids"], spec[BATCH2]["attention_mask"], "outputs_batch2_padded.npz")):
        t0 = time.perf_counter()
        got = run_case(predictor, image, ids, mask)
        secs = time.perf_counter() - t0
        ref = np.load(golden / ref_file)
        rows, ok = compare(got, ref, tol)
        res[case] = {"got": {k: got[k] for k in ref}, "rows": rows, "ok": ok, "seconds": secs}
    return res


# ------------------------------------------------------------------------------------------------ CLI
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m model_core.fidelity", description=__doc__.split("\n")[0])
    ap.add_argument("--golden", required=True, help="the golden fixture folder (shared/reference/golden)")
    ap.add_argument("--out", required=True, help="OUT.npz: our outputs under the keys of outputs.npz")
    ap.add_argument("--release", help="an existing release directory (default: written from the rule to a temp dir)")
    ap.add_argument("--bin", action="store_true", help="write the release as pytorch_model.bin, not safetensors")
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    ap.add_argument("--json", help="also write the report (differences, load time, memory) as JSON here")
    a = ap.parse_args(argv)
    golden = Path(a.golden)
    if not (golden / "outputs.npz").is_file():
        print(f"fidelity: no golden fixture in {golden.resolve()} (outputs.npz missing)", file=sys.stderr)
        return 2
    if a.threads:
        torch.set_num_threads(a.threads)
    import model_core
    from model_core.predictor import Predictor

    tmp = None
    report: dict = {"threads": torch.get_num_threads(), "torch": torch.__version__}
    try:
        if a.release:
            rel = Path(a.release)
        else:
            tmp = Path(tempfile.mkdtemp(prefix="rs2sam2-release-"))
            rel = tmp / "release"
            report["write_seconds"] = write_release(golden, rel, a.bin)
            report["write_peak_rss_mb_child"] = peak_rss_mb(resource.RUSAGE_CHILDREN)
            print(f"release dir written from the rule in {report['write_seconds']:.1f} s: "
                  f"{', '.join(sorted(p.name for p in rel.iterdir()))}")
        weights = sum(p.stat().st_size for p in rel.iterdir() if p.name.endswith((".safetensors", ".bin")))
        before = peak_rss_mb()
        t0 = time.perf_counter()
        model = model_core.load_model(rel)
        report.update(load_seconds=time.perf_counter() - t0, weights_gb=weights / 1e9,
                      rss_before_load_mb=before, peak_rss_after_load_mb=peak_rss_mb(), rss_after_load_mb=rss_mb(),
                      layout=getattr(model, "release_layout", "?"))
        print(f"load_model({rel.name}): {report['load_seconds']:.1f} s ({report['layout']}, "
              f"{report['weights_gb']:.2f} GB of weights); peak RSS {report['peak_rss_after_load_mb']:.0f} MB "
              f"(before the load {before:.0f} MB); {model.load_report}")
        pred = Predictor(model, device="cpu", precision="fp32", mode="authors")
        res = check_golden(golden, pred)
        report["peak_rss_after_forwards_mb"] = peak_rss_mb()
        out = Path(a.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(out, **res["single"]["got"])
        out2 = out.with_name(out.stem + "_" + BATCH2 + ".npz")
        np.savez_compressed(out2, **res[BATCH2]["got"])
        ok = True
        for case, r in res.items():
            print(format_rows(f"{case} ({r['seconds']:.1f} s forward):", r["rows"]))
            ok &= r["ok"]
            report[case] = {"rows": r["rows"], "ok": r["ok"], "seconds": r["seconds"]}
        print(f"peak RSS of this process: {report['peak_rss_after_forwards_mb']:.0f} MB (after the load: "
              f"{report['peak_rss_after_load_mb']:.0f} MB); wrote {out} and {out2}")
        print("fidelity: OK, every stage within tolerance" if ok else "fidelity: FAILED, see the rows marked FAIL")
        report["ok"] = ok
        if a.json:
            Path(a.json).write_text(json.dumps(report, indent=1))
        return 0 if ok else 1
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
