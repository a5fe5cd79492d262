"""Thread caps for worker processes: one ITK / BLAS / OpenMP thread per worker on a shared machine."""

from __future__ import annotations

import os

__all__ = ["THREAD_ENV", "thread_caps"]

#: Environment variables that cap BLAS/OpenMP threads in worker processes.
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def thread_caps(n: int = 1) -> None:
    """Cap ITK, BLAS and OpenMP threads of this process (called at the start of every task)."""
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(n)
    for var in THREAD_ENV:
        os.environ[var] = str(n)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        pass
