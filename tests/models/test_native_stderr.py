"""silenced_native_stderr: fd 2 silenced around a block, restored after, re-emitted on an exception."""
from __future__ import annotations

import os
import threading

import pytest

from handpose.models.native_stderr import silenced_native_stderr


def _fd2_identity() -> tuple[int, int]:
    st = os.fstat(2)
    return st.st_dev, st.st_ino


def test_writes_to_fd2_inside_the_block_are_dropped(capfd: pytest.CaptureFixture) -> None:
    before = _fd2_identity()
    os.write(2, b"before\n")
    with silenced_native_stderr():
        os.write(2, b"W0000 inference_feedback_manager.cc:114] Feedback manager requires...\n")
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "before\nafter\n"
    assert _fd2_identity() == before


def test_an_exception_re_emits_what_was_captured(capfd: pytest.CaptureFixture) -> None:
    with pytest.raises(RuntimeError, match="graph failed"):
        with silenced_native_stderr():
            os.write(2, b"E0000 calculator_graph.cc] the reason\n")
            raise RuntimeError("graph failed")
    assert capfd.readouterr().err == "E0000 calculator_graph.cc] the reason\n"
    os.write(2, b"restored\n")
    assert capfd.readouterr().err == "restored\n"


def test_nested_and_concurrent_blocks_restore_fd2_once_all_end(capfd: pytest.CaptureFixture) -> None:
    before = _fd2_identity()
    inside, release = threading.Barrier(3), threading.Event()

    def worker(name: str) -> None:
        with silenced_native_stderr():
            inside.wait()
            os.write(2, f"{name} native log\n".encode())
            release.wait(10)

    threads = [threading.Thread(target=worker, args=(f"t{i}",)) for i in range(2)]
    with silenced_native_stderr():
        for thread in threads:
            thread.start()
        inside.wait()
        with silenced_native_stderr():  # nested
            os.write(2, b"nested\n")
        os.write(2, b"main\n")
    release.set()
    for thread in threads:
        thread.join(10)
    os.write(2, b"visible\n")
    assert capfd.readouterr().err == "visible\n"
    assert _fd2_identity() == before
