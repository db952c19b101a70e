"""CUDA out of memory during inference: halve the batch and run the same tiles again, so a run on a smaller GPU
finishes (more slowly) instead of failing; the halvings are reported in RunStats and the progress messages."""
from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def is_cuda_oom(exc: BaseException) -> bool:
    """torch.OutOfMemoryError (torch >= 2.5) or an older "CUDA out of memory" RuntimeError; not a CPU allocation
    failure (halving the batch cannot help the host's memory much, and hides the real problem)."""
    return type(exc).__name__ == "OutOfMemoryError" or "CUDA out of memory" in str(exc)


def _release_cuda_cache() -> None:
    torch = sys.modules.get("torch")  # only ever after a CUDA error, so torch is loaded
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


class BatchBackoff:
    """Runs ``fn(batch_size)``; on a CUDA OOM halves the batch (kept for the rest of the run) and runs it again."""

    def __init__(self, batch_size: int, report: Callable[[str], None] = lambda msg: None):
        self.batch_size = max(1, int(batch_size))
        self.halvings = 0
        self.report = report

    def run(self, fn: Callable[[int], T]) -> T:
        while True:
            try:
                return fn(self.batch_size)
            except Exception as exc:  # noqa: BLE001 - only CUDA OOM is handled, everything else re-raised
                if not is_cuda_oom(exc) or self.batch_size == 1:
                    raise
            _release_cuda_cache()
            self.batch_size //= 2
            self.halvings += 1
            self.report(f"CUDA out of memory: batch halved to {self.batch_size}, continuing")
