"""``handpose live`` without a display: it says so and writes the annotated frames to a file."""
from __future__ import annotations

import numpy as np
import pytest

from handpose import cli, live
from handpose.video import FrameProcessor, video_info, write_video
from _synthetic import hand_silhouette

pytest.importorskip("mediapipe")


@pytest.fixture()
def no_display(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(live.sys, "platform", "linux")


@pytest.fixture(scope="module")
def small_video(tmp_path_factory):
    frame = hand_silhouette(256)
    return write_video(tmp_path_factory.mktemp("live") / "hand.mp4", [np.roll(frame, 2 * i, axis=1) for i in range(5)],
                       10.0)


def test_display_problem_names_the_missing_display(no_display):
    assert "$DISPLAY is not set" in live.display_problem()


def test_no_display_falls_back_to_the_output_file(no_display, small_video, tmp_path, capsys):
    out = tmp_path / "live.mp4"
    assert cli.main(["live", "--video", str(small_video), "--out", str(out), "--max-frames", "3"]) == 0
    captured = capsys.readouterr()
    assert "no display" in captured.err and str(out) in captured.err
    assert "3 frames" in captured.out
    info = video_info(out)
    assert (info.frames, info.width, info.height) == (3, 256, 256)


def test_no_display_without_out_writes_the_default_file(no_display, small_video, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = live.run_live(video=small_video, max_frames=2)
    assert not result.window and result.frames == 2
    assert result.out == live.DEFAULT_OUT and video_info(tmp_path / live.DEFAULT_OUT).frames == 2


def test_keys_toggle_and_snapshot(tmp_path):
    state = live.LiveState()
    processor = FrameProcessor(meshes=False)
    frame = np.zeros((8, 8, 3), np.uint8)
    try:
        assert live.handle_key(ord("m"), state, processor, frame, tmp_path) and state.meshes and processor.meshes
        assert live.handle_key(ord("k"), state, processor, frame, tmp_path) and not state.skeleton
        assert live.handle_key(ord("s"), state, processor, frame, tmp_path) and not processor.smoothing
        assert live.handle_key(ord("p"), state, processor, frame, tmp_path)
        assert state.snapshots == [tmp_path / "handpose_snapshot_001.png"] and state.snapshots[0].is_file()
        assert live.handle_key(-1, state, processor, frame, tmp_path)  # no key pressed
        assert not live.handle_key(ord("q"), state, processor, frame, tmp_path)
        assert not live.handle_key(27, state, processor, frame, tmp_path)
    finally:
        processor.close()


def test_bad_video_exits_2(no_display, tmp_path, capsys):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"")
    assert cli.main(["live", "--video", str(bad), "--out", str(tmp_path / "o.mp4")]) == 2
    assert "bad.mp4: the file is empty" in capsys.readouterr().err
    assert not (tmp_path / "o.mp4").exists()


@pytest.fixture()
def virtual_display(monkeypatch):
    """A virtual X display (Xvfb) for the window path; skipped where Xvfb is not installed."""
    import os
    import shutil
    import subprocess

    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb)")
    read, write = os.pipe()  # Xvfb picks a free display number and writes it to `write`
    server = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "800x600x24"], pass_fds=(write,),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as pipe:
        number = pipe.readline().strip()
    if not number:
        server.kill()
        pytest.skip("Xvfb did not start")
    monkeypatch.setenv("DISPLAY", f":{number}")
    yield f":{number}"
    server.terminate()
    server.wait(timeout=10)


def test_window_path_under_a_virtual_display(virtual_display, small_video):
    assert live.display_problem() is None
    result = live.run_live(video=small_video, max_frames=3)
    assert result.window and result.frames == 3 and result.out is None
