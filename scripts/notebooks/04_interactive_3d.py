# %% [markdown]
# # 4. Interactive 3D
#
# Drag to rotate, scroll to zoom, hover for joint names. Every figure here works in the exported
# HTML without a kernel: menus and sliders switch between precomputed views. The last section has
# live widgets for JupyterLab (pick a photo, drop your own, pose the hand model with sliders).
#
# 1. the estimated hands of each photo in 3D: fitted meshes and 3D keypoints in the camera frame;
# 2. the hand models of the slides: skeleton, sphere-mesh and triangle mesh of one pose;
# 3. the MANO-style model $M(\beta, \theta)$, explained on the open hand, with pose and shape sliders;
# 4. the slides' training losses evaluated on the real predictions.

# %%
import numpy as np

from handpose import io, pipeline
from handpose.demo_data import gesture_pose
from handpose.groundtruth import known_intrinsics
from handpose.handmodel import PROPORTION_LABELS, installed_kind, load_hand_model, pose_model, skinning_weights
from handpose.losses import prediction_losses
from handpose.notebook import find_repo_root, max_images
from handpose.plot3d import (MODEL_VIEW, colored_mesh_trace, hand_models_figure, mesh_trace, scene_figure,
                             scene_traces, selector_figure, skeleton_traces, skinning_colors, slider_figure)

ROOT = find_repo_root()
captured, demo = (io.list_images(ROOT / "data" / name) for name in ("captured", "demo"))
paths, folder = (captured, ROOT / "data" / "captured") if captured else (demo, ROOT / "data" / "demo")
paths = paths[: max_images(len(paths))]
results = [r for r in pipeline.predict_folder(paths, progress=False) if r.error is None]
kind = installed_kind()
meshed = pipeline.mesh_images(results, kind, known_intrinsics(folder / "gt.json"))
print(f"input: {folder.relative_to(ROOT)}/, {len(meshed)} photos, {sum(len(m.hands) for m in meshed)} hands, "
      f"{kind} hand meshes")

# %% [markdown]
# ## The hands of each photo in 3D
#
# Choose a photo in the menu (top right). Each hand's fitted mesh is drawn see-through in the camera
# frame (millimetres; the view looks down the camera's axis, y pointing down as in the photo), with
# the estimator's own 3D keypoints placed on it. MediaPipe's 3D keypoints are root-relative: their
# position and scale in the camera frame come from the fit.

# %%
with_hands = [item for item in meshed if item.hands]
if with_hands:
    selector_figure([scene_traces(item) for item in with_hands], [item.name for item in with_hands],
                    title="Fitted meshes and 3D keypoints (mm): choose a photo").show()
else:
    print("no hands detected in these photos")

# %% [markdown]
# ## Hand models: skeleton, sphere-mesh, triangle mesh
#
# The slides describe three ways to represent the same hand, from the cheapest to the richest:
#
# * a **skeleton**: 21 joints linked by 20 bones (what the estimators output);
# * a **sphere-mesh**: spheres at the joints, wrapped by their convex hulls (here: cones along the
#   bones and one hull around the palm spheres); cheap to intersect and to render, used by real-time
#   trackers;
# * a **triangle mesh**: the skin surface, posed by the skeleton through skinning (MANO: 778
#   vertices; the open hand: 1,609).
#
# Below, the three of them for the first fitted hand.

# %%
if with_hands:
    fit = with_hands[0].fits[0]
    skeleton, vertices, faces, label = fit.keypoints[0], fit.vertices[0], fit.faces, with_hands[0].name
else:
    rest = pose_model(load_hand_model("open", "right"), pose=gesture_pose("relaxed"))
    skeleton, vertices, faces, label = rest.keypoints[0], rest.vertices[0], rest.faces, "open hand, relaxed"
camera = dict(up=dict(x=0, y=-1, z=0), eye=dict(x=0.5, y=-0.3, z=-1.9))  # the photo's camera, closer
hand_models_figure(skeleton, vertices, faces, title=f"One pose, three hand models ({label})", camera=camera).show()

# %% [markdown]
# ## The MANO-style model $M(\beta, \theta)$, on the open hand
#
# MANO writes a posed hand mesh as
#
# $$M(\beta, \theta) = W\big(T(\beta, \theta),\, J(\beta),\, \theta,\, \mathcal{W}\big), \qquad
#   T(\beta, \theta) = \bar T + B_S(\beta) + B_P(\theta)$$
#
# * $\bar T$: the **rest template**, a mesh in a canonical pose ($V \times 3$);
# * $B_S(\beta) = \sum_k \beta_k S_k$: **shape blend shapes**, linear in the shape coefficients $\beta$;
# * $B_P(\theta)$: pose-corrective blend shapes (MANO has them; the open hand has none, $B_P = 0$);
# * $J(\beta)$: the **joints** of the shaped hand (MANO regresses them from the shaped template; the
#   open hand moves its bone heads with the same shape coefficients);
# * $W$: **linear blend skinning**: each vertex follows a blend of its bones' rigid motions,
#   $v'_i = \sum_k \mathcal{W}_{ik}\, G_k(\theta, J)\, v_i$, with $G_k$ bone $k$'s transform from the
#   rest pose (the product of the rotations $\theta$ along the chain from the wrist) and the weights
#   $\mathcal{W}_{ik} \ge 0$ summing to 1 over the bones.
#
# The open hand is built the same way (rest template, shape space, skinning weights, 15 finger joints
# with 3 rotation angles each), so we can take it apart. First the rest template $\bar T$, each vertex
# coloured by its skinning weights (one colour per bone, blended where a vertex follows several bones),
# with the joints $J$ of the rest shape.

# %%
model = load_hand_model("open", "right")
rest = pose_model(model)
weights = skinning_weights(model)
template = colored_mesh_trace(rest.vertices[0], rest.faces, skinning_colors(weights), name="rest template T̄")
scene_figure([template, *skeleton_traces(rest.keypoints[0], name="keypoints")],
             title="Rest template T̄ coloured by skinning weights W, with the skeleton").update_layout(
    scene_camera=MODEL_VIEW).show()
print(f"rest template: {rest.vertices.shape[1]} vertices, {len(rest.faces)} triangles, "
      f"{weights.shape[1]} bones, pose: {model.num_pose} angles, shape: {model.num_shape} coefficients")

# %% [markdown]
# **Pose.** $\theta = t\, \theta_{fist}$ for $t$ from 0 (the rest pose) to 1 (a fist): the joints rotate
# about their flexion axes and skinning carries the skin along. Move the slider.

# %%
steps = np.linspace(0.0, 1.0, 6)
posed = pose_model(model, pose=steps[:, None] * gesture_pose("fist")[None])
slider_figure([[mesh_trace(v, posed.faces, name="M(0, θ)", opacity=0.55), *skeleton_traces(k, name="joints")]
               for v, k in zip(posed.vertices, posed.keypoints)],
              [f"{t:.1f}" for t in steps], title="Pose: θ = t · θ_fist", prefix="t = ", camera=MODEL_VIEW).show()

# %% [markdown]
# **Shape.** $\beta_0$ from $-2$ to $+2$ standard deviations in a relaxed pose: the first shape
# coefficient of the open hand is mostly overall size; the joints $J(\beta)$ move with the template.

# %%
betas = np.linspace(-2.0, 2.0, 5)
shapes = np.zeros((len(betas), model.num_shape))
shapes[:, 0] = betas
shaped = pose_model(model, pose=gesture_pose("relaxed"), shape=shapes)
slider_figure([[mesh_trace(v, shaped.faces, name="M(β, θ)", opacity=0.55), *skeleton_traces(k, name="joints")]
               for v, k in zip(shaped.vertices, shaped.keypoints)],
              [f"{b:+.0f}" for b in betas], title="Shape: β = (β₀, 0, …, 0)", prefix="β₀ = ", active=2,
             camera=MODEL_VIEW).show()

# %% [markdown]
# **Proportions.** anny's shape space is one family of hands: its first component (size) carries
# 99.8 % of the variation. Real hands differ in palm layout and finger lengths, and data sets and
# detectors do not agree on where the "wrist" or the "thumb CMC" is. So the open hand's last
# shape coefficients $\gamma$ are proportions: offsets of the wrist and of each finger base (5 mm per
# unit) and the length of each finger bone (6 % per unit); the skin follows its bones
# (`handpose.handmodel.proportion_directions`). The fit adds them, under a Gaussian prior, once the
# pose is roughly found; on MediaPipe's keypoints of real photos they bring the mean distance
# between the fitted mesh's keypoints and MediaPipe's from about 4.8 to 2.9 pixels. Below: a thumb
# base moved into the palm and a longer index finger, $\gamma$ from $-3$ to $+3$.

# %%
gammas = np.linspace(-3.0, 3.0, 5)
shapes = np.zeros((len(gammas), model.num_shape))
overall = model.num_shape - model.num_proportions
for name, direction in {"thumb base offset x": -1.0, "index bone 1 length": 1.0, "index bone 2 length": 1.0}.items():
    shapes[:, overall + PROPORTION_LABELS.index(name)] = direction * gammas
shaped = pose_model(model, pose=gesture_pose("relaxed"), shape=shapes)
slider_figure([[mesh_trace(v, shaped.faces, name="M(γ, θ)", opacity=0.55), *skeleton_traces(k, name="joints")]
               for v, k in zip(shaped.vertices, shaped.keypoints)],
              [f"{g:+.1f}" for g in gammas], title="Proportions: thumb base inwards, index longer",
              prefix="γ = ", active=2, camera=MODEL_VIEW).show()

# %% [markdown]
# ## The training losses on real predictions
#
# The slides' objectives (`handpose.losses`) evaluated on the predictions above, one row per hand:
#
# * **bone**: the bone-length loss of the two-hand network, $\sum_b (l_b / L - l^*_b / L^*)^2$: the
#   predicted 3D keypoints' bone lengths against the hand model's proportions, each relative to the
#   wrist-to-middle-MCP length $L$ (0 for a hand with exactly the model's proportions);
# * **3D L2**: $\frac{1}{21}\sum_j \lVert J_j - J^*_j \rVert^2$ between the fitted model's keypoints and the predicted 3D
#   keypoints placed on them (mm²);
# * **2D L1**: $\frac{1}{21}\sum_j \lVert \pi(K, J_j) - x_j \rVert_1$, the fitted keypoints projected against the 2D
#   keypoints (pixels);
# * **reg**: the pose and shape regulariser $\lVert\theta\rVert^2 + \lVert\beta\rVert^2$ of the fit;
# * **edge**: the mean change of the mesh's edge lengths from the unposed to the fitted mesh (mm), which
#   measures how much skinning stretches the skin.

# %%
models = {side: load_hand_model(kind, side) for side in ("right", "left")}
rows = [f"{'photo':<24}{'hand':<7}{'bone':>8}{'3D L2':>9}{'2D L1':>8}{'reg':>7}{'edge':>7}"]
for item in meshed:
    for hand, fit in zip(item.hands, item.fits):
        l = prediction_losses(hand, fit, item.K, models[hand.handedness])
        rows.append(f"{item.name:<24}{hand.handedness:<7}{l.bone_length:8.3f}{l.joint_l2_mm2:9.1f}"
                    f"{l.reprojection_l1_px:8.1f}{l.regulariser:7.2f}{l.edge_length_mm:7.2f}")
print("\n".join([rows[0], "-" * len(rows[0]), *rows[1:]]))

# %% [markdown]
# ## Live in JupyterLab: pick a photo, drop your own, pose the hand
#
# These widgets need a running kernel (they do nothing in the exported HTML). Pick a photo to see its
# panels and 3D view (this one uses the photos predicted by the notebook's **first cell**: run it
# first); drop a new photo to run the whole pipeline on it (MediaPipe, then the mesh fit, a few
# seconds); move the sliders to pose and shape the open hand (the view updates when you release a
# slider and keeps your rotation). The last two cells run on their own, even after a kernel restart.

# %%
# Needs the notebook's first cell (its predicted photos, `meshed`).
from IPython.display import display

from handpose.widgets import image_picker

picked = [item for item in meshed if item.hands]
if picked:
    display(image_picker(picked))
else:
    print("no hands detected in these photos")

# %%
from IPython.display import display

from handpose.handmodel import installed_kind
from handpose.widgets import upload_widget

display(upload_widget(kind=installed_kind()))

# %%
from IPython.display import display

from handpose.demo_data import gesture_pose
from handpose.handmodel import load_hand_model
from handpose.widgets import hand_model_widget

display(hand_model_widget(load_hand_model("open", "right"), gesture_pose("fist")))
