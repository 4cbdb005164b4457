"""Tests of handpose.fitting on a small stand-in hand model (a 21-keypoint kinematic chain).

The stand-in implements the :class:`~handpose.handmodel.HandModel` interface only, so these tests
check the fitting itself; the last test fits the open hand's proportions. The open hand's accuracy
and speed are measured by bench/bench_fitting.py.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from handpose.camera import default_intrinsics, project
from handpose.fitting import (
    SOLVERS,
    FitResult,
    FitWeights,
    Objective,
    _initialise,
    fit_hand,
    fit_images,
    geman_mcclure,
    geman_mcclure_weight,
    prior_factor,
    rest_keypoints,
)
from handpose.handmodel import HandModel, HandModelOutput, axis_angle_to_matrix, rigid_transforms
from handpose.keypoints import FINGERS, PARENTS
from handpose.prediction import HandPrediction

# Rest keypoints of a right hand (mm): wrist at the origin, fingers along +y, palm facing +z,
# thumb towards +x.
_REST = np.array([
    [0, 0, 0],
    [22, 22, 4], [40, 42, 10], [52, 62, 14], [62, 80, 16],
    [24, 88, 0], [27, 128, 0], [29, 152, 0], [30, 172, 0],
    [4, 92, 0], [4, 136, 0], [4, 164, 0], [4, 186, 0],
    [-16, 88, 0], [-18, 128, 0], [-19, 154, 0], [-20, 174, 0],
    [-33, 80, 0], [-37, 110, 0], [-39, 130, 0], [-40, 148, 0],
], dtype=np.float64)
# Bones: 0 = wrist (root), then per finger its three joints (keypoints 1-3, 5-7, ...).
_BONE_KEYPOINT = [0] + [k for chain in FINGERS.values() for k in chain[:3]]
_BONE_PARENT = tuple(-1 if b == 0 else (0 if (b - 1) % 3 == 0 else b - 1) for b in range(16))
# Keypoint k moves with the bone of its parent keypoint (the wrist and MCPs with the root).
_KEYPOINT_BONE = [0] + [0 if PARENTS[k] == 0 else _BONE_KEYPOINT.index(PARENTS[k]) for k in range(1, 21)]


class ToyHand(HandModel):
    """Kinematic chain: 15 joints x (flexion about x, twist about y, abduction about z), one shape
    coefficient scaling the hand by ``exp(0.1 shape)``; vertices are the 21 keypoints."""

    kind = "toy"

    def __init__(self, side: str = "right") -> None:
        super().__init__()
        self.side = side
        self.num_pose = 45
        self.num_shape = 1
        rest = _REST * ([1, 1, 1] if side == "right" else [-1, 1, 1])
        self.register_buffer("rest", torch.tensor(rest, dtype=torch.float32))
        self.register_buffer("faces", torch.tensor([[0, 5, 9], [0, 9, 13], [0, 13, 17], [0, 1, 5]]))
        lower = torch.tensor([-0.2, -0.3, -0.35] * 15)
        upper = torch.tensor([1.6, 0.3, 0.35] * 15)
        self.register_buffer("lower", lower)
        self.register_buffer("upper", upper)

    def forward(self, pose=None, shape=None, global_orient=None, transl=None, with_vertices=True) -> HandModelOutput:
        pose, shape, global_orient, transl = self.batch_inputs(pose, shape, global_orient, transl)
        batch = pose.shape[0]
        rest = self.rest[None] * torch.exp(0.1 * shape)[:, :, None]  # (B, 21, 3)
        rotvecs = torch.cat([global_orient[:, None], pose.reshape(batch, 15, 3)], 1)  # (B, 16, 3)
        heads = rest[:, _BONE_KEYPOINT]
        transforms = rigid_transforms(axis_angle_to_matrix(rotvecs), heads, _BONE_PARENT)
        moving = transforms[:, _KEYPOINT_BONE]  # (B, 21, 4, 4)
        keypoints = (moving[..., :3, :3] @ rest[..., None])[..., 0] + moving[..., :3, 3] + transl[:, None]
        return HandModelOutput(vertices=keypoints if with_vertices else None, keypoints=keypoints,
                               joints=keypoints[:, _BONE_KEYPOINT])

    def pose_limits(self):
        return self.lower, self.upper

    def pose_prior(self, pose):
        return 0.01 * (self.check_pose(pose) ** 2).mean(-1)


K = default_intrinsics(640, 480)


def _compose(*rotvecs):
    from scipy.spatial.transform import Rotation

    r = Rotation.identity()
    for v in rotvecs:
        r = r * Rotation.from_rotvec(v)
    return r.as_rotvec()


@pytest.fixture(scope="module")
def toy() -> ToyHand:
    return ToyHand("right")


@pytest.fixture(scope="module")
def hands(toy):
    pose, kp3 = _random_hands(toy, 6)
    return pose, kp3, project(kp3, K)


def _random_hands(
    model: ToyHand, count: int, seed: int = 0, spread: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Poses inside the limits, the mean shape (so the hand's size, hence its depth, is known),
    palm roughly towards the camera, 350-600 mm away: ``pose (B, 45)`` (scaled by ``spread``
    towards the rest pose), camera-frame keypoints ``(B, 21, 3)``."""
    rng = np.random.default_rng(seed)
    lower, upper = (v.numpy() for v in model.pose_limits())
    pose = spread * (lower + (upper - lower) * rng.uniform(0.1, 0.9, (count, 45)))
    shape = np.zeros((count, 1))
    orient = np.stack([_compose(rng.normal(0, 0.35, 3), [0.0, np.pi, 0.0]) for _ in range(count)])
    transl = np.c_[rng.uniform(-60, 60, count), rng.uniform(-40, 40, count), rng.uniform(350, 600, count)]
    as_t = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    with torch.no_grad():
        out = model(pose=as_t(pose), shape=as_t(shape), global_orient=as_t(orient), transl=as_t(transl))
    return pose, out.keypoints.double().numpy()


def test_geman_mcclure_known_answers():
    sq = torch.tensor([0.0, 1.0, 1e8])
    np.testing.assert_allclose(geman_mcclure(sq, 10.0).numpy(), [0.0, 100 / 101, 100.0], rtol=1e-6)


def test_synthetic_recovery_2d_and_3d(toy, hands):
    pose, kp3, kp2 = hands
    root_relative = kp3 - kp3[:, :1]
    fit = fit_hand(toy, keypoints_2d=kp2, keypoints_3d=root_relative, K=K)
    assert fit.keypoints.shape == (6, 21, 3) and fit.vertices.shape == (6, 21, 3)
    assert fit.faces.shape == (4, 3) and fit.pose.shape == (6, 45) and fit.shape.shape == (6, 1)
    assert np.nanmean(fit.residual_2d_px) < 1.0
    assert np.nanmean(fit.residual_3d_mm) < 1.0
    # Camera frame: the generating keypoints, up to the depth (known only as well as the hand's
    # size: the shape prior, here exactly the mean shape, against a slightly unconverged fit).
    assert np.linalg.norm((fit.keypoints - fit.keypoints[:, :1]) - (kp3 - kp3[:, :1]), axis=-1).mean() < 2.0
    np.testing.assert_allclose(fit.keypoints[:, 0, 2], kp3[:, 0, 2], rtol=0.02)
    np.testing.assert_allclose(fit.scale, 1.0, atol=0.02)



def test_converged_flag(toy, hands):
    _, kp3, kp2 = hands
    kw = dict(keypoints_2d=kp2[:2], keypoints_3d=kp3[:2] - kp3[:2, :1], K=K)
    loose = fit_hand(toy, **kw, iterations=200, tolerance=0.5)
    assert loose.converged.all() and np.all(loose.iterations < 200)
    cut_short = fit_hand(toy, **kw, iterations=10, tolerance=0.0)
    assert not cut_short.converged.any() and np.all(cut_short.iterations == 10)
    adam = fit_hand(toy, **kw, iterations=10, tolerance=0.0, solver="adam")
    assert not adam.converged.any() and np.all(adam.iterations == 10)


@pytest.mark.parametrize("solver", SOLVERS)
def test_batch_equals_single_fits(toy, hands, solver):
    _, kp3, kp2 = hands
    batched = fit_hand(toy, keypoints_2d=kp2[:3], keypoints_3d=kp3[:3] - kp3[:3, :1], K=K, solver=solver)
    for b in range(3):
        single = fit_hand(toy, keypoints_2d=kp2[b], keypoints_3d=kp3[b] - kp3[b, :1], K=K, solver=solver)
        np.testing.assert_allclose(single.keypoints[0], batched.keypoints[b], atol=1e-3)
        assert single.iterations[0] == batched.iterations[b]


def test_per_hand_intrinsics(toy, hands):
    _, kp3, _ = hands
    Ks = np.stack([default_intrinsics(640, 480), default_intrinsics(1280, 960)])
    kp2 = np.stack([project(kp3[b], Ks[b]) for b in range(2)])
    fit = fit_hand(toy, keypoints_2d=kp2, keypoints_3d=kp3[:2] - kp3[:2, :1], K=Ks)
    assert np.nanmean(fit.residual_2d_px) < 1.5
    np.testing.assert_allclose(project(fit.keypoints, Ks), kp2, atol=6.0)


def test_2d_only_fit(toy):
    # From 2D alone each finger's bend towards or away from the camera is ambiguous: moderate poses.
    _, kp3 = _random_hands(toy, 4, seed=3, spread=0.4)
    kp2 = project(kp3, K)
    fit = fit_hand(toy, keypoints_2d=kp2, K=K)
    assert np.isnan(fit.residual_3d_mm).all()
    assert np.mean(fit.residual_2d_px) < 2.0
    np.testing.assert_allclose(project(fit.keypoints, K), kp2, atol=10.0)


def test_3d_only_fit_is_in_the_input_frame(toy, hands):
    _, kp3, _ = hands
    # Root-relative input in metres: the fit's scale absorbs the unit.
    target = (kp3 - kp3[:, :1]) / 1000.0
    fit = fit_hand(toy, keypoints_3d=target)
    assert np.isnan(fit.residual_2d_px).all()
    assert np.mean(fit.residual_3d_mm) < 2.0
    np.testing.assert_allclose(fit.scale, 1000.0, rtol=0.05)
    assert np.abs(fit.keypoints - target).max() < 0.01  # metres, like the input
    assert np.all(fit.transl == 0)


def test_joint_limits_are_respected(toy, hands):
    _, kp3, kp2 = hands
    # Bend the index finger backwards, beyond its flexion limit (-0.2 rad) for the target.
    bad_pose = np.zeros((1, 45))
    bad_pose[0, 9] = -1.2  # index MCP flexion
    orient = torch.tensor([[0.0, np.pi, 0.0]])
    with torch.no_grad():
        target = toy(pose=torch.tensor(bad_pose, dtype=torch.float32), global_orient=orient,
                     transl=torch.tensor([[0.0, 0.0, 450.0]])).keypoints.double().numpy()
    fit = fit_hand(toy, keypoints_2d=project(target, K), keypoints_3d=target - target[:, :1], K=K)
    lower, upper = (v.numpy() for v in toy.pose_limits())
    assert np.all(fit.pose >= lower - 0.06) and np.all(fit.pose <= upper + 0.06)  # soft penalty
    # Without the limit term, the same fit bends it back further.
    free = fit_hand(toy, keypoints_2d=project(target, K), keypoints_3d=target - target[:, :1], K=K,
                    weights=FitWeights(joint_limits=0.0))
    assert free.pose[0, 9] < fit.pose[0, 9] - 0.3


def test_zero_confidence_ignores_a_joint(toy, hands):
    _, kp3, kp2 = hands
    kp2_bad, kp3_bad = kp2[:2].copy(), kp3[:2] - kp3[:2, :1]
    kp2_bad[:, 8] = [[5000.0, -3000.0]] * 2  # index tip far away, or unknown
    kp3_bad[:, 8] = np.nan
    conf = np.ones((2, 21))
    conf[:, 8] = 0.0
    fit = fit_hand(toy, keypoints_2d=kp2_bad, keypoints_3d=kp3_bad, K=K, confidence=conf)
    clean = fit_hand(toy, keypoints_2d=kp2[:2], keypoints_3d=kp3[:2] - kp3[:2, :1], K=K, confidence=conf)
    np.testing.assert_allclose(fit.keypoints, clean.keypoints, atol=1e-6)
    assert np.all(np.delete(fit.residual_2d_px, 8, axis=1).mean(1) < 1.5)
    assert np.isnan(fit.residual_3d_mm[:, 8]).all() or np.all(fit.residual_3d_mm[:, 8] >= 0)
    with pytest.raises(ValueError, match="NaN"):
        fit_hand(toy, keypoints_3d=kp3_bad)


def test_shared_confidence_and_keypoints_only_loop(hands):
    _, kp3, kp2 = hands
    calls = []

    class Spy(ToyHand):
        def forward(self, *args, with_vertices=True, **kwargs):
            calls.append(with_vertices)
            return super().forward(*args, with_vertices=with_vertices, **kwargs)

    conf = np.ones(21)
    conf[8] = 0.0
    fit = fit_hand(Spy(), keypoints_2d=kp2[:3], keypoints_3d=kp3[:3] - kp3[:3, :1], K=K, confidence=conf,
                   iterations=20, rigid_iterations=5)
    per_hand = fit_hand(ToyHand(), keypoints_2d=kp2[:3], keypoints_3d=kp3[:3] - kp3[:3, :1], K=K,
                        confidence=np.tile(conf, (3, 1)), iterations=20, rigid_iterations=5)
    np.testing.assert_allclose(fit.keypoints, per_hand.keypoints)
    assert fit.vertices.shape == (3, 21, 3)
    # the mesh is built once, after the optimisation; every step evaluates keypoints only
    assert calls.count(True) == 1 and calls[-1] and len(calls) >= 25
    # the fit's torch thread count is restored afterwards
    before = torch.get_num_threads()
    fit_hand(ToyHand(), keypoints_3d=kp3[:1] - kp3[:1, :1], iterations=2, rigid_iterations=1, threads=1)
    assert torch.get_num_threads() == before


def test_fit_images_of_one_photo_uses_the_model_of_each_side(hands):
    _, kp3, kp2 = hands
    models = {"right": ToyHand("right"), "left": ToyHand("left")}
    mirror = np.array([-1.0, 1.0, 1.0])
    left3 = kp3[1] * mirror  # a left hand: the mirror image (x -> -x) of a right one
    left2 = project(left3, K)
    preds = [
        HandPrediction(keypoints_2d=kp2[0], keypoints_3d=kp3[0] - kp3[0, 0], handedness="right", score=1.0),
        HandPrediction(keypoints_2d=left2, keypoints_3d=left3 - left3[0], handedness="left", score=1.0),
    ]
    fits = fit_images(models, [preds], [K])[0]
    assert [f.side for f in fits] == ["right", "left"]
    assert all(len(f) == 1 for f in fits)
    assert np.mean(fits[0].residual_2d_px) < 1.5 and np.mean(fits[1].residual_2d_px) < 1.5
    with pytest.raises(ValueError, match="left"):
        fit_images(models["right"], [preds], [K])


def test_input_validation(toy, hands):
    _, kp3, kp2 = hands
    with pytest.raises(ValueError, match="K"):
        fit_hand(toy, keypoints_2d=kp2)
    with pytest.raises(ValueError, match="give"):
        fit_hand(toy)
    with pytest.raises(ValueError, match=r"\(B, 21, 2\)"):
        fit_hand(toy, keypoints_2d=kp2[:, :20], K=K)
    with pytest.raises(ValueError, match="disagree"):
        fit_hand(toy, keypoints_2d=kp2[:2], keypoints_3d=kp3[:3], K=K)
    with pytest.raises(ValueError, match="confidence"):
        fit_hand(toy, keypoints_3d=kp3, confidence=-np.ones(21))
    with pytest.raises(ValueError, match="threads"):
        fit_hand(toy, keypoints_3d=kp3, threads=0)
    with pytest.raises(ValueError, match="proportion_prior"):
        FitWeights(proportion_prior=-1.0)


# --- the open hand's proportions ---------------------------------------------------------------
def test_proportions_fit_a_hand_built_differently(open_hand_export):
    """Keypoints of open hands with other proportions than the mean (a thumb base further in, a
    longer index, the wrist lower, a narrower palm): the fit reaches them through its proportion
    components, and cannot without them (an overwhelming proportion prior)."""
    from scipy.spatial.transform import Rotation

    from handpose.handmodel import PROPORTION_LABELS, load_hand_model

    model = load_hand_model("open", "right")
    rng = np.random.default_rng(0)
    lower, upper = (v.numpy().astype(np.float64) for v in model.pose_limits())
    pose = lower + (upper - lower) * rng.uniform(0.2, 0.5, (2, 45))
    truth = {"thumb base offset x": -2.0, "index bone 1 length": 2.0, "wrist offset y": 1.5,
             "pinky base offset x": 1.5}
    shape = np.zeros((2, model.num_shape))
    for name, value in truth.items():
        shape[:, 4 + PROPORTION_LABELS.index(name)] = value
    orient = np.stack([(Rotation.from_rotvec(rng.normal(0, 0.3, 3)) * Rotation.from_rotvec([0, np.pi, 0])).as_rotvec()
                       for _ in range(2)])
    transl = np.array([[-30.0, 20.0, 450.0], [40.0, -10.0, 420.0]])
    as_t = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    with torch.no_grad():
        points = model(as_t(pose), as_t(shape), as_t(orient), as_t(transl)).keypoints.double().numpy()
    kp2, kp3 = project(points, K), points - points[:, :1]
    fit = fit_hand(model, kp2, kp3, K)
    rigid = fit_hand(model, kp2, kp3, K, weights=FitWeights(proportion_prior=1e6))
    assert np.abs(rigid.shape[:, 4:]).max() < 0.05
    assert fit.residual_2d_px.mean() < 1.0
    assert 2.0 * fit.residual_2d_px.mean() < rigid.residual_2d_px.mean()
    for name, value in truth.items():  # each found in the right direction, shrunk by the prior
        found = fit.shape[:, 4 + PROPORTION_LABELS.index(name)]
        assert np.all(found * np.sign(value) > 0.15), (name, found)


# --- the two solvers, one objective ------------------------------------------------------------
def _objective(model, kp2, kp3, transl0):
    conf = np.ones((len(kp2), 21))
    t = lambda a: torch.as_tensor(np.array(a, dtype=np.float64))  # noqa: E731
    transl0 = t(transl0)
    return Objective(model, FitWeights(robust_scale_px=4.0), t(conf), transl0, t(kp2), t(kp3 - kp3[:, :1]),
                     t(np.broadcast_to(K, (len(kp2), 3, 3))))


def test_jacobian_and_irls_gradient_match_autograd(toy, hands):
    """LM's ``J`` (forward differences) against autograd's, and its ``J^T r`` against the robust
    loss's gradient (IRLS: ``J^T r = grad L / 2`` with the weights frozen at the point)."""
    _, kp3, kp2 = hands
    objective = _objective(toy, kp2[:2], kp3[:2], kp3[:2, 0] + [5.0, -3.0, 20.0])
    rng = np.random.default_rng(4)
    theta = torch.as_tensor(rng.normal(0.0, 0.3, (2, objective.size)))
    theta[:, 6:51] += torch.as_tensor((toy.lower + toy.upper).double().numpy() / 2)
    theta[0, 9] = -0.5  # a joint beyond its limit: the limit residual is active
    columns = torch.arange(objective.size)
    r, J, loss = objective.linearise(theta, columns)
    for b in range(2):
        one = objective.select(torch.tensor([b]))
        auto = torch.autograd.functional.jacobian(lambda t: one.flat_residuals(t[None])[0], theta[b])
        # rows past the 2D ones have weight 1: J there is the plain Jacobian
        np.testing.assert_allclose(J[b, 42:].numpy(), auto[42:].numpy(), rtol=1e-4, atol=1e-5)
        grad = torch.autograd.functional.jacobian(lambda t: one.loss(t[None])[0], theta[b])
        np.testing.assert_allclose((J[b].T @ r[b]).numpy(), grad.numpy() / 2, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(loss.numpy(), objective.loss(theta).numpy(), rtol=1e-12)
    # the robust weight is rho's derivative in r^2
    sq = torch.tensor([0.0, 3.0, 50.0], dtype=torch.float64, requires_grad=True)
    (d,) = torch.autograd.grad(geman_mcclure(sq, 4.0).sum(), sq)
    np.testing.assert_allclose(geman_mcclure_weight(sq.detach(), 4.0).numpy(), d.numpy())


def test_prior_factor_reproduces_the_models_priors(toy, open_hand_export):
    from handpose.handmodel import load_hand_model

    rng = np.random.default_rng(2)
    for model in (toy, load_hand_model("open", "left")):
        factor, centre = prior_factor(model)
        p, q = (torch.as_tensor(rng.normal(0.0, 0.5, (4, model.num_pose))) for _ in range(2))
        quad = lambda x: (((x - centre) @ factor.T) ** 2).sum(-1)  # noqa: E731
        prior = lambda x: model.pose_prior(x.float()).double()  # noqa: E731
        np.testing.assert_allclose((quad(p) - quad(q)).numpy(), (prior(p) - prior(q)).numpy(), rtol=1e-4, atol=1e-6)


def test_lm_and_adam_agree(toy, hands):
    """Both solvers minimise the same objective from the same start: they land on the same hands,
    LM at a loss no higher than Adam's (in at most 40 iterations against 400)."""
    _, kp3 = _random_hands(toy, 3, seed=8, spread=0.6)
    kw = dict(keypoints_2d=project(kp3, K), keypoints_3d=kp3 - kp3[:, :1], K=K)
    lm, adam = fit_hand(toy, **kw), fit_hand(toy, **kw, solver="adam", iterations=400)
    assert np.linalg.norm(lm.keypoints - adam.keypoints, axis=-1).mean() < 2.0  # Adam's a little short
    assert np.linalg.norm(lm.keypoints - kp3, axis=-1).mean() < 0.5
    assert np.all(lm.loss <= adam.loss * 1.01 + 1e-6)
    assert np.all(lm.residual_2d_px.mean(1) < 0.1) and np.all(lm.residual_2d_px.mean(1) < adam.residual_2d_px.mean(1))


def _next_frame(model, fit: FitResult, seed: int) -> np.ndarray:
    """Camera-frame keypoints ``(B, 21, 3)`` of the fitted hands moved a little: every joint by up
    to 0.05 rad, the hand by up to 5 mm (a video's next frame)."""
    rng = np.random.default_rng(seed)
    t = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    pose = fit.pose + rng.uniform(-0.05, 0.05, fit.pose.shape)
    with torch.no_grad():
        return model(t(pose), t(fit.shape), t(fit.global_orient), t(fit.transl + rng.uniform(-5, 5, (len(fit), 3)))
                     ).keypoints.double().numpy()


def test_warm_start_follows_the_next_frame(toy, hands):
    _, kp3, kp2 = hands
    first = fit_hand(toy, keypoints_2d=kp2[:3], keypoints_3d=kp3[:3] - kp3[:3, :1], K=K)
    target = _next_frame(toy, first, 0)
    kw = dict(keypoints_2d=project(target, K), keypoints_3d=target - target[:, :1], K=K)
    warm = fit_hand(toy, **kw, init=first)
    assert np.all(warm.iterations <= 3)  # the default budget of a warm start
    assert np.all(warm.residual_2d_px.mean(1) < 0.3)
    assert np.linalg.norm(warm.keypoints - target, axis=-1).mean() < 1.5
    np.testing.assert_array_equal(warm.shape, first.shape)  # a tracked hand keeps its shape
    cold = fit_hand(toy, **kw)
    np.testing.assert_allclose(warm.keypoints, cold.keypoints, atol=2.0)
    # batched warm starts equal one-by-one ones
    alone = fit_hand(toy, keypoints_2d=kw["keypoints_2d"][1], keypoints_3d=kw["keypoints_3d"][1], K=K,
                     init=first.take(1))
    np.testing.assert_allclose(alone.keypoints[0], warm.keypoints[1], atol=1e-6)


def test_warm_start_from_a_3d_only_fit_places_the_hand(toy, hands):
    _, kp3, kp2 = hands
    root = kp3[:2] - kp3[:2, :1]
    shape_only = fit_hand(toy, keypoints_3d=root)  # transl 0: no camera frame
    fit = fit_hand(toy, keypoints_2d=kp2[:2], keypoints_3d=root, K=K, init=shape_only, iterations=10)
    assert np.all(fit.residual_2d_px.mean(1) < 1.0)
    with pytest.raises(ValueError, match="init has 2 hands"):
        fit_hand(toy, keypoints_2d=kp2[:3], keypoints_3d=kp3[:3] - kp3[:3, :1], K=K, init=shape_only)
    with pytest.raises(ValueError, match="init must be a FitResult"):
        fit_hand(toy, keypoints_3d=root, init={"pose": shape_only.pose})
    with pytest.raises(ValueError, match="solver"):
        fit_hand(toy, keypoints_3d=root, solver="sgd")


def test_fit_result_take(toy, hands):
    _, kp3, _ = hands
    fit = fit_hand(toy, keypoints_3d=kp3[:3] - kp3[:3, :1], iterations=2, rigid_iterations=1)
    one = fit.take(1)
    assert len(one) == 1 and one.faces is fit.faces and one.side == "right"
    np.testing.assert_array_equal(one.pose[0], fit.pose[1])
    np.testing.assert_array_equal(fit.take(-1).vertices, fit.vertices[2:])
    np.testing.assert_array_equal(fit.take([2, 0]).keypoints, fit.keypoints[[2, 0]])
    with pytest.raises(IndexError):
        fit.take(3)


# --- one entry point from predictions, one thread guard ---------------------------------------
def _predictions(kp3: np.ndarray, side: str) -> list[HandPrediction]:
    points = kp3 * ([1.0, 1.0, 1.0] if side == "right" else [-1.0, 1.0, 1.0])  # left: the mirror image
    return [HandPrediction(project(p, K), p - p[0], side, 1.0) for p in points]


def test_fit_images_batches_photos_and_keeps_order(hands):
    _, kp3, _ = hands
    models = {"right": ToyHand("right"), "left": ToyHand("left")}
    right_a, right_b = _predictions(kp3[:2], "right")
    (left_b,) = _predictions(kp3[2:3], "left")
    fits = fit_images(models, [[right_a], [], [left_b, right_b]], [K, K, K])
    assert [len(f) for f in fits] == [1, 0, 2]
    assert [f.side for f in fits[2]] == ["left", "right"] and all(len(f) == 1 for f in fits[2])
    alone = fit_hand(models["left"], left_b.keypoints_2d, left_b.keypoints_3d, K)
    np.testing.assert_allclose(fits[2][0].vertices, alone.vertices, atol=1e-6)
    assert np.linalg.norm(fits[0][0].keypoints[0] - kp3[0], axis=-1).mean() < 2.0
    assert np.linalg.norm(fits[2][1].keypoints[0] - kp3[1], axis=-1).mean() < 2.0


def test_fit_images_validates(hands):
    _, kp3, _ = hands
    models = {"right": ToyHand("right"), "left": ToyHand("left")}
    (hand,) = _predictions(kp3[:1], "right")
    with pytest.raises(ValueError, match="2 photos but 1 intrinsics"):
        fit_images(models, [[hand], []], [K])
    with pytest.raises(ValueError, match=r"intrinsics\[0\]"):
        fit_images(models, [[hand]], [K[:2]])
    with pytest.raises(ValueError, match=r"no model given for the \['right'\] hands"):
        fit_images({"left": models["left"]}, [[hand]], [K])
    with pytest.raises(ValueError, match="threads"):
        fit_images(models, [[hand]], [K], threads=0)


def test_fit_images_fits_with_its_threads(hands):
    """Issue 15: ``fit_images(threads=N)`` set N, then ``fit_hand``'s default ``threads=1`` won
    inside the loop. The model must run with the threads asked for, and torch's be restored."""
    _, kp3, _ = hands
    seen = []

    class Spy(ToyHand):
        def forward(self, *args, **kwargs):
            seen.append(torch.get_num_threads())
            return super().forward(*args, **kwargs)

    before = torch.get_num_threads()
    fit_images(Spy(), [_predictions(kp3[:1], "right")], [K], threads=2, iterations=2, rigid_iterations=1)
    assert seen and set(seen) == {2}
    assert torch.get_num_threads() == before


# --- geometry of the start (issue 15 bugs) ----------------------------------------------------
def test_degenerate_2d_start_is_put_in_front_where_it_spans_a_pixel(toy):
    """All 2D keypoints at one pixel: the pinhole least squares leave the depth undetermined. The
    start must be in front of the camera, on that pixel's ray, where the palm spans about a pixel
    (the fallback derived from the sizes; it was ``0.2 f`` mm, about 200 px across here)."""
    rest = rest_keypoints(toy).numpy()
    kp2 = np.full((1, 21, 2), [300.0, 200.0])
    orient, transl = _initialise(rest, kp2, None, K[None], np.ones((1, 21)))
    for c in range(len(orient)):
        from scipy.spatial.transform import Rotation

        placed = rest @ Rotation.from_rotvec(orient[c, 0]).as_matrix().T + transl[c, 0]
        assert placed[:, 2].min() > 0
        uv = project(placed, K)
        assert np.abs(uv - [300.0, 200.0]).max() < 5.0  # the palm spans a pixel, the hand a few


def test_degenerate_3d_keypoints_and_alignment_are_refused_or_nan(toy, hands):
    """Issue 15: the fit divided by the alignment scale ``s'`` unguarded (``1 / s'``: inf for 3D
    keypoints without extent, a negative scale for mirrored ones)."""
    _, kp3, kp2 = hands
    flat = kp3[:2] - kp3[:2, :1]
    flat[1] = 0.0
    with pytest.raises(ValueError, match=r"keypoints_3d of hands \[1\] have no extent"):
        fit_hand(toy, keypoints_2d=kp2[:2], keypoints_3d=flat, K=K)
    # a 3D target that maps onto the model only with a negative scale: NaN, not -1
    rest = rest_keypoints(toy).numpy()[None]
    objective = _objective(toy, project(rest + [0, 0, 400.0], K), -rest, [[0, 0, 400.0]])
    theta = torch.zeros(1, objective.size, dtype=torch.float64)
    fit = objective.result(theta, np.zeros(1, bool), np.zeros(1, int))
    assert np.isnan(fit.scale).all() and np.isnan(fit.residual_3d_mm).all()
    assert np.isfinite(fit.loss).all() and np.isfinite(fit.residual_2d_px).all()


def test_transposed_K_is_refused(toy, hands):
    _, kp3, kp2 = hands
    with pytest.raises(ValueError, match="transposed"):
        fit_hand(toy, keypoints_2d=kp2[:1], K=K.T)


def test_robust_2d_term_bounds_an_outlier(toy, hands):
    """Geman-McClure through IRLS weights: a keypoint 300 px off barely moves the fit; the same
    fit with a quadratic penalty (a huge ``sigma``) is dragged towards it."""
    _, kp3, kp2 = hands
    root = kp3[:2] - kp3[:2, :1]
    bad = kp2[:2].copy()
    bad[:, 8] += [300.0, -200.0]
    clean = fit_hand(toy, keypoints_2d=kp2[:2], keypoints_3d=root, K=K)
    robust = fit_hand(toy, keypoints_2d=bad, keypoints_3d=root, K=K)
    quadratic = fit_hand(toy, keypoints_2d=bad, keypoints_3d=root, K=K, weights=FitWeights(robust_scale_px=1e6))
    moved = lambda fit: np.linalg.norm(fit.keypoints - clean.keypoints, axis=-1).mean()  # noqa: E731
    assert moved(robust) < 1.0
    assert moved(quadratic) > 5.0 * moved(robust)
    assert np.all(np.delete(robust.residual_2d_px, 8, axis=1).mean(1) < 1.0)
