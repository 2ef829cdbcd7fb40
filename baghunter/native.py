"""Keeping native libraries' start-up lines off a user's console.

TensorFlow's C++ runtime writes its start-up lines (oneDNN, CPU features, absl) straight
to file descriptor 2 when it is imported, past Python's logging. They say nothing a user
can act on, and in a child whose output is relayed line by line (the DAG's training
process, the demo) they drown the progress that matters.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def native_stderr_to(path: Path | str) -> Iterator[None]:
    """Send what native code writes to file descriptor 2 to ``path`` meanwhile."""
    if isinstance(path, Path):
        path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(path, "ab") as sink:
            os.dup2(sink.fileno(), 2)
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def import_tensorflow_quietly(log_file: Path | None = None) -> None:
    """Import TensorFlow with its start-up lines sent to ``log_file`` (default: dropped)."""
    if "tensorflow" in sys.modules:
        return
    with native_stderr_to(log_file or os.devnull):
        import tensorflow  # noqa: F401
