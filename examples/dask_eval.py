"""
Out-of-core evaluation with Dask
================================

The per-token cross-entropy of
logits that do not fit in the memory the job allows itself.

The logits (tokens, vocab) in float32 and the targets are written to a Zarr
store on disk, block by block; then a dask.distributed LocalCluster whose
workers may each use at most --memory-limit computes the per-token losses
(stored next to the logits) and their mean, with Dask's progress bar.  Each
task reads one block of logits and calls fastxent once; nothing holds more
than a few blocks at a time.  At the end: size on disk, memory limit, peak
memory of the workers, time, throughput, and two checks (the first block's
losses against fastxent in memory, bitwise; the exact mean against the mean of
the stored per-token losses).

Run:  python examples/dask_eval.py                      (64 MB of logits, seconds)
      python examples/dask_eval.py --gb 4 --memory-limit 1GB --store /tmp/logits.zarr
"""
import argparse
import os
import resource
import shutil
import tempfile
import time

import dask.array as da
import numpy as np
import zarr
from dask.distributed import Client, LocalCluster, progress

import fastxent
import fastxent.dask as fxd

IGNORE = -100


def parse_args():
    p = argparse.ArgumentParser(description="Out-of-core evaluation with Dask")
    p.add_argument("--gb", type=float, default=0.064, help="size of the float32 logits in GB (1e9 bytes)")
    p.add_argument("--vocab", type=int, default=32768, help="classes per token")
    p.add_argument("--block-mb", type=float, default=16.0, help="logits per Dask block, in MB")
    p.add_argument("--chunk-mb", type=float, default=16.0,
                   help="logits per Zarr chunk, in MB (a Dask block reads whole chunks)")
    p.add_argument("--workers", type=int, default=1, help="worker processes, one thread each")
    p.add_argument("--memory-limit", default="1GB", help="memory limit of each worker")
    p.add_argument("--store", default=None, help="Zarr directory (default: a temporary one, removed after)")
    p.add_argument("--keep", action="store_true", help="reuse --store if it holds logits of this size")
    return p.parse_args()


def write_store(path, n_tokens, vocab, rows, chunk_rows):
    """Random logits (scaled normal) and targets (5% ignored), written by the
    cluster block by block: uncompressed float32 in Zarr chunks of ``chunk_rows``
    tokens (a divisor of the ``rows`` of a Dask block).  Chunks of about 16 MB
    read faster than one chunk per block: smaller read buffers are reused by
    the allocator instead of being mapped afresh for every block."""
    root = zarr.open_group(path, mode="w")
    logits = root.create_array("logits", shape=(n_tokens, vocab), chunks=(chunk_rows, vocab),
                               dtype="float32", compressors=None)
    targets = root.create_array("targets", shape=(n_tokens,), chunks=(rows,), dtype="int32",
                                compressors=None)
    rng = da.random.default_rng(2024)
    x = 3.0 * rng.standard_normal((n_tokens, vocab), chunks=(rows, vocab), dtype=np.float32)
    y = rng.integers(0, vocab, n_tokens, chunks=rows)
    y = da.where(rng.random(n_tokens, chunks=rows) < 0.05, IGNORE, y).astype(np.int32)
    da.store([x, y], [logits, targets], lock=False)


def layout(args):
    """(tokens per Dask block, tokens per Zarr chunk, tokens) for the options."""
    chunk_rows = max(1, int(min(args.chunk_mb, args.block_mb) * 1e6 // (4 * args.vocab)))
    rows = max(1, int(args.block_mb * 1e6 // (4 * args.vocab))) // chunk_rows * chunk_rows
    return rows, chunk_rows, max(rows, int(args.gb * 1e9 // (4 * args.vocab)))


def store_matches(path, n_tokens, vocab, chunk_rows):
    lg = os.path.join(path, "logits")
    if not os.path.isdir(lg):
        return False
    a = zarr.open_array(lg, mode="r")
    return a.shape == (n_tokens, vocab) and a.chunks == (chunk_rows, vocab)


def peak_rss():
    """The peak resident memory of this process (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def directory_size(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def main():
    args = parse_args()
    rows, chunk_rows, n_tokens = layout(args)
    path = args.store or tempfile.mkdtemp(suffix=".zarr")
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, memory_limit=args.memory_limit,
                      dashboard_address=":0", scheduler_kwargs={"dashboard": False}) as cluster, \
            Client(cluster) as client:
        try:
            if not (args.keep and store_matches(path, n_tokens, args.vocab, chunk_rows)):
                t0 = time.perf_counter()
                write_store(path, n_tokens, args.vocab, rows, chunk_rows)
                print(f"wrote {n_tokens} x {args.vocab} float32 logits in {time.perf_counter() - t0:.1f} s")
            client.restart()                      # fresh workers: their peak memory is the evaluation's

            logits = da.from_zarr(path, component="logits", chunks=(rows, args.vocab))
            targets = da.from_zarr(path, component="targets", chunks=(rows,))
            per_token = fxd.cross_entropy(logits, targets, axis=-1, reduction="none")
            mean = fxd.cross_entropy(logits, targets, axis=-1)
            out = zarr.open_group(path, mode="a").create_array(
                "loss", shape=per_token.shape, chunks=(rows,), dtype="float32", overwrite=True)
            t0 = time.perf_counter()
            futures = client.compute([da.store(per_token, out, lock=False, compute=False), mean])
            progress(futures)
            print()
            mean = futures[1].result()
            seconds = time.perf_counter() - t0
            peaks = client.run(peak_rss)

            logit_bytes = logits.nbytes
            print(f"logits on disk:      {directory_size(os.path.join(path, 'logits')) / 1e9:.3f} GB "
                  f"({n_tokens} tokens x {args.vocab}, {logits.numblocks[0]} blocks of {rows} tokens, "
                  f"Zarr chunks of {chunk_rows})")
            print(f"workers:             {args.workers} x 1 thread, memory limit {args.memory_limit} each")
            print(f"peak worker memory:  {max(peaks.values()) / 1e9:.3f} GB")
            print(f"time:                {seconds:.2f} s, {logit_bytes / 1e9 / seconds:.2f} GB/s of logits")

            stored = zarr.open_array(os.path.join(path, "loss"), mode="r")[:]
            y = zarr.open_array(os.path.join(path, "targets"), mode="r")[:]
            first = fastxent.cross_entropy(zarr.open_array(os.path.join(path, "logits"), mode="r")[:rows],
                                           y[:rows], axis=-1, reduction="none")
            print(f"mean loss:           {float(mean):.7f} (fastxent.dask, reduction='mean')")
            print(f"mean of per-token:   {np.sum(stored, dtype=np.float64) / np.count_nonzero(y != IGNORE):.7f} "
                  "(the stored float32 losses)")
            print(f"first block equals fastxent in memory: {np.array_equal(stored[:rows], first)}")
        finally:
            if args.store is None:
                shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    main()
