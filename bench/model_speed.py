"""Model speed benchmark (not a test): per preset, forward time per tile, peak memory, FLOPs per tile, FLOP/s;
for the small presets also one training step (forward + loss + backward) on a batch of 8.

    .venv/bin/python bench/model_speed.py                      # nano, tiny, clip-b
    .venv/bin/python bench/model_speed.py --presets nano paper # choose (paper: ~20 s per forward, ~5 GB)
    .venv/bin/python bench/model_speed.py --precisions fp32 bf16 --no-flops --train-steps 0   # CPU bf16 vs fp32

Each preset runs in its own subprocess so peak RSS is per preset. Random weights (speed does not depend on them).
FLOPs: torch.utils.flop_counter.FlopCounterMode with SDPA forced to the math backend (the counter does not see the
CPU flash-attention kernel otherwise); matmul/linear/conv/attention only, 1 multiply-add = 2 FLOPs.
Writes bench/results/model_speed.json and .md (or --out PREFIX).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TEXT = "the large grey building next to the road on the left"


def _interleaved(call, model, x, repeats: int, precisions, sync) -> dict:
    """{precision: (all seconds, last logits)}: one warm-up each, then the precisions in turn, `repeats` rounds,
    so that a change of machine load during the run falls on all of them alike."""
    import contextlib

    import torch

    from model_core.precision import PRECISIONS

    def ctx(name):
        dtype = PRECISIONS[name]
        return (contextlib.nullcontext() if dtype == torch.float32
                else torch.autocast(device_type=x.device.type, dtype=dtype))

    times, logits = {p: [] for p in precisions}, {}
    with torch.inference_mode():
        for name in precisions:  # warm-up (tokenizer, kernels)
            with ctx(name):
                call(model, x)
        sync()
        for _ in range(repeats):
            for name in precisions:
                with ctx(name):
                    t = time.perf_counter()
                    out = call(model, x)
                    sync()
                    times[name].append(time.perf_counter() - t)
                logits[name] = out["logits"].float()
    return {p: (times[p], logits[p]) for p in precisions}


def _bench_one(preset: str, device: str, repeats: int, train_batch: int, train_steps: int, threads: int = 0,
               precisions=("fp32",), flops: bool = True) -> dict:
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    load_start = os.getloadavg()[0]
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    from model_core import build_model

    torch.manual_seed(0)
    dev = torch.device(device)
    t0 = time.perf_counter()
    model = build_model(preset).to(dev).eval()
    build_s = time.perf_counter() - t0
    S = model.input_size
    n_params = sum(p.numel() for p in model.parameters())
    n_train = sum(p.numel() for _, p in model.trainable_parameters())
    x = torch.rand(1, 3, S, S, device=dev)
    text_note = f"caption {TEXT!r}"
    try:
        model.tokenize([TEXT])
        call = lambda m, inp, n=1: m(inp, [TEXT] * n)  # noqa: E731
    except FileNotFoundError:
        # a beit3 preset built without its sentencepiece file: 20 synthetic token ids (as official_contract.md 8)
        text_note = "20 synthetic token ids (no sentencepiece file for this preset)"
        ids = torch.tensor([[0] + list(range(100, 118)) + [2]], device=dev)
        call = lambda m, inp, n=1: m(inp, input_ids=ids.repeat(n, 1),  # noqa: E731
                                     text_pad=torch.zeros(n, ids.shape[1], dtype=torch.bool, device=dev))

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    from model_core.decision import prob_from_logits

    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    by_precision, ref = {}, None
    # side by side in one process: same weights, same input, interleaved
    for name, (times_p, logits) in _interleaved(call, model, x, repeats, precisions, sync).items():
        fg = prob_from_logits(logits, model.prob_rule) >= 0.5
        row = {"forward_s_per_tile": round(statistics.median(times_p), 4),
               "forward_s_all": [round(t, 4) for t in times_p],
               "foreground_share": round(float(fg.float().mean()), 4)}
        if ref is None:
            ref = fg
        else:
            row["decisions_equal_to_" + precisions[0]] = round(float((fg == ref).float().mean()), 6)
        by_precision[name] = row
    fwd, times = by_precision[precisions[0]]["forward_s_per_tile"], by_precision[precisions[0]]["forward_s_all"]
    cfg = model.cfg
    res = {
        "preset": preset, "device": str(dev), "input_size": S,
        "union_image_size": cfg.union.image_size if hasattr(cfg, "union") else cfg.towers.image_size,
        "union_backend": cfg.union.backend if hasattr(cfg, "union") else "towers", "params": n_params,
        "trainable_params": n_train, "build_s": round(build_s, 3), "forward_s_per_tile": fwd,
        "forward_s_all": times, "threads": torch.get_num_threads(), "text": text_note, "precisions": by_precision,
    }
    if dev.type == "cuda":
        res["peak_cuda_mem_mb_forward"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)

    # FLOPs of one tile + one caption
    if flops:
        with torch.inference_mode(), sdpa_kernel(SDPBackend.MATH):
            fc = FlopCounterMode(display=False)
            with fc:
                call(model, x)
        total = fc.get_total_flops()
        res["gflops_per_tile"] = round(total / 1e9, 3)
        res["achieved_gflops_per_s"] = round(total / 1e9 / fwd, 2)
        per_module = fc.get_flop_counts()
        top = {}
        for name in ("RS2SAM2.union_encoder", "RS2SAM2.image_encoder", "RS2SAM2.mask_decoder",
                     "RS2SAM2.prompt_encoder", "RS2SAM2.mask_prompt"):
            if name in per_module:
                top[name.split(".", 1)[1]] = round(sum(per_module[name].values()) / 1e9, 3)
        res["gflops_by_part"] = top

    # one training step (forward + loss + backward) on a batch
    if train_steps > 0:
        model.train()
        xb = torch.rand(train_batch, 3, S, S, device=dev)
        tb = (torch.rand(train_batch, S, S, device=dev) > 0.5).float()
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        steps = []
        for i in range(train_steps + 1):
            t = time.perf_counter()
            out = call(model, xb, train_batch)
            loss, _ = model.loss(out, tb)
            loss.backward()
            model.zero_grad(set_to_none=True)
            sync()
            if i > 0:  # first step is warm-up
                steps.append(time.perf_counter() - t)
        res["train_batch"] = train_batch
        res["train_step_s"] = round(statistics.median(steps), 4)
        res["train_step_s_all"] = [round(t, 4) for t in steps]
        if dev.type == "cuda":
            res["peak_cuda_mem_mb_train"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    res["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    res["load_avg_1min_start_end"] = [round(load_start, 2), round(os.getloadavg()[0], 2)]
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=["nano", "tiny", "clip-b"])
    ap.add_argument("--devices", nargs="+", default=None, help="default: cpu, plus cuda when available")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--train-batch", type=int, default=8)
    ap.add_argument("--train-steps", type=int, default=3, help="timed training steps for nano/tiny (0: none)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default). On a shared, loaded "
                    "machine 1 thread avoids OpenMP oversubscription (2 threads were ~8x slower at load 8 on 2 cores)")
    ap.add_argument("--precisions", nargs="+", default=["fp32"], choices=["fp32", "bf16", "fp16"],
                    help="forward precisions timed side by side in one process (autocast); the first is the "
                    "reference for the share of equal decisions")
    ap.add_argument("--no-flops", action="store_true", help="skip the FLOP count (one more fp32 forward)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "model_speed"))
    ap.add_argument("--one", nargs=2, metavar=("PRESET", "DEVICE"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.one:
        preset, device = args.one
        small = preset in ("nano", "tiny")
        heavy = preset == "paper"
        heavy_repeats = 2 if len(args.precisions) > 1 else 1  # interleaved rounds: two make a comparison
        res = _bench_one(preset, device, repeats=heavy_repeats if heavy else (2 if not small else args.repeats),
                         train_batch=args.train_batch, train_steps=args.train_steps if small else 0,
                         threads=args.threads, precisions=tuple(args.precisions), flops=not args.no_flops)
        print("RESULT " + json.dumps(res))
        return

    import torch

    devices = args.devices or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    results = []
    for dev in devices:
        for preset in args.presets:
            print(f"[bench] {preset} on {dev} ...", flush=True)
            p = subprocess.run([sys.executable, __file__, "--one", preset, dev, "--repeats", str(args.repeats),
                                "--train-batch", str(args.train_batch), "--train-steps", str(args.train_steps),
                                "--threads", str(args.threads), "--precisions", *args.precisions]
                               + (["--no-flops"] if args.no_flops else []),
                               capture_output=True, text=True, cwd=str(ROOT))
            line = [l for l in p.stdout.splitlines() if l.startswith("RESULT ")]
            if p.returncode != 0 or not line:
                print(p.stderr[-2000:], file=sys.stderr)
                results.append({"preset": preset, "device": dev, "error": p.stderr.strip().splitlines()[-1:]})
                continue
            r = json.loads(line[0][len("RESULT "):])
            print(f"  forward {r['forward_s_per_tile']*1000:.0f} ms/tile, {r.get('gflops_per_tile', '-')} GFLOPs, "
                  f"{r.get('achieved_gflops_per_s', '-')} GFLOP/s, peak RSS {r['peak_rss_mb']} MB, "
                  + ", ".join(f"{k} {v['forward_s_per_tile']:.3f} s" for k, v in r["precisions"].items())
                  + (f", train step b{r['train_batch']} {r['train_step_s']*1000:.0f} ms" if "train_step_s" in r
                     else ""), flush=True)
            results.append(r)

    from model_core.precision import cpu_bf16_flags

    cmd_args = list(sys.argv[1:] if argv is None else argv)
    meta = {"command": " ".join([".venv/bin/python", "bench/model_speed.py", *map(shlex.quote, cmd_args)]),
            "cpu_native_bf16": cpu_bf16_flags(),
            "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "torch": torch.__version__,
            "python": platform.python_version(), "machine": platform.machine(), "cpu_count": os.cpu_count(),
            "load_avg_at_end": os.getloadavg(), "note": "random weights; CPU numbers on a shared 2-core machine"}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    lines = ["# model_core speed", "", f"Command: `{meta['command']}`", "",
             f"{meta['date_utc']}, torch {meta['torch']}, {meta['cpu_count']} CPUs "
             f"(load average at end {', '.join(f'{x:.1f}' for x in meta['load_avg_at_end'])}), native bf16 on this "
             f"CPU: {', '.join(meta['cpu_native_bf16']) or 'none'}, random weights.", "",
             "| preset | device | threads | tile px | params (M) | trainable (M) | forward s/tile | GFLOPs/tile | "
             "GFLOP/s | peak RSS MB | train step (batch) s | load avg start/end |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['preset']} | {r['device']} | error: {r['error']} |")
            continue
        ts = f"{r['train_step_s']:.3f} ({r['train_batch']})" if "train_step_s" in r else "-"
        gf = (f"{r['gflops_per_tile']:.2f} | {r['achieved_gflops_per_s']:.1f}" if "gflops_per_tile" in r
              else "- | -")
        lines.append(f"| {r['preset']} | {r['device']} | {r['threads']} | {r['input_size']} | {r['params']/1e6:.2f} | "
                     f"{r['trainable_params']/1e6:.2f} | {r['forward_s_per_tile']:.3f} | {gf} | "
                     f"{r['peak_rss_mb']:.0f} | {ts} | "
                     f"{'/'.join(str(x) for x in r.get('load_avg_1min_start_end', []))} |")
    lines += ["", "FLOPs: FlopCounterMode with SDPA on the math backend (matmul/linear/conv/attention; 1 MAC = 2 FLOPs).",
              "Peak RSS includes the Python/torch import (~0.4-0.5 GB)."]
    if len(args.precisions) > 1:
        first = args.precisions[0]
        lines += ["", f"Precisions side by side (same process, weights and tile; autocast; decisions = the model's "
                  f"probability >= 0.5, compared with {first} on that tile):", "",
                  f"| preset | device | precision | forward s/tile | speed vs {first} | decisions equal to {first} | "
                  "foreground share |", "|---|---|---|---:|---:|---:|---:|"]
        for r in results:
            if "error" in r:
                continue
            t0 = r["precisions"][first]["forward_s_per_tile"]
            for name, v in r["precisions"].items():
                eq = v.get("decisions_equal_to_" + first)
                lines.append(f"| {r['preset']} | {r['device']} | {name} | {v['forward_s_per_tile']:.3f} | "
                             f"{t0 / v['forward_s_per_tile']:.2f}x | {'-' if eq is None else f'{100 * eq:.3f} %'} | "
                             f"{v['foreground_share']:.3f} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("wrote", out.with_suffix(".json"), out.with_suffix(".md"))


if __name__ == "__main__":
    main()
