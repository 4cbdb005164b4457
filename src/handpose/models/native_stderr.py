"""Silence what native libraries write to the process's standard error (file descriptor 2).

MediaPipe's C++ graphs log through absl/glog straight to fd 2 ("Created TensorFlow Lite XNNPACK
delegate for CPU", "Feedback manager requires a model with a single signature...", "Using
NORM_RECT without IMAGE_DIMENSIONS..."), whatever ``GLOG_minloglevel`` or
``TF_CPP_MIN_LOG_LEVEL`` say, and bypassing ``sys.stderr``: in a terminal they interleave with the
CLI's output, in Jupyter (which forwards fd 2) they become red stderr blocks in the notebooks and
the report. :func:`silenced_native_stderr` points fd 2 at a temporary file around a native call and
restores it after; what was captured is dropped, unless the block raised, in which case it is written
back to the real stderr (it may explain the failure).

Everything that reaches fd 2 during the block is captured, Python's own ``sys.stderr`` too when it
is the process's fd 2 (a terminal; not Jupyter, whose ``sys.stderr`` is a message stream). The
redirection is process-wide: blocks may nest and run in several threads at once; fd 2 is restored
when the last one ends.
"""
from __future__ import annotations

import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_STDERR_FD = 2
_lock = threading.Lock()
_state: dict = {"depth": 0, "saved": None, "capture": None, "failed": False}


def _flush_python_stderr() -> None:
    """Flush Python's buffered stderr so that text written before a switch lands on its side."""
    for stream in (sys.stderr, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # closed or detached stream
            pass


@contextmanager
def silenced_native_stderr() -> Iterator[None]:
    """Run the block with fd 2 redirected to a temporary file (see the module docstring).

    Example:
        >>> with silenced_native_stderr():  # doctest: +SKIP
        ...     result = hands.process(image)
    """
    with _lock:
        if _state["depth"] == 0:
            try:
                saved = os.dup(_STDERR_FD)
            except OSError:  # no fd 2 (e.g. a windowless process): nothing to silence
                saved = None
            if saved is not None:
                _flush_python_stderr()
                capture = tempfile.TemporaryFile()
                os.dup2(capture.fileno(), _STDERR_FD)
                _state.update(saved=saved, capture=capture, failed=False)
        _state["depth"] += 1
    try:
        yield
    except BaseException:
        _state["failed"] = True
        raise
    finally:
        with _lock:
            _state["depth"] -= 1
            if _state["depth"] == 0 and _state["saved"] is not None:
                _flush_python_stderr()
                saved, capture = _state["saved"], _state["capture"]
                os.dup2(saved, _STDERR_FD)
                os.close(saved)
                if _state["failed"]:
                    capture.seek(0)
                    with open(_STDERR_FD, "wb", closefd=False) as stderr:
                        stderr.write(capture.read())
                capture.close()
                _state.update(saved=None, capture=None, failed=False)
