# %% [markdown]
# # 1. Keypoints and heatmaps
#
# A hand pose estimator answers one question about a photo: *where is each part of each hand?*
# The answer comes in three forms, from the cheapest to the richest:
#
# | form | what it is | shape per hand |
# |---|---|---|
# | 2D keypoints | pixel position $(u, v)$ of 21 landmarks in the photo | $21 \times 2$ |
# | 3D keypoints | position $(X, Y, Z)$ in millimetres, relative to the wrist or in the camera frame | $21 \times 3$ |
# | mesh | the hand's surface: a triangle mesh posed by the skeleton (MANO: 778 vertices) | $V \times 3$ + faces |
#
# This notebook looks at the 2D keypoints and at the way most networks predict them: one
# **heatmap** per keypoint. Every function used here lives in `handpose` and is unit-tested there;
# the notebook holds the narrative and the calls.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

from handpose import camera, figures, heatmap, io, keypoints, losses, viz
from handpose.groundtruth import read_ground_truth
from handpose.plot3d import keypoints_figure
from handpose.notebook import find_repo_root, max_images, save_figure
from handpose.sample import hand_in_front_of_camera

plt.rcParams.update({"figure.dpi": 100, "axes.titlesize": 11, "font.size": 10})
ROOT = find_repo_root()
rng = np.random.default_rng(0)

# %% [markdown]
# ## The 21 keypoints
#
# The course order (also MediaPipe's and the ground truth's) starts at the wrist and walks each
# finger from its base to its tip. Each keypoint has one parent; the 20 (parent, child) pairs are the
# bones of the skeleton.

# %%
for finger, chain in keypoints.FINGERS.items():
    print(f"{finger:>7}: " + "  ".join(f"{i:2d} {keypoints.NAMES[i]}" for i in chain))
print(f"  wrist:  0 {keypoints.NAMES[0]}   bones: {len(keypoints.BONES)}")

# %% [markdown]
# ## The keypoints on an image
#
# The demo set in `data/demo/` holds rendered photos with exact ground truth (`gt.json`). When it is
# there we draw the first annotated hand; otherwise the notebook falls back to the canonical 3D hand
# of `handpose.sample` projected by a phone-like camera onto a blank 640 x 480 canvas.

# %%
gt_path = ROOT / "data" / "demo" / "gt.json"
truth = read_ground_truth(gt_path) if gt_path.is_file() else {}
annotated = [(name, gt) for name, gt in truth.items() if len(gt.keypoints_2d)]
if annotated:
    name, gt = annotated[0]
    image = io.load_image(gt_path.parent / name, downscale_above=None)  # full size: GT is in its pixels
    points_2d = gt.keypoints_2d[0]
    source = f"data/demo/{name}"
else:
    K = camera.intrinsics(f=560.0, cx=320.0, cy=240.0)
    points_2d = camera.project(hand_in_front_of_camera(350.0), K)
    image = np.full((480, 640, 3), 235, dtype=np.uint8)
    source = "canonical hand projected on a blank canvas (no data/demo/gt.json)"
print(source, image.shape)

# %%
fig, (ax, names_ax) = plt.subplots(1, 2, figsize=(10, 6), gridspec_kw={"width_ratios": [3, 1]})
ax.imshow(viz.draw_keypoints(image, points_2d))
box_min, box_max = np.nanmin(points_2d, axis=0), np.nanmax(points_2d, axis=0)
pad = 0.25 * (box_max - box_min).max()
ax.set_xlim(box_min[0] - pad, box_max[0] + pad)
ax.set_ylim(box_max[1] + pad, box_min[1] - pad)
colors = np.array(keypoints.KEYPOINT_COLORS) / 255
for i, (u, v) in enumerate(points_2d):
    if np.isfinite(u):
        ax.annotate(str(i), (u, v), xytext=(7, 4), textcoords="offset points", fontsize=8, weight="bold",
                    color=colors[i] * 0.6, bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.7))
ax.set_title(source, fontsize=9)
ax.axis("off")
names_ax.axis("off")
for i, name in enumerate(keypoints.NAMES):
    names_ax.text(0.0, 1 - i / 20.5, f"{i:2d}  {name}", transform=names_ax.transAxes, family="monospace",
                  fontsize=9, color=colors[i] * 0.7, va="top")
fig.suptitle("The 21 hand keypoints in the course order")
save_figure(fig, "01_keypoints_named")
plt.show()

# %% [markdown]
# When the demo set is present, here are the first images of it with their ground-truth skeletons
# (at most `HANDPOSE_MAX_IMAGES` of them; `make test` sets it to 3).

# %%
if annotated:
    shown = annotated[: min(8, max_images(8))]
    drawn = []
    for n, g in shown:
        img = io.load_image(gt_path.parent / n, downscale_above=None)
        for hand_2d in g.keypoints_2d:
            img = viz.draw_keypoints(img, hand_2d)
        drawn.append(img)
    fig = figures.image_grid(drawn, [n for n, _ in shown], ncols=4)
    save_figure(fig, "01_demo_ground_truth")
    plt.show()
else:
    print("no demo set: data/demo/gt.json is missing")

# %% [markdown]
# ## Heatmaps: the network's output
#
# Regressing 21 coordinates directly from pixels is hard to learn. Most 2D estimators (and the 2D
# stage of the two-hand network) instead output one image per keypoint, a **heatmap** $H_j$ whose
# value at a pixel says how likely keypoint $j$ is there. Training targets are Gaussians centred on
# the ground-truth keypoint $p_j$:
#
# $$ H^*_j(\mathbf{x}) = \exp\!\left(-\frac{\lVert \mathbf{x} - p_j \rVert^2}{2\sigma^2}\right),
# \qquad \mathbf{x} \in \{0, \dots, W-1\} \times \{0, \dots, H-1\}. $$
#
# Heatmaps are coarser than the input (here 1/4 of the image, as in the usual 256 -> 64 networks),
# so $p_j$ is divided by the stride before the Gaussian is drawn.

# %%
stride, sigma = 4, 2.0
grid_h, grid_w = image.shape[0] // stride, image.shape[1] // stride
valid = np.all(np.isfinite(points_2d), axis=1)
targets = heatmap.gaussian_heatmaps(points_2d[valid] / stride, grid_h, grid_w, sigma)  # (J, h, w)
print("targets:", targets.shape, "max", targets.max().round(3))

# %%
names = [keypoints.NAMES[i] for i in np.flatnonzero(valid)]
show = [0, 4, 8, 12]  # wrist and three tips (indices among the valid keypoints)
fig, axes = plt.subplots(1, len(show) + 1, figsize=(14, 3.2))
extent = (-0.5 * stride, image.shape[1] - 0.5 * stride, image.shape[0] - 0.5 * stride, -0.5 * stride)
for ax, j in zip(axes, show):
    ax.imshow(targets[j], cmap="magma", vmin=0, vmax=1, extent=extent)
    ax.set_title(f"$H^*$ of {names[j]}")
axes[-1].imshow(image)
axes[-1].imshow(targets.max(axis=0), cmap="magma", alpha=0.6, vmin=0, vmax=1, extent=extent)
axes[-1].set_title("max over the 21 heatmaps")
for ax in axes:
    ax.set_xlim(box_min[0] - pad, box_max[0] + pad)
    ax.set_ylim(box_max[1] + pad, box_min[1] - pad)
    ax.axis("off")
fig.suptitle(f"Gaussian targets, heatmap stride {stride}, sigma = {sigma} heatmap pixels", y=1.02)
save_figure(fig, "01_heatmap_targets")
plt.show()

# %% [markdown]
# ## The L2 heatmap loss
#
# The network is trained by the pixel-wise squared error between its heatmaps $H_j$ and the
# targets, averaged over the pixels and the $J = 21$ keypoints (`handpose.losses.heatmap_l2`):
#
# $$ \mathcal{L}_{\text{heatmap}} = \frac{1}{J} \sum_{j=1}^{J} \frac{1}{HW} \sum_{\mathbf{x}} \left(H_j(\mathbf{x}) - H^*_j(\mathbf{x})\right)^2. $$
#
# For a predicted Gaussian of the same width, displaced by $d$ pixels from the target, the sum over
# pixels has a closed form in the continuous limit (each Gaussian squared integrates to
# $\pi\sigma^2$, their product to $\pi\sigma^2 e^{-d^2/4\sigma^2}$):
#
# $$ \sum_{\mathbf x} \left(H(\mathbf x) - H^*(\mathbf x)\right)^2 \approx 2\pi\sigma^2 \left(1 - e^{-d^2 / 4\sigma^2}\right). $$
#
# It grows like $d^2$ near the target and **saturates** beyond a few $\sigma$: a prediction that is
# far off gets almost no gradient. This is why $\sigma$ is a trade-off between precision (small
# $\sigma$) and a wide basin of attraction (large $\sigma$). The loss measured on a 64 x 64 grid
# agrees with the closed form:

# %%
centre = np.array([[32.0, 32.0]])
shifts = np.linspace(0, 12, 61)
fig, ax = plt.subplots(figsize=(7, 4))
for s in (1.0, 2.0, 3.0):
    target = torch.from_numpy(heatmap.gaussian_heatmaps(centre, 64, 64, s))[None]  # (1, 1, 64, 64)
    measured = [
        float(losses.heatmap_l2(torch.from_numpy(heatmap.gaussian_heatmaps(centre + [d, 0.0], 64, 64, s))[None], target))
        for d in shifts
    ]
    closed = 2 * np.pi * s**2 * (1 - np.exp(-(shifts**2) / (4 * s**2))) / 64**2
    ax.plot(shifts, 1e3 * np.array(measured), "o", ms=3, label=f"heatmap_l2, sigma = {s:g}")
    ax.plot(shifts, 1e3 * closed, "k-", lw=0.8)
ax.set_xlabel("displacement d of the predicted keypoint (heatmap pixels)")
ax.set_ylabel("L2 heatmap loss (x 1e-3)")
ax.set_title("L2 heatmap loss vs displacement, 64 x 64 grid (black: closed form)")
ax.legend()
ax.grid(alpha=0.3)
save_figure(fig, "01_heatmap_loss")
plt.show()

# %% [markdown]
# ## From heatmaps back to coordinates: argmax vs soft-argmax
#
# At test time each heatmap is decoded into a position:
#
# * **argmax**: the pixel with the largest value. Simple and robust, but quantised to the heatmap
#   grid: for a keypoint uniformly placed inside a pixel the mean error is
#   $\frac{\sqrt 2 + \ln(1 + \sqrt 2)}{6} \approx 0.383$ heatmap pixels, i.e. about 1.5 image
#   pixels at stride 4, and it is not differentiable.
# * **soft-argmax**: the expected position under the softmax of the heatmap,
#   $\hat p = \sum_{\mathbf x} \mathbf{x}\, \frac{e^{\beta H(\mathbf x)}}{\sum_{\mathbf x'} e^{\beta H(\mathbf x')}}$.
#   Sub-pixel and differentiable (so a network can be trained end to end on coordinates), but the
#   background weights pull the estimate towards the grid centre when $\beta$ is small, and a large
#   $\beta$ turns it back into an argmax. On a clean Gaussian, $\beta H = \log H^*$ recovers the
#   centre exactly.
#
# We measure both on 500 random sub-pixel keypoints, on clean heatmaps and with additive noise
# (standard deviation 0.05, as a stand-in for an imperfect network).

# %%
true = rng.uniform(16, 48, size=(500, 1, 2))
clean = heatmap.gaussian_heatmaps(true, 64, 64, 2.0)
noisy = clean + rng.normal(0.0, 0.05, clean.shape)


def error(decoded):
    return np.linalg.norm(decoded[..., :2] - true, axis=-1).ravel()


argmax_clean, argmax_noisy = error(heatmap.argmax_2d(clean)), error(heatmap.argmax_2d(noisy))
exact = error(heatmap.soft_argmax_2d(np.log(clean)))
betas = np.geomspace(2, 300, 16)
soft_clean = [error(heatmap.soft_argmax_2d(clean, beta=b)).mean() for b in betas]
soft_noisy = [error(heatmap.soft_argmax_2d(noisy, beta=b)).mean() for b in betas]
print(f"argmax: clean {argmax_clean.mean():.3f} px (theory 0.383), noisy {argmax_noisy.mean():.3f} px")
print(f"soft-argmax of log H*: {exact.mean():.1e} px")
best = int(np.argmin(soft_noisy))
print(f"soft-argmax on noisy heatmaps: best beta = {betas[best]:.0f}, {soft_noisy[best]:.3f} px")

# %%
sweep = np.stack([32 + np.linspace(0, 1, 101), np.full(101, 32.3)], axis=-1)[:, None]  # (101, 1, 2)
sweep_maps = heatmap.gaussian_heatmaps(sweep, 64, 64, 2.0)
fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
ax = axes[0]
ax.plot(sweep[:, 0, 0] - 32, heatmap.argmax_2d(sweep_maps)[:, 0, 0] - sweep[:, 0, 0], label="argmax")
ax.plot(sweep[:, 0, 0] - 32, heatmap.soft_argmax_2d(sweep_maps, beta=20)[:, 0, 0] - sweep[:, 0, 0],
        label="soft-argmax, beta = 20")
ax.plot(sweep[:, 0, 0] - 32, heatmap.soft_argmax_2d(np.log(sweep_maps))[:, 0, 0] - sweep[:, 0, 0],
        label="soft-argmax of log H* (exact)")
ax.set_xlabel("sub-pixel position of the keypoint, x - 32 (heatmap pixels)")
ax.set_ylabel("x error (heatmap pixels)")
ax.set_title("Decoding error across one pixel (clean heatmap)")
ax.legend()
ax.grid(alpha=0.3)
ax = axes[1]
ax.loglog(betas, soft_clean, "o-", ms=3, label="soft-argmax, clean")
ax.loglog(betas, soft_noisy, "o-", ms=3, label="soft-argmax, noisy")
ax.axhline(argmax_clean.mean(), color="C0", ls="--", label="argmax, clean")
ax.axhline(argmax_noisy.mean(), color="C1", ls="--", label="argmax, noisy")
ax.set_xlabel("softmax inverse temperature beta")
ax.set_ylabel("mean error (heatmap pixels)")
ax.set_title(f"Mean error over {len(true)} random keypoints, sigma = 2")
ax.legend()
ax.grid(alpha=0.3, which="both")
save_figure(fig, "01_argmax_vs_soft_argmax")
plt.show()

# %% [markdown]
# The argmax error is the sawtooth of the grid: zero on pixel centres, up to half a pixel in
# between, 0.38 px on average as predicted. A well-tempered soft-argmax removes most of it and
# averages noise out, but a too small $\beta$ is biased (the background mass drags the estimate to
# the middle of the heatmap) and a too large one is an argmax again.
#
# ## 2.5D heatmaps: from 2D to 3D
#
# A 2D heatmap cannot say how far a joint is. The 2.5D representation used by two-hand networks
# (InterHand2.6M's InterNet, and the 2D-to-3D stage of the two-hand network of the course) adds a
# **relative depth** per joint: each joint $j$ is predicted as $(u_j, v_j, Z_j - Z_{\text{root}})$,
# either as a volumetric heatmap over $(u, v, \text{depth bin})$ or as a 2D heatmap plus a depth
# value read at its peak. Relative depth is learnable from appearance; the absolute depth of the
# root is not (a large hand far away looks like a small hand close by). Given the root depth, each
# joint is lifted by the inverse of the pinhole projection:
#
# $$ \mathbf{X}_j = Z_j\, K^{-1} (u_j, v_j, 1)^\top, \qquad Z_j = Z_{\text{root}} + \Delta Z_j. $$
#
# The missing root depth is fixed by a known size: choose $Z_{\text{root}}$ so that one bone (here
# the palm, wrist to middle MCP, 90 mm on the canonical hand) has its real length.

# %%
K = camera.intrinsics(f=560.0, cx=320.0, cy=240.0)
hand = hand_in_front_of_camera(450.0)  # (21, 3) mm, camera frame
uv = camera.project(hand, K)  # the 2D part
relative_depth = hand[:, 2] - hand[0, 2]  # the ".5": depth relative to the wrist


def lift(root_depth):
    return camera.unproject(uv, root_depth + relative_depth, K)  # (21, 3) mm


palm = keypoints.INDEX["MIDDLE_MCP"]
true_palm = np.linalg.norm(hand[palm] - hand[0])
candidates = np.linspace(200, 900, 141)
palm_length = np.array([np.linalg.norm(lift(z)[palm] - lift(z)[0]) for z in candidates])
root = np.interp(true_palm, palm_length, candidates)  # palm length grows monotonically with depth
print(f"palm length {true_palm:.1f} mm -> root depth {root:.1f} mm (true {hand[0, 2]:.1f} mm)")
print(f"max 3D error after lifting: {np.abs(lift(root) - hand).max():.2f} mm")

# %%
fig, ax = plt.subplots(figsize=(6.5, 3.8))
ax.plot(candidates, palm_length)
ax.axhline(true_palm, color="k", ls="--", lw=0.8)
ax.axvline(root, color="C3", lw=0.8)
ax.set_xlabel("assumed root (wrist) depth (mm)")
ax.set_ylabel("palm length of the lifted hand (mm)")
ax.set_title("The scale-depth ambiguity and its fix by a known bone length")
ax.grid(alpha=0.3)
save_figure(fig, "01_root_depth_from_bone_length")
plt.show()

keypoints_figure(
    np.stack([hand, lift(0.6 * hand[0, 2]), lift(1.5 * hand[0, 2])]),
    names=["true depth", "root 0.6x too close", "root 1.5x too far"],
    title="Same 2.5D prediction lifted with three root depths (same image, different hand sizes)",
).show()
