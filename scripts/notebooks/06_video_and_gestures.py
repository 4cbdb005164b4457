# %% [markdown]
# # 6. Video, tracking and finger counting
#
# A video is a stream of photos whose hands move little from one frame to the next. This notebook
# uses that on a **rendered clip** with exact ground truth in every frame (`handpose.demo_clip`:
# the open hand model in the demo scene, running through gestures while its wrist turns, a second
# hand entering halfway):
#
# 1. **Tracking.** MediaPipe's video mode seeds each frame's landmark search with the previous
#    frame's hands and runs its palm detector only when a hand is lost; `handpose.tracking` gives
#    each hand a stable id (Hungarian matching on keypoint distance and handedness).
# 2. **Smoothing.** A One-Euro filter (Casiez et al., 2012) removes the frame-to-frame jitter of
#    a still hand without making a moving one lag.
# 3. **Fingers and gestures** (`handpose.gestures`): each finger extended or curled from the 3D
#    keypoints' joint angles, which no view changes, then the count and a named gesture.
#
# The same loop runs in `handpose video` (a file in, an annotated MP4 and one JSON line per frame
# out) and `handpose live` (a webcam in a window); the last section is how to use it in class.
# (`HANDPOSE_MAX_IMAGES`, when set, is the number of gestures in the clip: `make test` renders 3.)

# %%
import time

import matplotlib.pyplot as plt
import numpy as np

from handpose import figures
from handpose.demo_clip import SEQUENCE, acceleration_by_frame, evaluate_clip, render_clip, track_clip
from handpose.gestures import GESTURE_LABELS, classify
from handpose.notebook import max_images, save_figure
from handpose.video import FrameResult, annotate

plt.rcParams.update({"figure.dpi": 80, "axes.titlesize": 10, "font.size": 9})
START = time.perf_counter()
gestures = SEQUENCE[: max_images(6)]
clip = render_clip(640, 480, fps=30.0, hold=7, transition=3, sequence=gestures, second=("open", "count2"))
print(f"{len(clip)} frames of 640 x 480 at {clip.fps:g} fps, gestures: {', '.join(gestures)}; "
      f"rendered in {time.perf_counter() - START:.1f} s")

# %% [markdown]
# ## Tracking with and without smoothing
#
# MediaPipe runs once over the clip; its hands are then tracked twice, with and without the
# One-Euro filter. The scores use the clip's exact truth: PCK@0.1 (a keypoint is right within a
# tenth of the hand's box), track-id switches, and the **jitter**: the mean frame-to-frame
# acceleration of the keypoints, $|x_{t+1} - 2x_t + x_{t-1}|$ in px/frame², on the frames where a
# pose is held (the true motion there, a slowly turning wrist, has almost none).

# %%
runs, seconds = track_clip(clip)
scores = {smooth: evaluate_clip(clip, runs[smooth]) for smooth in (False, True)}
print(f"MediaPipe tracking: {len(clip) / seconds:.1f} frames/s on this machine")
print(f"{'':28}{'raw':>9}{'smoothed':>10}")
for label, value in (("PCK@0.1", lambda s: np.nanmean(s.pck)), ("hands found", lambda s: s.detected),
                     ("track-id switches", lambda s: s.id_switches), ("jitter, px/frame^2", lambda s: s.jitter),
                     ("gesture accuracy", lambda s: s.gesture_accuracy),
                     ("finger-count accuracy", lambda s: s.count_accuracy)):
    print(f"{label:<28}{value(scores[False]):>9.3f}{value(scores[True]):>10.3f}")
print(f"the true motion's own jitter on the same frames: {scores[False].truth_jitter:.3f} px/frame^2")

# %% [markdown]
# ## Annotated frames
#
# What `handpose video` and `handpose live` draw: the skeleton, then handedness, score, track id
# (`#0`), finger count and gesture.

# %%
smoothed = runs[True]
picks = np.linspace(0, len(clip) - 1, 8).round().astype(int)
frames = [annotate(clip.frames[i], FrameResult(i, i / clip.fps, smoothed[i],
                                               [classify(th.hand.keypoints_3d) for th in smoothed[i]]))
          for i in picks]
fig = figures.image_grid(frames, [f"frame {i}" for i in picks], ncols=4, cell_inches=3.2)
save_figure(fig, "06_annotated_strip")
plt.show()

# %% [markdown]
# ## Jitter with and without smoothing
#
# Per frame, the first hand's mean keypoint acceleration. Spikes are the gesture changes (real
# motion, which the filter lets through); in between, the filter removes most of the noise.

# %%
raw_acc, true_acc = acceleration_by_frame(clip, runs[False])
smooth_acc, _ = acceleration_by_frame(clip, runs[True])
fig, ax = plt.subplots(figsize=(9, 3))
ax.plot(raw_acc, label=f"raw (held poses: {scores[False].jitter:.2f})", color="tab:red", lw=1)
ax.plot(smooth_acc, label=f"One-Euro (held poses: {scores[True].jitter:.2f})", color="tab:blue", lw=1.5)
ax.plot(true_acc, label="truth", color="black", lw=1, ls="--")
ax.set(xlabel="frame", ylabel="px / frame²", title="keypoint acceleration of the first hand", ylim=(0, None))
ax.legend(loc="upper right")
fig.tight_layout()
save_figure(fig, "06_jitter")
plt.show()

# %% [markdown]
# ## Finger counts against the truth
#
# The count from the smoothed 3D keypoints (dots) and the true count while a pose is held (line;
# gaps are the blends between gestures). Where they differ, the 3D keypoints are wrong more often
# than the rule: on the exact 3D truth the classifier scores 1.0 (`tests/test_gestures.py`,
# `bench/bench_gestures.py`).

# %%
fig, ax = plt.subplots(figsize=(9, 3))
for track, color in ((0, "tab:blue"), (1, "tab:green")):
    rows = [r for r in scores[True].counts if r[1] == track]
    if not rows:
        continue
    frame, _, truth, predicted = map(np.array, zip(*[(f, t, c, np.nan if p is None else p) for f, t, c, p in rows]))
    line = np.full(len(clip), np.nan)
    line[frame] = truth
    ax.plot(line, color=color, lw=2, alpha=0.5, label=f"hand {track}: truth")
    ax.plot(frame, predicted + 0.08 * (track - 0.5), "o", ms=3, color=color, label=f"hand {track}: counted")
ax.set(xlabel="frame", ylabel="extended fingers", yticks=range(6), ylim=(-0.5, 5.5))
ax.legend(loc="lower right", ncol=2, fontsize=8)
fig.tight_layout()
save_figure(fig, "06_finger_counts")
plt.show()
wrong = [(f, t, p) for f, _, t, p in scores[True].gestures if t != p]
print(f"gestures named: {', '.join(sorted(set(GESTURE_LABELS.values())))}")
print(f"misnamed frames: {len(wrong)} of {len(scores[True].gestures)}", *sorted({(t, p) for _, t, p in wrong}))
print(f"notebook ran in {time.perf_counter() - START:.0f} s")

# %% [markdown]
# ## In class: `handpose live`
#
# ```bash
# handpose live                         # webcam 0 in a window
# handpose live --camera 1 --max-hands 1   # another camera, one hand (faster)
# handpose live --video clip.mp4        # a filmed clip instead of the webcam
# handpose live --meshes                # start with the hand mesh drawn
# handpose video clip.mp4 --out out/    # annotate a file: out/clip_annotated.mp4 + clip_hands.jsonl
# ```
#
# Keys, with the window focused: **m** meshes on/off, **k** skeleton on/off, **s** smoothing
# on/off (show the class the jitter), **p** save a snapshot PNG, **q** or Esc to quit. The frame
# rate is in the top-left corner.
#
# Tips: light the hands from the front and keep them 40-80 cm from the camera against a plain
# background; one hand (`--max-hands 1`) is faster than two. The mesh overlay fits the hand model
# in every frame and is much slower than the skeleton (see `bench/bench_video.py`). On a machine
# without a display (SSH, a container) `handpose live` says so and writes the annotated frames to
# `--out` (default `handpose_live.mp4`) instead; play that file on the projector.
