# %% [markdown]
# # 5. Failure analysis: what goes wrong, and how to tell without ground truth
#
# A hand pose estimator is only useful if we know when to distrust it. This notebook looks at the
# predictions on the image set from three angles:
#
# 1. **Per-hand errors** where ground truth exists (the demo set's `gt.json`, or your own clicks in
#    `data/captured/annotations.json`, see the last section), next to **label-free signals** that
#    can be computed on any photo: the detector score, the disagreement of test-time augmentations,
#    anatomical plausibility of the 3D keypoints and the consistency of the 2D and 3D outputs.
#    On images with ground truth we measure how well each signal *ranks* the true errors.
# 2. **A failure gallery** of the worst cases with their scenario tags (`metadata.csv`) and a
#    per-tag breakdown.
# 3. **Robustness sweeps**: the same photos rotated, shrunk, occluded, blurred, darkened,
#    compressed and turned grey, step by step.
#
# Every number and conclusion below is computed by `handpose.signals` / `handpose.sweeps`
# (unit-tested); the notebook only chooses the inputs and prints the results.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import HTML, display

from handpose import figures, io, signals, sweeps
from handpose.groundtruth import read_ground_truth
from handpose.handmodel import rest_bone_lengths
from handpose.metrics import evaluate_2d
from handpose.models import get_estimator
from handpose.models.mediapipe import MediaPipeOptions
from handpose.pipeline import predict_image
from handpose.notebook import find_repo_root, max_images, save_figure

plt.rcParams.update({"figure.dpi": 100, "axes.titlesize": 11, "font.size": 10})
ROOT = find_repo_root()
START = time.perf_counter()

# Your photos when there are any, else the rendered demo set.
captured = ROOT / "data" / "captured"
folder = captured if captured.is_dir() and io.list_images(captured) else ROOT / "data" / "demo"
gt_file = folder / ("annotations.json" if folder == captured else "gt.json")
meta_file = folder / "metadata.csv"
metadata = io.read_metadata_csv(meta_file) if meta_file.is_file() else {}

paths = io.list_images(folder)[: max_images(20)]
images = {p.name: io.load_image(p) for p in paths}
# Ground truth refers to the full-size photo; move it onto the photo as loaded (maybe downscaled).
truth = {name: gt.resized(images[name].shape[1], images[name].shape[0])
         for name, gt in (read_ground_truth(gt_file) if gt_file.is_file() else {}).items() if name in images}
print(f"{len(images)} photos from {folder.parent.name}/{folder.name}, ground truth for "
      f"{sum(name in truth for name in images)}, metadata for {sum(name in metadata for name in images)}")

# %% [markdown]
# ## Predictions and label-free signals
#
# The hands come from the full MediaPipe pipeline (rescue views, person crops, tiles). The
# test-time augmentations (mirror, turns of +-10 and +-20 degrees, zooms of 0.8 and 1.25) are run
# with MediaPipe's single view only: cheaper, and a hand that only the rescue stages found is then
# often lost under augmentation, which is itself a warning sign (`tta_missing`).
#
# | signal | meaning (larger = more likely wrong, except the score) |
# |---|---|
# | `score` | MediaPipe's handedness confidence |
# | `tta_spread` | RMS spread of each joint across the augmentations / box side, mean over joints |
# | `tta_missing` | fraction of augmentations that lost the hand |
# | `handedness_flips` | fraction of augmentations that changed the hand's side |
# | `bone_ratio_error` | mean \|log\| ratio of bone lengths to the open hand model's (after scale) |
# | `angle_violation` | degrees beyond joint limits (flexion, hyperextension, abduction), summed |
# | `implausibility` | fraction of the 34 anatomical checks that fail |
# | `reprojection` | residual of the least-squares scale+translation from 3D (x, y) to 2D / box side |

# %%
SINGLE_VIEW = MediaPipeOptions(rescue=False, use_pose=False, tile_grids=(), fine_tile_side=0, use_regions=False)


def predict(image):
    return predict_image(image, "mediapipe")


def predict_fast(image):
    return predict_image(image, "mediapipe", SINGLE_VIEW)


try:
    reference_mm = rest_bone_lengths("open")
    reference_note = "open hand model (rest pose)"
except FileNotFoundError:
    reference_mm, reference_note = None, "built-in table (open hand model not built: run `make setup`)"
print("reference bone lengths:", reference_note)

hands = {name: predict(image) for name, image in images.items()}
rows = []
for name, image in images.items():
    gt = truth.get(name)
    rows += signals.analyse_image(name, image, hands[name], predict_fast,
                                  None if gt is None else gt.keypoints_2d,
                                  None if gt is None else gt.visibility,
                                  None if gt is None else gt.handedness, reference_mm=reference_mm)
print(f"{sum(len(h) for h in hands.values())} hands predicted, {len(rows)} table rows "
      f"({time.perf_counter() - START:.0f} s so far)")

# %% [markdown]
# ### Which signal predicts the true error?
#
# Spearman's rank correlation between each signal and the true mean end-point error (in box sides)
# over the detected hands with ground truth. A positive rho means "the larger the signal, the larger
# the error" (the score is negated so that all signals read the same way); 1 would be a perfect
# ranking, 0 no information.

# %%
correlations = signals.signal_correlations(rows)
ranked = sorted(((rho, name) for name, rho in correlations.items() if np.isfinite(rho)), reverse=True)
n_scored = sum(1 for r in rows if r["detected"] and np.isfinite(r.get("error", np.nan)))
for rho, name in ranked:
    print(f"{name:18s} rho = {rho:+.2f}")
best_signal = ranked[0][1] if ranked else "tta_spread"
print(f"\n{n_scored} detected hands with ground truth; best signal: {best_signal}")

# %% [markdown]
# ### Per-hand table, sorted by predicted difficulty
#
# Sorted by the best signal above (by `tta_spread` when there is no ground truth to choose with),
# hardest first. `error` is the mean end-point error in units of the ground-truth box side, `pck`
# the fraction of joints within 0.2 box sides; missed ground-truth hands are listed last.

# %%
direction = -1.0 if signals.SIGNALS[best_signal] else 1.0  # the score: low = hard
detected = sorted((r for r in rows if r["detected"]),
                  key=lambda r: -np.nan_to_num(direction * r[best_signal], nan=-np.inf))
missed = [r for r in rows if not r["detected"]]
columns = ["image", "hand", "handedness", "box_px", *signals.SIGNALS]
if truth:
    columns += ["error", "pck", "handedness_ok"]
display(HTML(signals.html_table(detected + missed, columns)))

# %% [markdown]
# ## Failure gallery
#
# The worst hands by true error (missed hands first) when ground truth exists, else by the best
# label-free signal. Prediction in finger colours, ground truth in white; under each crop the
# photo's scenario tags from `metadata.csv` that differ from most photos' (what sets it apart).

# %%
TAG_COLUMNS = ("view", "gesture", "hands", "occlusion", "background", "lighting", "skin_tone")
captions = signals.distinctive_tags(metadata, TAG_COLUMNS)
gallery_key = "error" if truth else best_signal
gt_points = {name: truth[name].keypoints_2d for name in images if name in truth}
if rows:
    fig = figures.failure_gallery(images, hands, rows, gt_points, captions, n=6, key=gallery_key)
    save_figure(fig, "05_failure_gallery")
    plt.show()
worst = signals.worst_rows(rows, 6, gallery_key)

# %% [markdown]
# ## Per-scenario breakdown
#
# Mean PCK@0.2 (bars) and detection recall (dots) of the ground-truth hands per value of each
# metadata column (in brackets: the number of ground-truth hands); `hard` is the photographer's
# own guess (1 = expected to fail).

# %%
breakdown_columns = [c for c in ("view", "occlusion", "hands", "background", "lighting", "skin_tone", "hard")
                     if any(m.get(c) for m in metadata.values())]
if truth and metadata and breakdown_columns:
    fig = figures.plot_breakdown(rows, metadata, breakdown_columns, ncols=4)
    save_figure(fig, "05_breakdown")
    plt.show()
    tables = {c: signals.breakdown(rows, metadata, c) for c in breakdown_columns}
    hardest = min((t for c in tables.values() for t in c if t["n"] >= 2), key=lambda t: t["pck"], default=None)
else:
    tables, hardest = {}, None
    print("no breakdown: it needs ground truth and metadata.csv")

# %% [markdown]
# ## Robustness sweeps
#
# Each perturbation is applied to the photos with ground truth at increasing strength, ground truth
# moved with it where geometric; detection recall, PCK@0.2 and mean error against strength. For
# time, the sweeps use the single-view MediaPipe on 6 photos spread over the set.

# %%
annotated = [name for name in images if name in truth and len(truth[name].keypoints_2d)]
sweep_names = annotated[:: max(1, len(annotated) // 6)][:6]
sweep_images = [images[n] for n in sweep_names]
sweep_gt = [truth[n].keypoints_2d for n in sweep_names]
sweep_vis = [truth[n].visibility for n in sweep_names]
results = {}
if sweep_names:
    for kind in sweeps.KINDS:
        results[kind] = sweeps.robustness_sweep(sweep_images, sweep_gt, predict_fast, kind, gt_visible=sweep_vis,
                                                label="mediapipe")
    fig = figures.plot_sweep_overview(list(results.values()))
    save_figure(fig, "05_sweeps")
    plt.show()
    print(f"swept {len(sweep_names)} photos ({time.perf_counter() - START:.0f} s so far)")
else:
    print("no sweeps: no photo has ground truth")

# %% [markdown]
# The hand-size sweep in detail, with the mean error of the hands that were found:

# %%
if "scale" in results:
    fig = figures.plot_sweep(results["scale"])
    save_figure(fig, "05_sweep_scale")
    plt.show()

# %% [markdown]
# ## The two-hand network (ICCV 2021) side by side
#
# With its checkpoint in `weights/` (see `weights/README.md`), the same benchmark and robustness
# curves for both models; without it, one line says which file is missing.

# %%
from handpose.models.iccv21 import ICCV21Options

DEVICE = "auto"  # where the ICCV21 network runs: "auto" (CUDA when available), "cpu" or "cuda"
try:
    iccv21 = get_estimator("iccv21", ICCV21Options(device=DEVICE))
    iccv_note = None
except FileNotFoundError as error:
    iccv21, iccv_note = None, str(error)
comparison = {}
if iccv21 is not None and truth:
    scored_names = [name for name in images if name in truth]
    iccv_hands = {name: iccv21.predict(images[name]) for name in scored_names}
    for label, predicted in (("mediapipe", hands), ("iccv21", iccv_hands)):
        comparison[label] = evaluate_2d([predicted[n] for n in scored_names],
                                        [truth[n].keypoints_2d for n in scored_names],
                                        visible=[truth[n].visibility for n in scored_names],
                                        gt_handedness=[truth[n].handedness for n in scored_names])
    for label, e in comparison.items():
        print(f"{label:10s} recall {e.recall:.0%}  precision {e.precision:.0%}  PCK@0.2 {e.pck:.0%}  "
              f"error/box {e.mean_error:.3f}  handedness {e.handedness_accuracy:.0%}")
    iccv_sweeps = [sweeps.robustness_sweep(sweep_images, sweep_gt, iccv21.predict, kind, gt_visible=sweep_vis,
                                           label="iccv21")
                   for kind in ("rotation", "scale", "occlusion") if kind in results]
    fig = figures.plot_sweep_overview([results[r.kind] for r in iccv_sweeps] + iccv_sweeps, ncols=3)
    save_figure(fig, "05_sweeps_both_models")
    plt.show()
else:
    print(f"ICCV21 model not run: {iccv_note or 'no ground truth to compare on'}")

# %% [markdown]
# ## Conclusions
#
# Computed from the numbers above.

# %%
lines = []
scored = [r for r in rows if r["detected"] and np.isfinite(r.get("error", np.nan))]
gt_rows = [r for r in rows if r.get("gt", -1) >= 0]
if gt_rows:
    recall = np.mean([r["detected"] for r in gt_rows])
    mean_pck = np.mean([r["pck"] for r in gt_rows])
    lines.append(f"- On {len(gt_rows)} ground-truth hands MediaPipe found {recall:.0%} and put "
                 f"{mean_pck:.0%} of the joints within 0.2 box sides (PCK@0.2, missed hands count 0).")
if ranked and n_scored >= 5:
    rho, name = ranked[0]
    weakest = ranked[-1]
    lines.append(f"- The best label-free predictor of the true error is `{name}` (Spearman rho {rho:+.2f} over "
                 f"{n_scored} hands); the weakest is `{weakest[1]}` ({weakest[0]:+.2f}). "
                 f"The detector score's rho is {correlations['score']:+.2f}.")
if worst:
    described = [r["image"] + (f" ({captions[r['image']]})" if captions.get(r["image"]) else "") for r in worst[:3]]
    lines.append(f"- The worst cases (tags that set them apart in brackets): {'; '.join(described)}.")
if hardest is not None:
    lines.append(f"- Hardest scenario (at least 2 GT hands): {hardest['column']} = {hardest['value']} "
                 f"(PCK {hardest['pck']:.0%}, recall {hardest['recall']:.0%}, n = {hardest['n']}).")
for result in results.values():
    lines.append(f"- {result.summary()}.")
if len(comparison) == 2:
    a, b = comparison["mediapipe"], comparison["iccv21"]
    lines.append(f"- ICCV21 vs MediaPipe on the same photos: PCK@0.2 {b.pck:.0%} vs {a.pck:.0%}, "
                 f"recall {b.recall:.0%} vs {a.recall:.0%}.")
lines.append(f"- This notebook ran in {time.perf_counter() - START:.0f} s.")
print("\n".join(lines) if lines else "nothing to conclude: no predictions")

# %% [markdown]
# ## Label your own photos
#
# Ground truth for your photos makes every number above real for them. Put your photos in
# `data/captured/`, then, in JupyterLab, set `ANNOTATE = True` and run the cell below (it needs no
# other cell). Click the 21 joints of each hand in the order shown (wrist, then each finger from its
# base to its tip, thumb first), press **skip** for a joint you cannot see and **next photo** when
# done; a hand left half-done is kept and resumes where you stopped. Clicks are saved to
# `data/captured/annotations.json` in the ground-truth format, which this notebook then reads.
# With no photo there yet, the cell says so and offers a demo photo to try the tool on (its clicks go
# to a temporary file).

# %%
ANNOTATE = False
if ANNOTATE:
    from IPython.display import display

    from handpose.annotate import annotation_tool
    from handpose.io import list_images
    from handpose.notebook import find_repo_root

    data = find_repo_root() / "data"
    display(annotation_tool(data / "captured", demo=list_images(data / "demo")[0]))
