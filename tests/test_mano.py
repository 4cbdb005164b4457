"""MANO loading (restricted unpickler, npz cache, left-hand fix) and the layer against smplx."""
from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from handpose.handmodel import load_hand_model
from handpose.keypoints import COURSE_FROM_MANO, INDEX
from handpose.handmodel.mano import (
    ManoFileError,
    ManoHandModel,
    fix_left_shapedirs,
    left_shapedirs_bug,
    load_mano,
    load_mano_side,
    read_mano_pickle,
)
from handpose.paths import model_cache_dir

smplx = pytest.importorskip("smplx")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Keep the converted .npz files out of the project's cache."""
    monkeypatch.setenv("HANDPOSE_CACHE", str(tmp_path / "cache"))
    return model_cache_dir()


def test_loader_reads_every_array(fake_mano_dir, fake_mano_arrays):
    data = load_mano(fake_mano_dir / "MANO_RIGHT.pkl")
    expected = fake_mano_arrays["right"]
    np.testing.assert_array_equal(data.shapedirs, expected["shapedirs"])  # Select over Ch evaluated
    np.testing.assert_array_equal(data.J_regressor, expected["J_regressor"])  # sparse -> dense
    for name in ("v_template", "posedirs", "weights", "hands_mean", "hands_components", "hands_coeffs"):
        np.testing.assert_array_equal(getattr(data, name), expected[name], err_msg=name)
    np.testing.assert_array_equal(data.faces, expected["f"])
    assert data.faces.dtype == np.int64 and data.faces.shape == (1538, 3)
    assert data.kintree_table.shape == (2, 16) and data.J_regressor.shape == (16, 778)


@pytest.mark.parametrize("protocol", [0, 1])
def test_loader_reads_old_pickle_protocols(tmp_path, fake_mano_arrays, protocol):
    from conftest import write_fake_mano_pickle

    path = tmp_path / "MANO_RIGHT.pkl"
    write_fake_mano_pickle(path, fake_mano_arrays["right"], protocol=protocol)
    data = load_mano(path, use_cache=False)
    np.testing.assert_array_equal(data.shapedirs, fake_mano_arrays["right"]["shapedirs"])
    np.testing.assert_array_equal(data.J_regressor, fake_mano_arrays["right"]["J_regressor"])


def test_loader_caches_a_plain_npz(fake_mano_dir, private_cache):
    first = load_mano(fake_mano_dir / "MANO_RIGHT.pkl")
    cached = list((private_cache / "mano").glob("MANO_RIGHT-*.npz"))
    assert len(cached) == 1
    with np.load(cached[0], allow_pickle=False) as npz:  # readable without pickle
        np.testing.assert_array_equal(npz["posedirs"], first.posedirs)
    second = load_mano(fake_mano_dir / "MANO_RIGHT.pkl")
    np.testing.assert_array_equal(second.shapedirs, first.shapedirs)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("nested", [False, True])
def test_forbidden_class_is_refused_without_running(tmp_path, nested):
    marker = tmp_path / "pwned"
    payload = {"v_template": np.zeros(3), "evil": [{"x": _Evil(marker)}] if nested else _Evil(marker)}
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(ManoFileError, match=r"MANO_RIGHT\.pkl.*forbidden class (posix|os|nt)\.system"):
        read_mano_pickle(path)
    assert not marker.exists()


def test_other_globals_are_refused(tmp_path):
    path = tmp_path / "MANO_LEFT.pkl"
    path.write_bytes(pickle.dumps({"f": np.float64}, protocol=2))  # a class, not an array
    with pytest.raises(ManoFileError, match="forbidden class numpy.float64"):
        read_mano_pickle(path)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ManoFileError, match="MANO_RIGHT.pkl.*mano.is.tue.mpg.de"):
        load_mano_side("right", tmp_path)
    (tmp_path / "MANO_RIGHT.pkl").write_bytes(pickle.dumps({"v_template": np.zeros((778, 3))}))
    with pytest.raises(ManoFileError, match="missing entry"):
        load_mano(tmp_path / "MANO_RIGHT.pkl")
    (tmp_path / "MANO_LEFT.pkl").write_bytes(b"not a pickle")
    with pytest.raises(ManoFileError, match="not a readable MANO pickle"):
        load_mano(tmp_path / "MANO_LEFT.pkl")


def test_left_hand_shapedirs_fix(fake_mano_dir, fake_mano_arrays):
    right = load_mano(fake_mano_dir / "MANO_RIGHT.pkl")
    raw_left = load_mano(fake_mano_dir / "MANO_LEFT.pkl")
    assert left_shapedirs_bug(raw_left, right)
    left = load_mano_side("left", fake_mano_dir)
    np.testing.assert_array_equal(left.shapedirs[:, 0], -right.shapedirs[:, 0])
    np.testing.assert_array_equal(left.shapedirs[:, 1:], right.shapedirs[:, 1:])
    assert not left_shapedirs_bug(fix_left_shapedirs(raw_left), right)  # a fixed file stays as is


def _smplx_reference(arrays, side):
    """smplx.MANO on the generator's arrays (not through our loader), flat_hand_mean=False."""
    from smplx.utils import Struct

    return smplx.MANO(model_path="", data_struct=Struct(**arrays), is_rhand=side == "right",
                      use_pca=False, flat_hand_mean=False, num_betas=10)


@pytest.mark.parametrize("side", ["right", "left"])
def test_layer_matches_smplx(fake_mano_dir, fake_mano_arrays, side):
    arrays = dict(fake_mano_arrays[side])
    if side == "left":  # the reference gets the fixed shapedirs
        arrays["shapedirs"] = arrays["shapedirs"] * np.array([-1.0, 1.0, 1.0])[:, None]
    reference = _smplx_reference(arrays, side)
    model = load_hand_model("mano", side, mano_dir=fake_mano_dir)
    assert isinstance(model, ManoHandModel) and model.side == side
    g = torch.Generator().manual_seed(1)
    pose, betas = 0.3 * torch.randn(3, 45, generator=g), torch.randn(3, 10, generator=g)
    orient, transl = 0.5 * torch.randn(3, 3, generator=g), 50 * torch.randn(3, 3, generator=g)
    ours = model(pose, betas, orient, transl)
    ref = reference(betas=betas, global_orient=orient, hand_pose=pose)
    wrist = ref.joints[:, :1]
    expected_vertices = 1000 * (ref.vertices - wrist) + transl[:, None]
    torch.testing.assert_close(ours.vertices, expected_vertices, atol=1e-3, rtol=1e-5)
    joints = 1000 * (ref.joints - wrist) + transl[:, None]
    # course order by name: MANO joints 0 wrist, 1-3 index, 4-6 middle, 7-9 pinky, 10-12 ring,
    # 13-15 thumb; tips are vertices 745 (thumb), 317, 444, 556, 673.
    expected = {
        "WRIST": joints[:, 0], "THUMB_CMC": joints[:, 13], "THUMB_IP": joints[:, 15],
        "INDEX_MCP": joints[:, 1], "MIDDLE_DIP": joints[:, 6], "PINKY_MCP": joints[:, 7],
        "RING_PIP": joints[:, 11], "THUMB_TIP": expected_vertices[:, 745],
        "INDEX_TIP": expected_vertices[:, 317], "MIDDLE_TIP": expected_vertices[:, 444],
        "RING_TIP": expected_vertices[:, 556], "PINKY_TIP": expected_vertices[:, 673],
    }
    for name, value in expected.items():
        torch.testing.assert_close(ours.keypoints[:, INDEX[name]], value, atol=1e-3, rtol=1e-5, msg=name)
    torch.testing.assert_close(ours.keypoints[:, 0], transl)  # the wrist sits at transl


def test_default_is_the_mean_pose(fake_mano_dir, fake_mano_arrays):
    model = load_hand_model("mano", "right", mano_dir=fake_mano_dir)
    reference = _smplx_reference(fake_mano_arrays["right"], "right")
    ref = reference(betas=torch.zeros(1, 10), global_orient=torch.zeros(1, 3), hand_pose=torch.zeros(1, 45))
    rest = model()
    torch.testing.assert_close(rest.vertices, 1000 * (ref.vertices - ref.joints[:, :1]), atol=1e-3, rtol=1e-5)
    flat = reference(betas=torch.zeros(1, 10), global_orient=torch.zeros(1, 3), hand_pose=-reference.hand_mean[None])
    assert not torch.allclose(ref.vertices, flat.vertices)  # the mean pose is not the flat hand
    assert rest.keypoints.shape == (1, 21, 3) and model.faces.shape == (1538, 3)
    assert list(COURSE_FROM_MANO)[4] == 16  # thumb tip is MANO's first extra keypoint


def test_limits_and_prior_from_training_poses(fake_mano_dir, fake_mano_arrays):
    model = load_hand_model("mano", "right", mano_dir=fake_mano_dir)
    lower, upper = model.pose_limits()
    arrays = fake_mano_arrays["right"]
    poses = torch.as_tensor(arrays["hands_coeffs"] @ arrays["hands_components"], dtype=torch.float32)
    assert lower.shape == upper.shape == (45,)
    assert bool((poses >= lower).all() and (poses <= upper).all())
    assert bool((lower < 0).all() and (upper > 0).all())
    prior = model.pose_prior(poses)
    assert prior.shape == (len(poses),)
    assert 0.7 < float(prior.mean()) < 1.3  # whitened: about one per component on training poses
    assert float(model.pose_prior(torch.zeros(1, 45))) == 0.0
    with pytest.raises(ValueError, match=r"\(B, 45\)"):
        model.pose_prior(torch.zeros(45))


def test_gradients_flow(fake_mano_dir):
    model = load_hand_model("mano", "left", mano_dir=fake_mano_dir)
    pose = torch.zeros(2, 45, requires_grad=True)
    shape = torch.zeros(2, 10, requires_grad=True)
    orient = torch.full((2, 3), 0.1, requires_grad=True)
    out = model(pose, shape, orient)
    (out.keypoints.square().sum() + out.vertices.sum()).backward()
    for tensor in (pose, shape, orient):
        assert torch.isfinite(tensor.grad).all() and tensor.grad.abs().sum() > 0


@pytest.mark.parametrize("key, value, message", [
    ("v_template", np.nan, "non-finite values in v_template"),
    ("f", 778, r"faces index vertices 0\.\.778, expected 0\.\.777"),
])
def test_values_are_validated(tmp_path, fake_mano_arrays, key, value, message):
    from conftest import write_fake_mano_pickle

    arrays = {name: array.copy() for name, array in fake_mano_arrays["right"].items()}
    arrays[key].flat[0] = value
    arrays["f"].flat[1] = 0
    path = tmp_path / "MANO_RIGHT.pkl"
    write_fake_mano_pickle(path, arrays)
    with pytest.raises(ManoFileError, match=message):
        load_mano(path, use_cache=False)


def test_a_non_numeric_entry_is_a_mano_file_error(tmp_path, fake_mano_arrays):
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(pickle.dumps({**fake_mano_arrays["right"], "weights": "text"}, protocol=2))
    with pytest.raises(ManoFileError, match="weights is not a numeric array"):
        load_mano(path, use_cache=False)
