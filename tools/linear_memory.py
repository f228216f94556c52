"""Peak extra memory of linear_cross_entropy against materializing the logits.

Issue 14, item 3: for N = 4096 tokens, H = 256, V = 128256 (float32), the fused
loss and gradients must hold at most 0.25 GB beyond their outputs, and at least
16 times less than the materialized logits plus their gradient (about 4.2 GB).

Each way runs once in a fresh interpreter (fastxent._bench_linear.measure): the
peak resident set during the call over the resident set just before it, and
NumPy's allocations by tracemalloc (traced runs are separate from the timed ones
in spirit: tracing slows nothing that matters here), each less the outputs
(grad_hidden and grad_weight).  Exit status 1 when a bound is not met.

    python tools/linear_memory.py                       # the issue's case
    python tools/linear_memory.py --N 8192 --chunk-size 64 --impls fused,numpy,torch
"""
from __future__ import annotations

import argparse
import sys

from fastxent._bench_linear import measure

GB = 1e9


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--N", type=int, default=4096)
    p.add_argument("--H", type=int, default=256)
    p.add_argument("--V", type=int, default=128256)
    p.add_argument("--chunk-size", type=int, default=None, help="fused: tokens per chunk (default: fastxent's)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--impls", default="fused,numpy", help="comma-separated: fused, numpy, torch")
    p.add_argument("--limit-gb", type=float, default=0.25, help="bound on fused's extra memory")
    p.add_argument("--min-ratio", type=float, default=16.0, help="numpy's extra over fused's, at least")
    args = p.parse_args(argv)
    dims = (args.N, args.H, args.V)
    impls = [s.strip() for s in args.impls.split(",") if s.strip()]

    print(f"N={args.N} H={args.H} V={args.V} float32, {args.threads} thread(s); "
          f"logits plus their gradient would be {2 * args.N * args.V * 4 / GB:.2f} GB", flush=True)
    rows = {}
    for impl in impls:
        print(f"  {impl} ...", end="", file=sys.stderr, flush=True)
        rows[impl] = measure(impl, dims, n_threads=args.threads, trace=impl != "torch",
                             chunk_size=args.chunk_size if impl == "fused" else None)
        print(f" {rows[impl]['seconds']:.1f} s", file=sys.stderr, flush=True)

    print(f"{'way':8} {'seconds':>8} {'outputs GB':>11} {'peak RSS extra GB':>18} {'traced extra GB':>16}")
    for impl, r in rows.items():
        traced = f"{r['traced_extra'] / GB:.3f}" if "traced_extra" in r else "-"
        print(f"{impl:8} {r['seconds']:8.2f} {r['outputs'] / GB:11.3f} {r['rss_extra'] / GB:18.3f} {traced:>16}")
    losses = {impl: r["loss"] for impl, r in rows.items()}
    print("losses:", ", ".join(f"{k} {v:.7f}" for k, v in losses.items()))

    ok = True
    if "fused" in rows:
        fused = max(rows["fused"]["rss_extra"], rows["fused"].get("traced_extra", 0))
        verdict = "ok" if fused <= args.limit_gb * GB else "NOT MET"
        ok &= verdict == "ok"
        print(f"fused extra {fused / GB:.3f} GB <= {args.limit_gb} GB: {verdict}")
        for other in ("numpy", "torch"):
            if other in rows:
                ratio = rows[other]["rss_extra"] / fused
                verdict = "ok" if ratio >= args.min_ratio else "NOT MET"
                ok &= verdict == "ok" or other == "torch"
                print(f"{other} extra / fused extra = {ratio:.1f}x (at least {args.min_ratio:g}x): {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
