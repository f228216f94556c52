"""JAX's column of ``python -m fastxent bench``: one child process per thread count.

XLA's CPU client sizes its thread pool once, when the backend starts, from the
CPUs the process may run on (with the affinity of one CPU a jax process starts
6 fewer threads here than with two), and nothing changes it afterwards.  So each
thread count ``n`` gets a fresh interpreter whose CPU affinity is set to ``n`` CPUs before ``jax`` is imported
(and, at one thread, ``--xla_cpu_multi_thread_eigen=false`` too).  JAX has no
documented run-time thread setting, and threadpoolctl does not see XLA's pool.  The child
times each op under ``jax.jit`` (compiled by a warm-up call, each call waited
for), checks its result against the NumPy twin, and reports the process's CPU
time over wall time during its timed calls: the threads JAX really used (a
value near 1 at two threads means XLA ran that op on one thread).

The child runs after the rest of the bench, so it never competes with the
in-process timings; its progress goes to stderr.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time


def _child() -> None:
    """In the child: reads the job from stdin, prints one JSON line per timing."""
    spec = json.loads(sys.stdin.read())
    n = spec["threads"]
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    if cpus is not None:
        if n > len(cpus):
            print(json.dumps({"error": f"JAX at {n} threads needs {n} CPUs; this process "
                                       f"may run on {len(cpus)}"}), flush=True)
            return
        os.sched_setaffinity(0, cpus[:n])
    import jax  # optional peer
    jax.config.update("jax_enable_x64", True)      # float64 logits stay float64

    from ._peers import peer_call
    from ._workloads import OPS, differs, get, result_names, runner, time_median

    for job in spec["jobs"]:
        wl, dtype = get(job["workload"]), job["dtype"]
        x, target = wl.make(dtype, tiny=spec["tiny"])
        v = wl.vector(dtype, tiny=spec["tiny"]) if "hvp" in job["ops"] else None
        label = wl.label(dtype, spec["tiny"])
        sys.stderr.write(f"  [jax, {n} thread{'s' if n > 1 else ''}] {label}:")
        for op in job["ops"]:
            call = peer_call("jax", op, wl, x, target, v=v)
            if call is None:
                continue
            sys.stderr.write(f" {op}")
            sys.stderr.flush()
            function, grad, hess = OPS[op]
            got = call()                                   # compiles
            want = runner("numpy", function or wl.loss_function, wl, x, target,
                          return_grad=grad, return_hessian=hess, v=v)()
            problem = differs(got, want, x.dtype, names=result_names(grad, hess))
            cpu, wall = time.process_time(), time.perf_counter()
            seconds = time_median(call, spec["repeat"], warmup=1)
            cpu = (time.process_time() - cpu) / max(time.perf_counter() - wall, 1e-9)
            print(json.dumps({"label": label, "op": op, "seconds": seconds, "cpu": cpu,
                              "problem": problem}), flush=True)
        sys.stderr.write("\n")
        del x, target, v


def times(jobs, threads, *, repeat, tiny, err=None) -> tuple:
    """JAX's times: ``({(label, op, n): (seconds, cpu_over_wall, problem)}, notes)``
    for ``jobs`` = ``[(workload_name, dtype, ops)]`` at each thread count, each
    in its own child process."""
    err = err or sys.stderr
    results, notes = {}, []
    pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for n in threads:
        env = dict(os.environ, JAX_PLATFORMS="cpu",
                   PYTHONPATH=os.pathsep.join([pkg_root, os.environ.get("PYTHONPATH", "")]))
        if n == 1:
            env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
                                " intra_op_parallelism_threads=1").strip()
        spec = {"threads": n, "repeat": repeat, "tiny": tiny,
                "jobs": [{"workload": w, "dtype": d, "ops": list(ops)} for w, d, ops in jobs]}
        try:
            err.fileno()
            stderr = err                                   # progress shows as it happens
        except (AttributeError, OSError, ValueError):
            stderr = subprocess.PIPE
        res = subprocess.run([sys.executable, "-c", "from fastxent._bench_jax import _child; _child()"],
                             input=json.dumps(spec), stdout=subprocess.PIPE, stderr=stderr,
                             text=True, env=env)
        if stderr is subprocess.PIPE:
            err.write(res.stderr)
        for line in res.stdout.splitlines():
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if "error" in r:
                notes.append(f"jax at {n} threads not timed: {r['error']}")
                continue
            results[(r["label"], r["op"], n)] = (r["seconds"], r["cpu"], r["problem"])
        if res.returncode != 0:
            notes.append(f"jax at {n} threads: the child process failed (exit {res.returncode}); "
                         f"its messages are above on stderr")
    return results, notes
