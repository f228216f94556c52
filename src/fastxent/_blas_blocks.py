"""Blocks of matmuls on a pool of Python threads, each block on one BLAS thread.

linear_cross_entropy cuts each matmul into blocks that depend on the shapes only
and runs them here: on ``n`` threads of a pool (NumPy releases the GIL inside
BLAS), or one after another in the calling thread.  While a call runs, BLAS is
held to one thread through threadpoolctl, so that a block gives the same bits
whichever thread runs it and however many run; NumPy's OpenBLAS changes the last
bits of a float32 product with its own thread count.  Where threadpoolctl is not
installed, or finds no BLAS it can limit, ``controller()`` is None and the caller
runs the blocks in its own thread with BLAS on BLAS's threads.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import threading

_blas_lock = threading.Lock()
_blas_state: dict = {"controller": None, "looked": False, "users": 0, "limiter": None}


def controller():
    """threadpoolctl's controller of the BLAS libraries loaded, or None."""
    with _blas_lock:
        if not _blas_state["looked"]:
            _blas_state["looked"] = True
            try:
                from threadpoolctl import ThreadpoolController  # optional
            except ImportError:
                pass
            else:
                blas = ThreadpoolController().select(user_api="blas")
                _blas_state["controller"] = blas if blas.lib_controllers else None
        return _blas_state["controller"]


@contextlib.contextmanager
def single_threaded_blas(blas):
    """BLAS held to one thread while any call is inside (calls from several Python
    threads at once share one limit, restored when the last one leaves)."""
    with _blas_lock:
        if _blas_state["users"] == 0:
            _blas_state["limiter"] = blas.limit(limits=1)
        _blas_state["users"] += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_state["users"] -= 1
            if _blas_state["users"] == 0:
                _blas_state["limiter"].restore_original_limits()
                _blas_state["limiter"] = None


class Blocks:
    """Runs a list of ``(function, argument)`` tasks: on a pool of threads, or here."""

    def __init__(self, n_workers: int):
        self.n_workers = n_workers
        self._pool = (concurrent.futures.ThreadPoolExecutor(n_workers, "fastxent-linear")
                      if n_workers > 1 else None)

    def run(self, tasks) -> None:
        if self._pool is None:
            for fn, arg in tasks:
                fn(arg)
            return
        futures = [self._pool.submit(fn, arg) for fn, arg in tasks]
        for f in futures:
            f.result()

    def close(self) -> None:
        """Waits for the running tasks; those not started (after an error or an
        interrupt) are dropped."""
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)


def slices(n: int, size: int) -> list:
    """``range(n)`` cut into slices of ``size``, the last one shorter."""
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]
