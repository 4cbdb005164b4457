# %% [markdown]
# # 2. The pinhole camera: from 3D keypoints to pixels
#
# A 3D hand estimate only means something in the photo once it is projected back into it. This
# notebook builds the projection step by step, each step as an equation and as code on the *same*
# 3D hand: the canonical right hand of `handpose.sample` (21 keypoints in millimetres, wrist at the
# origin). Then it compares the full perspective model with the weak-perspective approximation that
# many networks use, and solves the least-squares registration of 3D joints onto 2D detections from
# the slides.
#
# Conventions (as everywhere in `handpose`): camera frame with $x$ right, $y$ down, $z$ forward
# (away from the camera); pixels $(u, v)$ with $u$ right, $v$ down, origin in the top-left corner.

# %%
import json

import matplotlib.pyplot as plt
import numpy as np
from scipy.spatial.transform import Rotation

from handpose import alignment, camera, heatmap, keypoints, viz
from handpose.plot3d import keypoints_figure
from handpose.notebook import find_repo_root, max_images, save_figure
from handpose.sample import canonical_hand_keypoints

plt.rcParams.update({"figure.dpi": 100, "axes.titlesize": 11, "font.size": 10})
ROOT = find_repo_root()
rng = np.random.default_rng(0)
hand = canonical_hand_keypoints()  # (21, 3) mm, wrist at the origin
keypoints_figure(hand, names=["canonical right hand"], title="The 3D hand used throughout (mm)").show()


def draw_2d(ax, uv, title, **style):
    """One hand's 2D skeleton on a matplotlib axis, image convention (v down)."""
    for (a, b), color in zip(keypoints.BONES, keypoints.BONE_COLORS):
        ax.plot(uv[[a, b], 0], uv[[a, b], 1], color=np.array(color) / 255, **style)
    ax.set_title(title)
    ax.set_aspect("equal")


# %% [markdown]
# ## Step 1: the pinhole with the principal point at the origin
#
# A point $(X, Y, Z)$ in the camera frame goes through the pinhole and hits the image plane at
# focal length $f$ (in pixels). By similar triangles:
#
# $$ x = f\,\frac{X}{Z}, \qquad y = f\,\frac{Y}{Z}. $$
#
# The image coordinates $(x, y)$ have their origin where the optical axis meets the image. We put
# the hand 500 mm in front of the camera ($Z = 500$ for the wrist) and use $f = 600$ px.

# %%
f = 600.0
X = hand + np.array([0.0, 80.0, 500.0])  # camera frame: wrist 500 mm away, hand centred vertically
xy = f * X[:, :2] / X[:, 2:]  # the equation, by hand
assert np.allclose(xy, camera.project(X, camera.intrinsics(f, 0.0, 0.0)))
print("wrist and middle tip (x, y):", xy[0].round(1), xy[12].round(1))

# %% [markdown]
# ## Step 2: the principal point $(u_0, v_0)$
#
# Pixel coordinates start at the top-left corner, so the principal point (the optical axis) is at
# $(u_0, v_0)$, near the image centre:
#
# $$ u = f\,\frac{X}{Z} + u_0, \qquad v = f\,\frac{Y}{Z} + v_0
# \qquad\Longleftrightarrow\qquad
# Z \begin{pmatrix} u \\ v \\ 1 \end{pmatrix} =
# \underbrace{\begin{pmatrix} f & 0 & u_0 \\ 0 & f & v_0 \\ 0 & 0 & 1 \end{pmatrix}}_{K}
# \begin{pmatrix} X \\ Y \\ Z \end{pmatrix}. $$
#
# $K$ is the **intrinsic matrix**. A 640 x 480 image has $(u_0, v_0) \approx (320, 240)$.

# %%
width, height = 640, 480
K = camera.intrinsics(f, cx=320.0, cy=240.0)
uv = camera.project(X, K)
assert np.allclose(uv, xy + [320.0, 240.0])
print("K =\n", K)

# %% [markdown]
# ## Step 3: rotation and translation, $\mathbf{X}_{\text{cam}} = R\,\mathbf{X} + \mathbf{t}$
#
# Hand models and networks give joints in the hand's own frame (wrist at the origin). The rigid
# motion $(R, \mathbf t)$ places them in the camera frame, and then $K$ projects:
#
# $$ Z \begin{pmatrix} u \\ v \\ 1 \end{pmatrix} = K \left(R \begin{pmatrix} X \\ Y \\ Z \end{pmatrix} + \mathbf{t}\right). $$
#
# Here the hand is turned 40 degrees about the vertical axis and tilted 25 degrees back.

# %%
R = Rotation.from_euler("yx", [40.0, -25.0], degrees=True).as_matrix()
t = np.array([0.0, 80.0, 500.0])
uv_rt = camera.project(hand, K, R, t)
assert np.allclose(uv_rt, camera.project(hand @ R.T + t, K))

fig, axes = plt.subplots(1, 3, figsize=(14, 4.6))
draw_2d(axes[0], xy, "1: principal point at the origin", lw=2.5)
axes[0].axhline(0, color="k", lw=0.5)
axes[0].axvline(0, color="k", lw=0.5)
axes[0].invert_yaxis()
for ax, points, title in ((axes[1], uv, "2: pixels, principal point (320, 240)"),
                          (axes[2], uv_rt, "3: with R (yaw 40, pitch -25) and t")):
    draw_2d(ax, points, title, lw=2.5)
    ax.plot(320, 240, "k+", ms=12)
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
for ax, (x_name, y_name) in zip(axes, (("x", "y"), ("u", "v"), ("u", "v"))):
    ax.set_xlabel(f"{x_name} (px)")
    ax.set_ylabel(f"{y_name} (px)")
    ax.grid(alpha=0.3)
fig.suptitle("The same 3D hand through the three steps of the pinhole model (f = 600 px)")
fig.tight_layout()
save_figure(fig, "02_pinhole_steps")
plt.show()

# %% [markdown]
# ## Homogeneous coordinates and the projection matrix $P = K\,[R \mid \mathbf t]$
#
# Appending a 1 to a point turns the rigid motion and the projection into one linear map. With
# $\tilde{\mathbf X} = (X, Y, Z, 1)^\top$:
#
# $$ \tilde{\mathbf x} = \begin{pmatrix} \tilde u \\ \tilde v \\ w \end{pmatrix} = P\,\tilde{\mathbf X},
# \qquad P = K \,[R \mid \mathbf t] \in \mathbb{R}^{3 \times 4},
# \qquad (u, v) = \left(\frac{\tilde u}{w}, \frac{\tilde v}{w}\right). $$
#
# The division by $w$ (the depth) is the only non-linear step. $P$ has 11 degrees of freedom (it is
# defined up to scale), and its null space is the camera centre $C = -R^\top \mathbf t$:
# $P\,(C, 1)^\top = 0$.

# %%
P = camera.projection_matrix(K, R, t)
uv_h = camera.from_homogeneous(camera.to_homogeneous(hand) @ P.T)
np.set_printoptions(suppress=True, precision=3)
print("P =\n", P)
print(f"max |P X~ - project(X, K, R, t)| = {np.abs(uv_h - uv_rt).max():.2e} px")
C = -R.T @ t
print("camera centre in the hand frame:", C.round(1), " P (C, 1) =", (P @ np.append(C, 1.0)).round(9))

# %% [markdown]
# ## Weak perspective, and when it breaks
#
# Many networks (including the two-hand network of the course) predict a **weak-perspective**
# camera: every joint is assumed to be at the depth $Z_r$ of the hand's centre, so projection
# becomes a scale and a shift of the root-relative joints $\mathbf J$:
#
# $$ \begin{pmatrix} u \\ v \end{pmatrix} \approx s \begin{pmatrix} J_x \\ J_y \end{pmatrix} + \mathbf{t}_{uv},
# \qquad s = \frac{f}{Z_r}, \qquad \mathbf{t}_{uv} = s \begin{pmatrix} T_x \\ T_y \end{pmatrix} + \begin{pmatrix} u_0 \\ v_0 \end{pmatrix}. $$
#
# For a joint at relative depth $J_z$ the true projection is $f (J_x + T_x) / (Z_r + J_z)$, so the
# error grows with the hand's depth extent relative to its distance, $J_z / Z_r$, and with the
# off-axis offset $T_x$. We measure it on the rotated hand from the camera's axis and from 25 degrees
# off-axis, for distances from 15 cm (egocentric, hand near the lens) to 2 m.

# %%
centred = hand @ R.T
centred -= 0.5 * (centred.min(axis=0) + centred.max(axis=0))  # root: the hand's box centre
distances = np.geomspace(150, 2000, 40)
results = {}
for label, angle in (("on the optical axis", 0.0), ("25 degrees off-axis", 25.0)):
    px, rel = [], []
    for d in distances:
        T = np.array([d * np.tan(np.radians(angle)), 0.0, d])
        exact = camera.project(centred + T, K)
        weak = camera.perspective_to_weak(T, f, 320.0, 240.0)
        approx = camera.weak_perspective(centred, weak.s, weak.t)
        error = np.linalg.norm(approx - exact, axis=-1).mean()
        px.append(error)
        rel.append(100 * error / np.ptp(exact, axis=0).max())
    results[label] = (np.array(px), np.array(rel))
depth_extent = np.ptp(centred[:, 2])
print(f"hand depth extent after rotation: {depth_extent:.0f} mm")
for label, (px, rel) in results.items():
    print(f"{label:>20}: {rel[np.argmin(abs(distances - 500))]:.1f} % of the hand size at 50 cm, "
          f"{rel[0]:.1f} % at 15 cm")

# %%
fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
for label, (px, rel) in results.items():
    axes[0].loglog(distances, px, label=label)
    axes[1].semilogx(distances, rel, label=label)
axes[1].semilogx(distances, 100 * 0.5 * depth_extent / distances, "k--", lw=0.8,
                 label="half depth extent / distance")
axes[0].set_ylabel("mean joint error (px, f = 600)")
axes[1].set_ylabel("mean joint error (% of hand size in the image)")
for ax in axes[:2]:
    ax.set_xticks([150, 300, 500, 1000, 2000], labels=["150", "300", "500", "1000", "2000"])
    ax.minorticks_off()
    ax.set_xlabel("distance of the hand from the camera (mm)")
    ax.axvspan(300, 600, color="0.9", zorder=0)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
axes[0].set_title("Weak-perspective error vs distance")
axes[1].set_title("Relative error (grey: arm's length selfies)")
near = np.array([0.0, 0.0, 150.0])
weak = camera.perspective_to_weak(near, f, 320.0, 240.0)
approx = camera.weak_perspective(centred, weak.s, weak.t)
draw_2d(axes[2], camera.project(centred + near, K), "Hand at 15 cm: perspective (colour), weak (dashed)", lw=2.5)
for a, b in keypoints.BONES:
    axes[2].plot(approx[[a, b], 0], approx[[a, b], 1], color="0.3", lw=1.2, ls="--")
axes[2].invert_yaxis()
axes[2].set_xlabel("u (px)")
axes[2].set_ylabel("v (px)")
fig.tight_layout()
save_figure(fig, "02_weak_vs_perspective")
plt.show()

# %% [markdown]
# On the optical axis, weak perspective is good at arm's length (about 1-2 % of the hand's size)
# and its error follows the ratio of the hand's depth extent to its distance: it breaks down close
# to the lens (egocentric views, a hand reaching towards the camera). Off-axis it is worse, and
# *at any distance*: to first order the error is $f\,T_x J_z / Z_r^2$ while the hand's image size
# is $f\,\text{size} / Z_r$, so their ratio $\tan\theta \cdot J_z / \text{size}$ depends on the
# viewing angle $\theta$, not on the distance. A hand near the border of a wide-angle photo is seen
# with a shear that no scale and shift can absorb.
#
# ## Least-squares registration of 3D joints onto 2D detections
#
# The two-hand network of the course predicts root-relative 3D joints $\mathbf J_j$ and, separately,
# 2D detections $(u_j, v_j)$ with confidences $c_j$ from heatmaps. To place the 3D hand in the image
# it solves for the weak-perspective camera that best maps the joints onto the detections:
#
# $$ (s^*, \mathbf T^*) = \arg\min_{s, \mathbf T} \sum_j c_j^2 \,\bigl\lVert s\,\mathbf J_{j,xy} + \mathbf T - (u_j, v_j) \bigr\rVert^2 . $$
#
# It is linear least squares in $(s, T_x, T_y)$. With the weighted centroids
# $\bar{\mathbf J}, \bar{\mathbf u}$ (weights $c_j^2$) and the centred points
# $\tilde{\mathbf J}_j, \tilde{\mathbf u}_j$, setting the gradient to zero gives
#
# $$ s^* = \frac{\sum_j c_j^2 \,\langle \tilde{\mathbf J}_j, \tilde{\mathbf u}_j \rangle}{\sum_j c_j^2 \,\lVert \tilde{\mathbf J}_j \rVert^2},
# \qquad \mathbf T^* = \bar{\mathbf u} - s^* \bar{\mathbf J}. $$
#
# The registered joints are drawn as a **union heatmap**
# $H(\mathbf x) = 1 - \prod_j \bigl(1 - h_j(\mathbf x)\bigr)$ of Gaussians $h_j$ at
# $s^* \mathbf J_{j,xy} + \mathbf T^*$ on the 64 x 64 output grid of a 256 x 256 input crop, which
# the network compares with its own 2D evidence. Below, the detections are the exact projection of
# the rotated hand (into a 256-pixel crop) plus 2 px of noise, and one joint (the pinky tip) is a
# wrong detection with a low confidence.

# %%
crop = 256
K_crop = camera.intrinsics(550.0, crop / 2, crop / 2)
joints = hand @ R.T  # root-relative 3D joints (mm) as a network would predict them
box_centre = 0.5 * (joints.min(axis=0) + joints.max(axis=0))
uv_true = camera.project(joints - box_centre * [1, 1, 0] + [0.0, 0.0, 500.0], K_crop)
detections = uv_true + rng.normal(0.0, 2.0, uv_true.shape)
confidence = rng.uniform(0.7, 1.0, len(detections))
pinky_tip = keypoints.INDEX["PINKY_TIP"]
detections[pinky_tip] += [-45.0, 50.0]
confidence[pinky_tip] = 0.15
xyc = np.concatenate([detections, confidence[:, None]], axis=1)[None]  # (1, 21, 3)
fit = alignment.fit_scale_translation(xyc, joints[None])
registered = fit.apply(joints[None])[0]
union = heatmap.register_heatmap(xyc, joints[None], origin_size=crop, output_size=64, sigma=heatmap.ICCV21_SIGMA)[0]
print(f"s = {fit.scale[0]:.3f} px/mm (f / Z = {550 / 500:.3f}), T = {fit.translation[0].round(1)} px, ok = {fit.ok[0]}")
residual = np.linalg.norm(registered - uv_true, axis=-1)
print(f"registered vs true projection: mean {residual.mean():.1f} px, max {residual.max():.1f} px")

# %%
canvas = viz.draw_keypoints(np.full((crop, crop, 3), 240, dtype=np.uint8), uv_true)
fig, axes = plt.subplots(1, 2, figsize=(12, 5.6))
axes[0].imshow(canvas)
axes[0].scatter(*detections.T, s=12 + 60 * confidence, facecolors="none", edgecolors="k", lw=1,
                label="detections (size: confidence)")
axes[0].scatter(*registered.T, s=14, c="C3", marker="x", label="registered 3D joints  s J + T")
axes[0].annotate("wrong detection\nc = 0.15", detections[pinky_tip], xytext=(-20, 40), textcoords="offset points",
                 ha="center", arrowprops=dict(arrowstyle="->"), fontsize=9)
axes[0].set_title("Detections and the least-squares registration")
axes[0].legend(loc="lower right", fontsize=8)
axes[1].imshow(canvas)
# Heatmap pixel (x, y) is crop pixel (4x, 4y) (no half-pixel offset, as in the network).
scale = crop / 64
axes[1].imshow(union, cmap="inferno", alpha=0.85 * np.clip(2 * union, 0, 1), vmin=0, vmax=1,
               extent=(-0.5 * scale, crop - 0.5 * scale, crop - 0.5 * scale, -0.5 * scale))
axes[1].set_title("Union heatmap H of the registered joints (64 x 64 grid)")
for ax in axes:
    ax.set_xlim(0, crop)
    ax.set_ylim(crop, 0)
    ax.axis("off")
fig.tight_layout()
save_figure(fig, "02_heatmap_registration")
plt.show()

# %% [markdown]
# The low weight of the wrong detection keeps it from pulling the fit; the remaining residual is the
# weak-perspective error of the tilted hand plus the detection noise.
#
# ## Check on the demo set's ground truth
#
# The demo images come with the camera matrix $K$ and the 3D joints in the camera frame, so
# projecting them must reproduce the annotated 2D keypoints (at most `HANDPOSE_MAX_IMAGES` images).

# %%
gt_path = ROOT / "data" / "demo" / "gt.json"
entries = json.loads(gt_path.read_text())["images"] if gt_path.is_file() else []
errors = []
for entry in entries[: max_images(len(entries))]:
    for hand_gt in entry["hands"]:
        if hand_gt.get("K") is None or hand_gt.get("keypoints_3d_cam_mm") is None:
            continue
        reprojected = camera.project(np.asarray(hand_gt["keypoints_3d_cam_mm"]), np.asarray(hand_gt["K"]))
        errors.append(np.abs(reprojected - np.asarray(hand_gt["keypoints_2d"])).max())
if errors:
    print(f"{len(errors)} hands: max reprojection error {max(errors):.4f} px")
else:
    print("no demo ground truth with K and 3D joints found (data/demo/gt.json)")
