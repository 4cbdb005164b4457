"""``handpose video`` on a rendered clip: annotated MP4 and JSON lines out, tracking and smoothing
measured against the clip's exact truth, bad videos refused with exit code 2."""
from __future__ import annotations

import hashlib

import cv2
import numpy as np
import pytest

from handpose import cli
from handpose.demo_clip import evaluate_clip, render_clip, track_clip, write_clip
from handpose.video import AtomicVideoWriter, VideoError, process_video, read_frames, read_jsonl, video_info

pytest.importorskip("mediapipe")


@pytest.fixture(scope="module")
def clip(open_hand_export):
    # 640 x 480 as in the goals: at 320 x 240 MediaPipe's noise is larger than the motion between frames
    return render_clip(640, 480, fps=30.0, hold=10, transition=3, sequence=("open", "fist", "count2"),
                       second=("open",), second_from=0.6)


@pytest.fixture(scope="module")
def clip_file(clip, tmp_path_factory):
    return write_clip(clip, tmp_path_factory.mktemp("clip") / "clip.mp4")


def decode(path) -> np.ndarray:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return np.stack(frames)


def test_mp4_in_annotated_mp4_and_json_lines_out(clip, clip_file, tmp_path, capsys):
    """Same frame count and size out as in (decoded back with OpenCV); one JSON line per frame with
    the HandPrediction fields plus frame, time, track id, gesture and fingers; the input untouched;
    no temporary file left."""
    before = hashlib.sha256(clip_file.read_bytes()).hexdigest()
    assert cli.main(["video", str(clip_file), "--out", str(tmp_path)]) == 0
    assert "39 frames" in capsys.readouterr().out
    annotated = decode(tmp_path / "clip_annotated.mp4")
    assert annotated.shape == (len(clip), 480, 640, 3)
    # the drawing changed the frames (skeleton colours), the picture is still the clip's
    source = decode(clip_file)
    assert np.abs(annotated.astype(int) - source).mean() > 0.5
    assert np.abs(annotated.astype(int) - source).mean() < 20
    lines = read_jsonl(tmp_path / "clip_hands.jsonl")
    assert [line["frame"] for line in lines] == list(range(len(clip)))
    assert lines[3]["time"] == pytest.approx(3 / 30.0, abs=1e-4)
    hand = lines[0]["hands"][0]
    assert {"keypoints_2d", "keypoints_3d", "handedness", "score", "box_xyxy", "source", "track_id", "gesture",
            "fingers"} <= set(hand)
    assert hand["track_id"] == 0 and hand["gesture"] == "open_palm" and hand["fingers"] == 5
    assert np.asarray(hand["keypoints_2d"]).shape == (21, 2)
    assert hashlib.sha256(clip_file.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip_annotated.mp4", "clip_hands.jsonl"]


def test_no_tracking_has_no_track_ids(clip_file, tmp_path):
    result = process_video(clip_file, tmp_path, tracking=False, progress=False, keep_results=True)
    assert result.frame_count == len(result.frames) == 39
    assert all(th.track_id is None for frame in result.frames for th in frame.hands)
    assert all(hand["track_id"] is None for line in read_jsonl(result.jsonl) for hand in line["hands"])


def test_no_smoothing_keeps_the_raw_keypoints(clip_file, tmp_path, capsys):
    assert cli.main(["video", str(clip_file), "--out", str(tmp_path), "--no-smoothing"]) == 0
    capsys.readouterr()
    result = process_video(clip_file, tmp_path / "again", smoothing=False, progress=False, keep_results=True)
    hands = [th for frame in result.frames for th in frame.hands]
    assert hands and all(np.array_equal(th.hand.keypoints_2d, th.raw.keypoints_2d) for th in hands)
    assert {th.track_id for th in hands} == {0, 1}
    lines = read_jsonl(tmp_path / "clip_hands.jsonl")
    np.testing.assert_allclose(lines[5]["hands"][0]["keypoints_2d"], result.frames[5].hands[0].raw.keypoints_2d,
                               atol=1e-3)


def test_tracking_and_smoothing_on_the_clip(clip):
    """Against the exact truth: nearly every hand found, PCK@0.1 high, no id switch; smoothing at
    least halves the jitter on held poses and costs at most 0.02 PCK; gestures mostly right."""
    runs, _ = track_clip(clip)
    raw, smooth = evaluate_clip(clip, runs[False]), evaluate_clip(clip, runs[True])
    assert raw.detected > 0.95 and raw.id_switches == 0 and smooth.id_switches == 0
    assert np.nanmean(raw.pck) > 0.7  # PCK@0.1; fists are the hardest
    assert smooth.jitter < 0.5 * raw.jitter
    assert np.nanmean(smooth.pck) >= np.nanmean(raw.pck) - 0.02
    assert smooth.gesture_accuracy > 0.75 and smooth.count_accuracy > 0.75


@pytest.mark.parametrize("content, reason", [(b"", "empty"), (b"\x00\x01garbage" * 500, "decode")])
def test_corrupt_or_empty_video_exits_2_naming_the_file(tmp_path, capsys, content, reason):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    assert cli.main(["video", str(bad), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and reason in err
    assert bad.read_bytes() == content
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    with pytest.raises(VideoError, match="bad.mp4"):
        list(read_frames(bad))


def test_unwritable_output_exits_2(clip_file, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert cli.main(["video", str(clip_file), "--out", str(blocker / "out")]) == 2
    assert "error:" in capsys.readouterr().err


def test_missing_video_exits_2(tmp_path, capsys):
    assert cli.main(["video", str(tmp_path / "none.mp4"), "--out", str(tmp_path)]) == 2
    assert "none.mp4: no such file" in capsys.readouterr().err


def test_outputs_beside_the_input_leave_it_alone(clip_file, tmp_path):
    """Writing into the input's own folder adds files with their own names (``_annotated``)."""
    video = tmp_path / "in.mp4"
    video.write_bytes(clip_file.read_bytes())
    result = process_video(video, tmp_path, tracking=False, progress=False)
    assert video.read_bytes() == clip_file.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "in_annotated.mp4", "in_hands.jsonl"]
    assert result.video == tmp_path / "in_annotated.mp4"


def test_atomic_writer_round_trip_and_abort(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (4, 48, 64, 3), dtype=np.uint8)
    with AtomicVideoWriter(tmp_path / "a.mp4", 10.0) as writer:
        for frame in frames:
            writer.write(frame)
    info = video_info(tmp_path / "a.mp4")
    assert (info.frames, info.width, info.height, info.fps) == (4, 64, 48, 10.0)
    with pytest.raises(RuntimeError):
        with AtomicVideoWriter(tmp_path / "b.mp4", 10.0) as writer:
            writer.write(frames[0])
            raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4"]
    with pytest.raises(ValueError, match="differs"):
        with AtomicVideoWriter(tmp_path / "c.mp4", 10.0) as writer:
            writer.write(frames[0])
            writer.write(frames[0][:20])
