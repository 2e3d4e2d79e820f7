"""Reading .npz files from threads, one at a time per process.

NumPy parses each array's header with `ast.literal_eval`, and CPython 3.11 turns the parsed tree
into Python objects with a recursion counter that threads share (python/cpython#106905: a thread
switch in the middle raises "SystemError: AST constructor recursion depth mismatch"; CI saw it
when diarize's eight fetchers loaded chunk features at once). Every `np.load` of Mina goes
through `opened`, under one process-wide lock: the speaker model's weights (loaded by the
worker's warm-up thread at boot) and the chunks' features cannot race each other either.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

_lock = threading.Lock()


@contextmanager
def opened(path: str | os.PathLike[str]) -> Iterator[Any]:
    """`np.load(path)` (no pickles) under the process-wide lock, closed on exit."""
    with _lock, np.load(path, allow_pickle=False) as data:
        yield data
