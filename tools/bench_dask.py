"""Scaling benchmark of fastxent.dask (issue 15): out-of-core per-token cross-entropy.

Logits (tokens, vocab) float32 in an uncompressed Zarr store (written once, by
examples/dask_eval.py's writer); every measurement computes the per-token loss
of all of them and reports GB/s of logits:

- fastxent in memory on a slice that fits (no I/O), 1 thread and 2 threads;
- that slice as a Dask array in this process, on the threaded scheduler with 1
  and 2 threads (the graph's own cost, without a cluster's);
- on LocalClusters of 1 and 2 worker processes (one thread each, each worker
  limited to --memory-limit), with the blocks of a --resident-mb slice already
  in the workers' memory, each used as many times as makes the store's size
  (no I/O: what Dask and the graph cost), then out of
  core, from the Zarr store: fastxent.dask, the naive dask.array expression of
  the same loss (max, exp, sum, log and fancy indexing of the target logits),
  and reading the blocks only (the I/O floor of both).

Rounds are interleaved (each configuration once per round); the table shows
the best and the median of --rounds, in GB/s of wall time and in GB per
CPU-second (the CPU time of every process involved: workers, scheduler and
client; on a shared machine the CPU measure is the steadier one, and per core
it is what the goals compare).  The store is in the page cache when it fits in
RAM: "out-of-core" here means out of the workers' memory.

Run: PYTHONPATH=src python tools/bench_dask.py --gb 2 [--store DIR --keep]
"""
import argparse
import importlib.util
import os
import shutil
import statistics
import tempfile
import time

import dask
import dask.array as da
import numpy as np
import zarr
from dask.distributed import Client, LocalCluster

import fastxent
import fastxent.dask as fxd

HERE = os.path.dirname(os.path.abspath(__file__))


def _example():
    spec = importlib.util.spec_from_file_location(
        "dask_eval", os.path.join(HERE, os.pardir, "examples", "dask_eval.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def naive_per_token(logits, targets, ignore):
    """The loss as a user writes it with dask.array alone."""
    m = logits.max(axis=-1, keepdims=True)
    lse = da.log(da.exp(logits - m).sum(axis=-1)) + m[:, 0]
    keep = targets != ignore
    picked = logits.vindex[np.arange(logits.shape[0]), np.where(keep, targets, 0)]
    return da.where(keep, lse - picked, 0.0)


def _first_column(block):
    return block[:, :1].copy()       # a copy: a view would keep the whole block alive


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gb", type=float, default=2.0)
    p.add_argument("--vocab", type=int, default=32768)
    p.add_argument("--block-mb", type=float, default=64.0, help="Dask block")
    p.add_argument("--chunk-mb", type=float, default=16.0, help="Zarr chunk")
    p.add_argument("--slice-mb", type=float, default=512.0, help="the in-memory slice")
    p.add_argument("--resident-mb", type=float, default=256.0, help="the slice held by the workers")
    p.add_argument("--memory-limit", default="1GB")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--store", default=None)
    p.add_argument("--keep", action="store_true", help="reuse --store when it has the right shape")
    p.add_argument("--malloc-trim", type=int, default=None,
                   help="MALLOC_TRIM_THRESHOLD_ of the worker processes (distributed sets 65536; "
                        "a larger value lets glibc reuse freed block buffers instead of mapping new pages)")
    args = p.parse_args()
    if args.malloc_trim is not None:
        dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": args.malloc_trim})

    ex = _example()
    rows, chunk_rows, n_tokens = ex.layout(args)
    path = args.store or tempfile.mkdtemp(suffix=".zarr")
    clusters = {n: LocalCluster(n_workers=n, threads_per_worker=1, memory_limit=args.memory_limit,
                                dashboard_address=":0", scheduler_kwargs={"dashboard": False})
                for n in (1, 2)}
    clients = {n: Client(c, set_as_default=False) for n, c in clusters.items()}
    try:
        lg = os.path.join(path, "logits")
        if not (args.keep and ex.store_matches(path, n_tokens, args.vocab, chunk_rows)):
            with clients[2].as_current():
                ex.write_store(path, n_tokens, args.vocab, rows, chunk_rows)
        logits = da.from_zarr(path, component="logits", chunks=(rows, args.vocab))
        targets_lazy = da.from_zarr(path, component="targets", chunks=(rows,))
        targets = targets_lazy.compute()
        gb = logits.nbytes / 1e9
        s_rows = max(1, int(args.slice_mb * 1e6 // (4 * args.vocab)))
        x_mem = zarr.open_array(lg, mode="r")[:s_rows]
        y_mem = targets[:s_rows]
        s_gb = x_mem.nbytes / 1e9

        def in_memory(n_threads):
            t0, c0 = time.perf_counter(), time.process_time()
            fastxent.cross_entropy(x_mem, y_mem, axis=-1, reduction="none", n_threads=n_threads)
            return s_gb / (time.perf_counter() - t0), s_gb / (time.process_time() - c0)

        x_local = da.from_array(x_mem, chunks=(rows, args.vocab))
        local_reps = max(1, round(gb / s_gb))
        x_local = da.concatenate([x_local] * local_reps)
        y_local_np = np.tile(y_mem, local_reps)
        y_local = da.from_array(y_local_np, chunks=(x_local.chunks[0],))
        local_gb = local_reps * s_gb

        def threaded(n, what):
            lazy = (fxd.cross_entropy(x_local, y_local, axis=-1, reduction="none") if what == "fastxent"
                    else naive_per_token(x_local, y_local_np, ex.IGNORE))
            t0, c0 = time.perf_counter(), time.process_time()
            dask.compute(lazy, scheduler="threads", num_workers=n)
            return local_gb / (time.perf_counter() - t0), local_gb / (time.process_time() - c0)

        def cpu_seconds(n):
            return sum(clients[n].run(time.process_time).values()) + time.process_time()

        r_rows = max(rows, int(args.resident_mb * 1e6 // (4 * args.vocab)) // rows * rows)
        resident = {n: c.persist(logits[:r_rows]) for n, c in clients.items()}
        reps = max(1, round(args.gb * 1e3 / args.resident_mb))   # as many bytes as the store
        r_gb = reps * r_rows * args.vocab * 4 / 1e9

        def on_cluster(n, what, where):
            if where == "resident":       # the resident blocks, each used `reps` times
                x, y_np, size = da.concatenate([resident[n]] * reps), np.tile(targets[:r_rows], reps), r_gb
                y = da.from_array(y_np, chunks=(x.chunks[0],))
            else:
                x, y, y_np, size = logits, targets_lazy, targets, gb
            if what == "read":
                lazy = da.map_blocks(_first_column, x, chunks=(x.chunks[0], (1,)))
            elif what == "fastxent":
                lazy = fxd.cross_entropy(x, y, axis=-1, reduction="none")
            else:
                lazy = naive_per_token(x, y_np, ex.IGNORE)
            t0, c0 = time.perf_counter(), cpu_seconds(n)
            clients[n].compute(lazy).result()
            wall = time.perf_counter() - t0
            return size / wall, size / (cpu_seconds(n) - c0)

        check = clients[2].compute(naive_per_token(logits[:rows], targets[:rows], ex.IGNORE)).result()
        ours = fastxent.cross_entropy(x_mem[:rows], y_mem[:rows], axis=-1, reduction="none")
        print(f"naive vs fastxent on the first block: max |diff| {np.max(np.abs(check - ours)):.2e}")

        configs = {"fastxent in memory, 1 thread": lambda: in_memory(1),
                   "fastxent in memory, 2 threads": lambda: in_memory(2)}
        labels = {"read": "read blocks only", "fastxent": "fastxent.dask", "naive": "naive dask.array"}
        for n in (1, 2):
            for what in ("fastxent", "naive"):
                configs[f"{labels[what]}, threaded, {n} thread{'s' if n > 1 else ''}"] = \
                    (lambda n=n, w=what: threaded(n, w))
        for where, whats in (("resident", ("fastxent", "naive")), ("zarr", ("read", "fastxent", "naive"))):
            for n in (1, 2):
                for what in whats:
                    configs[f"{labels[what]}, {where}, {n} worker{'s' if n > 1 else ''}"] = \
                        (lambda n=n, w=what, wh=where: on_cluster(n, w, wh))
        results = {k: [] for k in configs}
        for r in range(args.rounds):
            for k, f in configs.items():
                results[k].append(f())
            print(f"round {r + 1}/{args.rounds} done", flush=True)

        print(f"\n{gb:.2f} GB of float32 logits ({n_tokens} x {args.vocab}), blocks of {rows} tokens "
              f"({rows * args.vocab * 4 / 1e6:.0f} MB, Zarr chunks of {chunk_rows} tokens); "
              f"in-memory slice {s_gb:.2f} GB, resident "
              f"slice {r_gb:.2f} GB; worker memory "
              f"limit {args.memory_limit}; workers' MALLOC_TRIM_THRESHOLD_ "
              f"{dask.config.get('distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_', None)}; "
              f"fastxent {fastxent.__version__}, {os.cpu_count()} CPUs; load average "
              f"{os.getloadavg()[0]:.1f}\n")
        print(f"| {'configuration':40s} | GB/s best | GB/s median | GB/CPU-s best | GB/CPU-s median |")
        print(f"|{'-' * 42}|----------:|------------:|--------------:|----------------:|")
        for k, v in results.items():
            wall, cpu = [r[0] for r in v], [r[1] for r in v]
            print(f"| {k:40s} | {max(wall):9.2f} | {statistics.median(wall):11.2f} "
                  f"| {max(cpu):13.2f} | {statistics.median(cpu):15.2f} |")
        for i, measure in ((1, "CPU time"), (0, "wall time")):
            best = {k: max(r[i] for r in v) for k, v in results.items()}
            mem1 = best["fastxent in memory, 1 thread"]
            print(f"\nby {measure} (best of {args.rounds}):")
            for where, unit in (("threaded", "thread"), ("resident", "worker"), ("zarr", "worker")):
                for n in (1, 2):
                    suffix = f"{n} {unit}{'s' if n > 1 else ''}"
                    fx = best[f"fastxent.dask, {where}, {suffix}"]
                    nv = best[f"naive dask.array, {where}, {suffix}"]
                    per = fx if i == 1 else fx / n
                    print(f"  {where}, {suffix}: in-memory 1 thread / fastxent.dask per core = "
                          f"{mem1 / per:.2f} (goal <= 1.5); fastxent.dask / naive = {fx / nv:.1f}x (goal >= 3)")
    finally:
        for c in clients.values():
            c.close()
        for c in clusters.values():
            c.close()
        if args.store is None:
            shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    main()
