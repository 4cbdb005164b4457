"""Tests of handpose.models.iccv21: state_dict layout against the authors' specs, checkpoint round
trips in both release formats, refusal of bad files, MANO layers against smplx, the network's
pitfalls at small scale, crops and the estimator's outputs.

The network has ~140M parameters: each release is built, saved, loaded and run (batch 1) once per
session by the module-scoped ``case`` fixture.
"""
from __future__ import annotations

import json
import os
import dataclasses
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pytest
import torch

from handpose.heatmap import ICCV21_SIGMA, register_heatmap
from handpose.keypoints import COURSE_FROM_INTERHAND, COURSE_FROM_MANO
from handpose.handmodel.mano import ManoData
from handpose.models.iccv21 import (
    CHECKPOINT_FILES,
    CheckpointError,
    ICCV21Estimator,
    ICCV21Net,
    ICCV21Output,
    build_iccv21,
    fill_mano_pair,
    find_checkpoint,
    hands_from_output,
    load_iccv21,
    place_left_hand,
    read_state_dict,
    save_iccv21,
)
from handpose.models.iccv21 import ICCV21Options, resolve_device, validate_checkpoint
from handpose.models.iccv21.checkpoint import check_state_dict, reconcile_batch_counters
from handpose.models.iccv21.evidence import MAX_REGISTRATION_RESIDUAL, hand_evidence, registration_residual
from handpose.models.iccv21.mano_layers import MANO_PARENTS, ManoLayerV1, ManoLayerV2, make_mano_pair
from handpose.models.iccv21.network import (
    HandStages,
    HeatmapOutput,
    attention_pool,
    hand_attention,
    heatmap_keypoints,
    injected_heatmap,
)
from handpose.models.iccv21.preprocess import box_transform, crop_image, demo_transform

from conftest import make_fake_mano, write_fake_mano_pickle
from _synthetic import gaussian_blob, intensity_centroid

REPO = Path(__file__).resolve().parents[2]
SPEC_DIR = Path(os.environ.get("HANDPOSE_ICCV21_SPEC", REPO / ".." / "shared" / "iccv21"))
RELEASES = ("v1", "v2")
MIDDLE_TIP = 12  # course order


def _spec(release: str) -> dict:
    path = SPEC_DIR / f"state_dict_spec_{release}.json"
    if not path.is_file():
        pytest.skip(f"{path} not found (set HANDPOSE_ICCV21_SPEC to the folder with the spec JSONs)")
    return json.loads(path.read_text())


# ----------------------------------------------------------------------------- fake MANO data
def _arrays(raw: dict[str, np.ndarray]) -> ManoData:
    """The :class:`ManoData` of a :func:`make_fake_mano` dict (its ``f`` is ``faces``)."""
    return ManoData(**{f.name: raw["f" if f.name == "faces" else f.name] for f in fields(ManoData)})


@pytest.fixture(scope="module")
def mano_raw() -> dict[str, dict[str, np.ndarray]]:
    """Two unrelated fake hands: the left one's shapedirs differ from the right one's (no bug)."""
    return {"right": make_fake_mano(1), "left": make_fake_mano(2)}


@pytest.fixture(scope="module")
def mano_dir(tmp_path_factory: pytest.TempPathFactory, mano_raw: dict) -> Path:
    """``mano_raw`` as MANO_RIGHT/LEFT.pkl in the official layout, read by ``handpose.handmodel.mano.load_mano``."""
    folder = tmp_path_factory.mktemp("mano")
    for side, name in (("right", "MANO_RIGHT.pkl"), ("left", "MANO_LEFT.pkl")):
        write_fake_mano_pickle(folder / name, mano_raw[side])
    return folder


@pytest.fixture(scope="module", autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HANDPOSE_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


# ----------------------------------------------------------------------------- the big fixture
@dataclass
class Case:
    release: str
    path: Path
    state: dict[str, torch.Tensor]
    net: ICCV21Net
    out: ICCV21Output
    cascade_inputs: dict[str, torch.Tensor]


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("weights")


@pytest.fixture(scope="module", params=RELEASES)
def case(request: pytest.FixtureRequest, weights_dir: Path, mano_raw: dict) -> Case:
    """Build (random weights, fake MANO), save in the release's format, load, one forward pass."""
    release = request.param
    torch.manual_seed(0)
    net = build_iccv21(release)
    fill_mano_pair(net.mesh_reg.mano_layer, _arrays(mano_raw["right"]), _arrays(mano_raw["left"]))
    path = weights_dir / CHECKPOINT_FILES[release]
    save_iccv21(net, path)
    state = net.state_dict()
    del net
    loaded = load_iccv21(path)
    captured: dict[str, torch.Tensor] = {}
    hooks = [
        getattr(loaded.mesh_reg, f"cascaded_{side}_mano_branch_list")[0].register_forward_hook(
            lambda _m, args, _o, side=side: captured.__setitem__(side, args[0].clone())
        )
        for side in ("left", "right")
    ]
    image = torch.from_numpy(np.random.default_rng(3).random((1, 3, 256, 256), dtype=np.float32))
    with torch.inference_mode():
        out = loaded(image)
    for hook in hooks:
        hook.remove()
    return Case(release, path, state, loaded, out, captured)


# ----------------------------------------------------------------------------- layout vs spec
@pytest.mark.parametrize("release", RELEASES)
def test_state_dict_equals_spec(release: str) -> None:
    spec = _spec(release)
    with torch.device("meta"):
        net = ICCV21Net(release)
    params = dict(net.named_parameters())
    buffers = dict(net.named_buffers())
    ours = [
        {"name": k, "shape": list(v.shape), "dtype": str(v.dtype).removeprefix("torch."),
         "kind": "param" if k in params else "buffer" if k in buffers else "?"}
        for k, v in net.state_dict().items()
    ]
    assert [e["name"] for e in ours] == [e["name"] for e in spec["state_dict"]]  # same keys, same order
    assert ours == spec["state_dict"]
    assert len(ours) == spec["num_entries"]


def test_forward_shapes_equal_spec(case: Case) -> None:
    shapes = _spec(case.release)["forward_output_shapes_B2"]

    def batch1(shape: list[int]) -> tuple[int, ...]:
        assert shape[0] == 2
        return (1, *shape[1:])

    out = case.out
    if case.release == "v1":
        assert out.heatmap_output.heatmap.shape == batch1(shapes["heatmap_predictor.joint_heatmap_out"])
        assert out.heatmap_output.hand_type.shape == batch1(shapes["heatmap_predictor.hand_type"])
        assert out.trans.shape == batch1(shapes["trans_list[0]"])
        assert out.right.joints.shape[1] == shapes["n_stages_right"] == out.left.joints.shape[1]
        fields = {"verts3d": "vertices", "joints3d": "joints", "T_joints3d": "rest_joints", "shape": "shape", "pose": "pose"}
        for theirs, ours in fields.items():
            assert getattr(out.right, ours)[:, -1].shape == batch1(shapes[f"right_mano_para_list[-1].{theirs}"])
            assert getattr(out.left, ours)[:, 0].shape == batch1(shapes[f"left_mano_para_list[0].{theirs}"])
    else:
        assert out.heatmap_output.heatmap.shape == batch1(shapes["heatmap"])
        joints = torch.cat([out.right.joints[:, -1], out.left.joints[:, -1]], dim=1)
        verts = torch.cat([out.right.vertices[:, -1], out.left.vertices[:, -1]], dim=1)
        assert joints.shape == batch1(shapes["test_out.joints3d"])
        assert verts.shape == batch1(shapes["test_out.verts3d"])
        assert out.trans.shape == batch1(shapes["test_out.trans"])
        assert out.right.rest_joints.shape == (1, 4, 16, 3)


# ----------------------------------------------------------------------------- round trip
def test_round_trip_weights_are_identical(case: Case) -> None:
    loaded = case.net.state_dict()
    assert loaded.keys() == case.state.keys()
    for name, tensor in case.state.items():
        assert torch.equal(loaded[name], tensor), name


def test_release_format_on_disk(case: Case) -> None:
    raw = torch.load(case.path, map_location="cpu", weights_only=True, mmap=True)
    if case.release == "v1":
        assert "mesh_reg.base_net.fc.weight" in raw and not any(k.startswith("module.") for k in raw)
    else:
        assert set(raw) == {"epoch", "network"}
        assert all(k.startswith("module.") for k in raw["network"])
        assert "module.mesh_reg.base_net.bn1.weight" in raw["network"]
    assert set(read_state_dict(case.path)) == set(case.state)  # module. stripped


def test_forward_outputs_finite_and_in_units(case: Case) -> None:
    out = case.out
    for stages in (out.right, out.left):
        for name in ("vertices", "joints", "rest_joints", "pose", "shape"):
            assert torch.isfinite(getattr(stages, name)).all(), name
        assert stages.vertices.shape == (1, 4, 778, 3)
        assert stages.joints.shape == (1, 4, 21, 3)
        # fake MANO hands are ~0.1 m: tens to hundreds of millimetres
        extent = stages.vertices[0, -1].amax(0) - stages.vertices[0, -1].amin(0)
        assert 20.0 < float(extent.max()) < 2000.0
    assert torch.isfinite(out.trans).all() and out.trans.shape == (1, 4)
    assert out.xyc.shape == (1, 42, 3) and out.attention.shape == (1, 2, 64, 64)
    xy = out.xyc[..., :2]
    assert torch.equal(xy, xy.round()) and xy.min() >= 0 and xy.max() <= 63  # integer argmax
    hm = out.heatmap_output.heatmap
    assert torch.equal(out.xyc[..., 2], hm.flatten(2).amax(2))
    if case.release == "v1":  # centred at the middle MCP (course joint 9)
        assert torch.allclose(out.right.joints[:, :, 9], torch.zeros(1, 4, 3), atol=1e-4)
        assert torch.allclose(out.left.joints[:, :, 9], torch.zeros(1, 4, 3), atol=1e-4)


def test_final_mesh_equals_smplx_lbs(case: Case, mano_raw: dict) -> None:
    """Vertices in mm equal 1000 x smplx's LBS (metres) of the predicted pose and shape."""
    lbs = pytest.importorskip("smplx.lbs").lbs
    for side, stages, key in (("right", case.out.right, "r"), ("left", case.out.left, "l")):
        raw = mano_raw[side]
        shapedirs = case.net.mesh_reg.mano_layer[key].shapedirs  # carries the left-hand fix
        pose, betas = stages.pose[:, -1], stages.shape[:, -1]
        full = torch.cat([pose[:, :3], pose[:, 3:] + torch.as_tensor(raw["hands_mean"], dtype=torch.float32)], 1)
        parents = torch.tensor(MANO_PARENTS)
        verts, joints = lbs(
            betas, full, torch.as_tensor(raw["v_template"], dtype=torch.float32), shapedirs,
            torch.as_tensor(raw["posedirs"].reshape(-1, 135).T, dtype=torch.float32),
            torch.as_tensor(raw["J_regressor"], dtype=torch.float32), parents,
            torch.as_tensor(raw["weights"], dtype=torch.float32),
        )
        if case.release == "v1":
            origin = joints[:, 4:5]  # MANO joint 4 = middle MCP
        else:
            origin = -case.net.mesh_reg.mano_layer[key].transl[:, None]
        torch.testing.assert_close(stages.vertices[:, -1], (verts - origin) * 1000, atol=2e-3, rtol=1e-4)


def test_cascade_input_order(case: Case) -> None:
    """[other shape, other pose, own shape, own pose, features, trans] from the previous stage."""
    out, captured = case.out, case.cascade_inputs
    for own, other, side in ((out.left, out.right, "left"), (out.right, out.left, "right")):
        x = captured[side]
        assert x.shape == (1, 2168)
        torch.testing.assert_close(x[:, :10], other.shape[:, 0])
        torch.testing.assert_close(x[:, 10:58], other.pose[:, 0])
        torch.testing.assert_close(x[:, 58:68], own.shape[:, 0])
        torch.testing.assert_close(x[:, 68:116], own.pose[:, 0])
        torch.testing.assert_close(x[:, -4:], out.trans)


# ----------------------------------------------------------------------------- bad files
def test_tampered_checkpoint_names_offending_keys(case: Case, tmp_path: Path) -> None:
    state = dict(case.state)
    state["mesh_reg.trans_branch.final_layer.weight_renamed"] = state.pop("mesh_reg.trans_branch.final_layer.weight")
    state["mesh_reg.left_mano_branch.pose_reg.bias"] = torch.zeros(47)
    with pytest.raises(CheckpointError) as err:
        check_state_dict(state, case.release)
    message = str(err.value)
    for text in ("mesh_reg.trans_branch.final_layer.weight_renamed", "missing keys: mesh_reg.trans_branch.final_layer.weight",
                 "mesh_reg.left_mano_branch.pose_reg.bias [47] (expected [48])"):
        assert text in message
    if case.release == "v2":  # once through a real file, in the prefixed format
        path = tmp_path / "snapshot_99.pth.tar"
        torch.save({"network": {f"module.{k}": v for k, v in state.items()}}, path)
        with pytest.raises(CheckpointError, match="pose_reg.bias"):
            load_iccv21(path, release="v2")


def test_wrong_release_is_reported(case: Case) -> None:
    other = "v2" if case.release == "v1" else "v1"
    with pytest.raises(CheckpointError, match=f"ICCV21 {other} network"):
        load_iccv21(case.path, release=other)


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_code_executing_pickle_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pts"
    torch.save({"network": {"module.a": torch.zeros(1)}, "x": _Evil(marker)}, path)
    with pytest.raises(CheckpointError, match="weights_only"):
        load_iccv21(path)
    assert not marker.exists()
    torch.load(path, weights_only=False)  # the file really is malicious: unsafe loading runs it
    assert marker.exists()


def test_non_checkpoints_are_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_iccv21(tmp_path / "absent.pth.tar")
    garbage = tmp_path / "garbage.pts"
    garbage.write_bytes(np.random.default_rng(0).bytes(1000))
    with pytest.raises(CheckpointError, match="not a loadable checkpoint"):
        load_iccv21(garbage)
    listed = tmp_path / "list.pts"
    torch.save([torch.zeros(2)], listed)
    with pytest.raises(CheckpointError, match="expected a state_dict"):
        load_iccv21(listed)


def test_read_state_dict_strips_module_prefix(tmp_path: Path) -> None:
    path = tmp_path / "small.pth.tar"
    torch.save({"epoch": 3, "network": {"module.a.b": torch.ones(2), "module.c": torch.zeros(1)}}, path)
    assert set(read_state_dict(path)) == {"a.b", "c"}
    torch.save({"a.module.b": torch.ones(2)}, path)
    assert set(read_state_dict(path)) == {"a.module.b"}


def test_checkpoint_without_mano_needs_mano_files(case: Case, tmp_path: Path, mano_dir: Path) -> None:
    if case.release != "v1":
        pytest.skip("one release is enough (the MANO path is shared)")
    state = {k: (torch.zeros_like(v) if ".mano_layer." in k else v) for k, v in case.state.items()}
    path = tmp_path / "model.pts"
    torch.save(state, path)
    with pytest.raises(FileNotFoundError, match="MANO_RIGHT.pkl"):
        load_iccv21(path)
    assert not validate_checkpoint(path).has_mano and validate_checkpoint(case.path).has_mano
    net = load_iccv21(path, mano_dir=mano_dir)
    for key in ("mesh_reg.mano_layer.r.th_shapedirs", "mesh_reg.mano_layer.l.th_shapedirs", "mesh_reg.mano_layer.l.th_faces"):
        assert torch.equal(net.state_dict()[key], case.state[key]), key


# ----------------------------------------------------------------------------- MANO layers
def _smplx_reference(raw: dict, pose: torch.Tensor, betas: torch.Tensor, shapedirs: np.ndarray):
    lbs = pytest.importorskip("smplx.lbs").lbs
    full = torch.cat([pose[:, :3], pose[:, 3:] + torch.as_tensor(raw["hands_mean"], dtype=torch.float32)], 1)
    f32 = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    return lbs(betas, full, f32(raw["v_template"]), f32(shapedirs), f32(raw["posedirs"].reshape(-1, 135).T),
               f32(raw["J_regressor"]), torch.tensor(MANO_PARENTS), f32(raw["weights"]))


def test_mano_layers_against_smplx(mano_raw: dict) -> None:
    gen = torch.Generator().manual_seed(0)
    pose, betas = 0.6 * torch.randn(2, 48, generator=gen), torch.randn(2, 10, generator=gen)
    pairs = {release: make_mano_pair(release) for release in RELEASES}
    for pair in pairs.values():
        fill_mano_pair(pair, _arrays(mano_raw["right"]), _arrays(mano_raw["left"]))
    for side, key in (("right", "r"), ("left", "l")):
        raw = mano_raw[side]
        fixed = raw["shapedirs"].copy()
        if side == "left":
            fixed[:, 0] *= -1  # v1 always; v2 does not (the fake left differs from the right)
        verts, joints = _smplx_reference(raw, pose, betas, fixed)
        tips = (745, 317, 445 if side == "left" else 444, 556, 673)
        native = torch.cat([joints, verts[:, list(tips)]], 1)
        v1 = pairs["v1"][key](pose, betas)
        center = native[:, 4:5]
        torch.testing.assert_close(v1.vertices, (verts - center) * 1000, atol=1e-3, rtol=1e-4)
        torch.testing.assert_close(v1.joints, (native - center)[:, list(COURSE_FROM_MANO)] * 1000, atol=1e-3, rtol=1e-4)
        v2_dirs = raw["shapedirs"]
        verts2, joints2 = _smplx_reference(raw, pose, betas, v2_dirs)
        v2 = pairs["v2"][key](pose, betas)
        native2 = torch.cat([joints2, verts2[:, [745, 317, 444, 556, 673]]], 1)
        torch.testing.assert_close(v2.vertices, verts2 * 1000, atol=1e-3, rtol=1e-4)
        torch.testing.assert_close(v2.joints, native2 * 1000, atol=1e-3, rtol=1e-4)
        # rest-pose skeleton = J_regressor (v_template + shapedirs beta)
        rest = np.einsum("jv,bvk->bjk", raw["J_regressor"], raw["v_template"] + np.einsum("vkl,bl->bvk", v2_dirs, betas.numpy()))
        torch.testing.assert_close(v2.rest_joints, torch.as_tensor(rest * 1000, dtype=torch.float32), atol=1e-3, rtol=1e-4)
    assert isinstance(pairs["v1"]["l"], ManoLayerV1) and isinstance(pairs["v2"]["l"], ManoLayerV2)


def test_left_shapedirs_fix_rules(mano_raw: dict) -> None:
    right = _arrays(mano_raw["right"])
    buggy_left = _arrays({**mano_raw["left"], "shapedirs": mano_raw["right"]["shapedirs"].copy()})
    for release, left, negated in (("v1", _arrays(mano_raw["left"]), True), ("v2", _arrays(mano_raw["left"]), False), ("v2", buggy_left, True)):
        pair = make_mano_pair(release)
        fill_mano_pair(pair, right, left)
        expected = left.shapedirs[:, 0] * (-1.0 if negated else 1.0)
        np.testing.assert_allclose(pair["l"].shapedirs[:, 0].numpy(), expected, rtol=1e-6, err_msg=f"{release} {negated}")
        np.testing.assert_allclose(pair["r"].shapedirs.numpy(), right.shapedirs, rtol=1e-6)


def test_mano_rejects_foreign_tree(mano_raw: dict) -> None:
    raw = {**mano_raw["right"], "kintree_table": np.array([[2**32 - 1] + [0] * 15, list(range(16))])}
    with pytest.raises(ValueError, match="kintree_table"):
        ManoLayerV2("right").fill_(_arrays(raw))


def test_build_with_mano_dir_reads_pickles(mano_dir: Path, mano_raw: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    from handpose.models.iccv21 import checkpoint

    monkeypatch.setattr(checkpoint, "ICCV21Net", lambda release: _ManoOnly(release))
    net = build_iccv21("v2", mano_dir=mano_dir)
    np.testing.assert_allclose(net.mesh_reg.mano_layer["r"].v_template.numpy(), mano_raw["right"]["v_template"], rtol=1e-6)
    np.testing.assert_array_equal(net.mesh_reg.mano_layer["l"].faces_tensor.numpy(), mano_raw["left"]["f"])


class _ManoOnly(torch.nn.Module):
    """Stand-in network with only the MANO layers (building the full one is slow)."""

    def __init__(self, release: str) -> None:
        super().__init__()
        self.mesh_reg = torch.nn.Module()
        self.mesh_reg.mano_layer = make_mano_pair(release)


# ----------------------------------------------------------------------------- pitfalls, small scale
def test_attention_pool_is_nearest_subsampling() -> None:
    attention = torch.arange(64 * 64, dtype=torch.float32).view(1, 1, 64, 64)
    features = torch.zeros(1, 2, 8, 8)
    features[0, 0, 3, 5] = 64.0  # mean over 64 cells -> picks attention[24, 40]
    features[0, 1] = 1.0
    pooled = attention_pool(features, attention)
    assert pooled[0, 0] == attention[0, 0, 24, 40]
    assert pooled[0, 1] == attention[0, 0, ::8, ::8].mean()
    assert pooled[0, 1] != torch.nn.functional.adaptive_avg_pool2d(attention, 8).mean()  # not an area resize


def test_heatmap_keypoints_integer_argmax() -> None:
    hm = torch.zeros(1, 2, 8, 16, 16)
    hm[0, 0, 5, 10, 3] = 7.0
    hm[0, 1, 1, 2, 9] = 4.0
    hm[0, 1, 6, 2, 12] = 4.0  # tie: the first in row-major order wins
    hm[0, 1, 0, 0, 0] = 3.9
    xyc = heatmap_keypoints(hm)
    torch.testing.assert_close(xyc, torch.tensor([[[3.0, 10.0, 7.0], [9.0, 2.0, 4.0]]]))


def test_injected_heatmap_and_attention_channels() -> None:
    hm = torch.randn(1, 42, 64, 64, 64, generator=torch.Generator().manual_seed(0))
    injected = injected_heatmap(hm)
    assert injected.shape == (1, 672, 32, 32)
    for j, d, y, x in ((0, 0, 0, 0), (5, 3, 7, 30), (41, 15, 31, 31)):
        assert injected[0, j * 16 + d, y, x] == hm[0, j, 4 * d, 2 * y, 2 * x]
    attention = hand_attention(hm)
    torch.testing.assert_close(attention[:, 0], hm[:, :21].flatten(1, 2).amax(1))
    torch.testing.assert_close(attention[:, 1], hm[:, 21:].flatten(1, 2).amax(1))


def _authors_register(xyc: torch.Tensor, joints: torch.Tensor, origin: int, size: int) -> torch.Tensor:
    """ARCHITECTURE.md section 6: confidence-weighted normal equations, exp(-d^2/3), union."""
    batch, count = xyc.shape[:2]
    c = xyc[..., 2:3]
    rows = torch.zeros(batch, count, 2, 3, dtype=xyc.dtype)
    rows[..., 0, 0], rows[..., 0, 1] = joints[..., 0], 1.0
    rows[..., 1, 0], rows[..., 1, 2] = joints[..., 1], 1.0
    m = (rows * c[..., None]).reshape(batch, 2 * count, 3)
    b = (xyc[..., :2] * c).reshape(batch, 2 * count, 1)
    st = torch.linalg.inv(m.transpose(1, 2) @ m) @ m.transpose(1, 2) @ b  # (B, 3, 1)
    p = (st[:, :1, :] * joints[..., :2] + st[:, 1:, 0][:, None]) * (size / origin)
    grid = torch.arange(size, dtype=xyc.dtype)
    d2 = (grid[None, None, None, :] - p[..., 0, None, None]) ** 2 + (grid[None, None, :, None] - p[..., 1, None, None]) ** 2
    return 1.0 - torch.prod(1.0 - torch.exp(-d2 / 3.0), dim=1)


def test_register_heatmap_matches_authors_formula() -> None:
    gen = torch.Generator().manual_seed(0)
    joints = 40.0 * torch.randn(2, 21, 3, generator=gen, dtype=torch.float64)
    xy = 0.3 * joints[..., :2] + 30.0 + 2.0 * torch.randn(2, 21, 2, generator=gen, dtype=torch.float64)
    xyc = torch.cat([xy.round(), 255.0 * torch.rand(2, 21, 1, generator=gen, dtype=torch.float64)], -1)
    for size in (8, 16, 32):
        ours = register_heatmap(xyc, joints, 64, size, sigma=ICCV21_SIGMA, detach_fit=True)
        torch.testing.assert_close(ours, _authors_register(xyc, joints, 64, size), atol=1e-9, rtol=1e-9)


# ----------------------------------------------------------------------------- crops
def test_demo_transform_is_top_left_resize() -> None:
    image = np.full((100, 200, 3), 200, np.uint8)
    transform = demo_transform(100, 200)
    crop = crop_image(image, transform)
    assert crop.shape == (256, 256, 3)
    np.testing.assert_allclose(crop[:120, :250], 200 / 255, atol=1e-6)  # 100 x 200 px * 1.28 = 128 x 256
    assert crop[140:].max() == 0.0  # black padding below, nothing above: top-left anchored
    # pixel centres on both sides (the package's convention is OpenCV's): crop pixel 0 is photo pixel 0
    np.testing.assert_allclose(transform.to_image([[0.0, 0.0], [255.0, 127.0]]), [[0.0, 0.0], [255 / 1.28, 127 / 1.28]])


def test_crop_round_trip_keeps_pixel_centres() -> None:
    """A blob centred on photo pixel centre ``p`` is warped into the crop by OpenCV; its centroid
    mapped back with ``to_image`` is ``p`` again (a half-pixel convention slip fails this)."""
    p = np.array([61.0, 47.0])
    blob = gaussian_blob(p, (120, 160), sigma=4.0)
    image = np.repeat((255 * blob).astype(np.uint8)[..., None], 3, axis=2)
    transform = box_transform(np.array([[30.0, 20.0, 100.0, 80.0]]))
    centroid = intensity_centroid(crop_image(image, transform)[..., 0])
    np.testing.assert_allclose(transform.to_image(centroid[None])[0], p, atol=0.1)


def test_box_transform_square_enlarged_centred() -> None:
    transform = box_transform(np.array([[10, 20, 50, 40], [40, 30, 90, 60]]))  # union 80 x 40
    np.testing.assert_allclose(transform.to_image([[128.0, 128.0]]), [[50.0, 40.0]])  # centre -> 128 (cv2)
    np.testing.assert_allclose(transform.scale, 256 / 100)  # square side 80 * 1.25
    # the box centre lands on crop pixel (centre) 128, so crop pixel 0 is the square's corner
    np.testing.assert_allclose(transform.to_image([[0.0, 0.0]]), [[0.0, -10.0]], atol=1e-9)
    with pytest.raises(ValueError):
        box_transform(np.array([[10, 20, 5, 40]]))


# ----------------------------------------------------------------------------- estimator outputs
def _synthetic_output(right: np.ndarray, left: np.ndarray, trans: np.ndarray, s: float, t: np.ndarray,
                      course_from_native: tuple[int, ...]) -> ICCV21Output:
    """An output whose heatmap keypoints are exactly s * J_xy + t (in the release's joint order)."""
    native_from_course = [course_from_native.index(i) for i in range(21)]
    native = torch.tensor(np.stack([right, left])[:, native_from_course], dtype=torch.float64)  # (2, 21, 3)
    xy = s * native[..., :2] + torch.tensor(t)
    xyc = torch.cat([xy, torch.full((2, 21, 1), 127.5, dtype=torch.float64)], -1).reshape(1, 42, 3)

    def stages(j: torch.Tensor) -> HandStages:
        z = torch.zeros
        return HandStages(z(1, 4, 778, 3), j.expand(1, 4, 21, 3), z(1, 4, 16, 3), z(1, 4, 48), z(1, 4, 10))

    hm = HeatmapOutput(torch.zeros(1), torch.zeros(1, 1), torch.tensor([[0.9, 0.8]]))
    return ICCV21Output(stages(native[0]), stages(native[1]), torch.tensor(trans)[None], hm, xyc, torch.zeros(1, 2, 64, 64),
                        course_from_native)


@pytest.mark.parametrize("course_from_native", [COURSE_FROM_MANO, tuple(range(21))], ids=["v2-mano-order", "v1-course-order"])
def test_hands_from_output_known_answer(course_from_native: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    right = rng.normal(0, 40, (21, 3)) + [5.0, -3.0, 500.0]
    left_true = rng.normal(0, 40, (21, 3)) + [120.0, 10.0, 520.0]  # in the right hand's frame
    left_own = left_true + [7.0, 8.0, 9.0]  # as the network returns it: its own origin
    len_r, len_l = (np.linalg.norm(h[9] - h[0]) for h in (right, left_own))
    # exp(s) = L_left / L_right ;  d = (left_mcp - right_mcp) / L_left
    trans = np.concatenate([[np.log(len_l / len_r)], (left_true[9] - right[9]) / len_l])
    s, t = 0.25, np.array([31.0, 29.0])
    out = _synthetic_output(right, left_own, trans, s, t, course_from_native)
    transform = box_transform(np.array([[100.0, 50.0, 300.0, 250.0]]))
    faces = {"right": np.zeros((1538, 3), np.int64), "left": np.ones((1538, 3), np.int64)}
    hands = hands_from_output(out, faces, transform, source="iccv21:v2")
    assert [h.handedness for h in hands] == ["right", "left"]
    for hand, joints in zip(hands, (right, left_own)):
        uv = s * joints[:, :2] + t
        np.testing.assert_allclose(hand.keypoints_2d, transform.to_image(4.0 * uv), atol=1e-6)
        np.testing.assert_allclose(hand.keypoints_3d, joints - joints[0], atol=1e-9)
        assert hand.score == pytest.approx(0.5)
        assert hand.source == "iccv21:v2"
    np.testing.assert_allclose(hands[1].extras["keypoints_3d_from_right_wrist"], left_true - right[0], atol=1e-6)
    np.testing.assert_allclose(place_left_hand(right, left_own, trans), left_true, atol=1e-6)


def test_estimator_predicts_both_hands(case: Case, weights_dir: Path) -> None:
    if case.release != "v2":
        pytest.skip("one forward through the estimator is enough (v1's joint order: test_hands_from_output_known_answer)")
    estimator = ICCV21Estimator(weights_dir=weights_dir, release=case.release, device="cpu", keep_absent=True)
    image = np.random.default_rng(5).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    hands = estimator.predict(image, boxes=np.array([[120.0, 80.0, 220.0, 200.0], [200.0, 100.0, 300.0, 180.0]]))
    assert [h.handedness for h in hands] == ["right", "left"]
    for hand in hands:
        assert hand.source == f"iccv21:{case.release}"
        assert np.isfinite(hand.keypoints_2d).all() and np.isfinite(hand.keypoints_3d).all()
        np.testing.assert_allclose(hand.keypoints_3d[0], 0.0, atol=1e-9)
        assert hand.vertices.shape == (778, 3) and hand.faces.shape == (1538, 3)
        assert 0.0 <= hand.score <= 1.0
        # 2D = registration of the 3D joints: an exact similarity image of their x, y
        design = np.concatenate([hand.keypoints_3d[:, :2].reshape(-1, 1),
                                 np.tile(np.eye(2), (21, 1))], axis=1)
        _, residual, *_ = np.linalg.lstsq(design, hand.keypoints_2d.reshape(-1), rcond=None)
        assert residual[0] < 1e-6 * max(1.0, float((hand.keypoints_2d ** 2).sum()))
    assert estimator.crop_transform(image, np.zeros((0, 4))).matrix[0, 2] == 0.0  # no boxes: demo crop


def test_estimator_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as err:
        ICCV21Estimator(weights_dir=tmp_path)
    for text in ("snapshot_99.pth.tar", "model.pts", "Two-Hand-Shape-Pose", "weights/README.md"):
        assert text in str(err.value)
    (tmp_path / "model.pts").touch()
    (tmp_path / "snapshot_99.pth.tar").touch()
    assert find_checkpoint(tmp_path) == tmp_path / "snapshot_99.pth.tar"
    assert find_checkpoint(tmp_path, "v1") == tmp_path / "model.pts"


# ----------------------------------------------------------------------------- device, options, batches
def test_resolve_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu") and resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")
    for bad in ("tpu", "gpu", "mps"):
        with pytest.raises(ValueError, match="auto, cpu, cuda"):
            resolve_device(bad)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("auto") == torch.device("cuda") and resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(ValueError, match="only 1 CUDA device"):
        resolve_device("cuda:1")


def test_options_are_validated() -> None:
    for bad in ({"batch_size": 0}, {"batch_size": 2.0}, {"min_hand_type_prob": 1.5}, {"min_peak_score": -0.1},
                {"release": "v3"}):
        with pytest.raises(ValueError):
            ICCV21Options(**bad)


@pytest.fixture(scope="module")
def estimator_v2(case: Case, weights_dir: Path) -> ICCV21Estimator:
    if case.release != "v2":
        pytest.skip("the estimator-level tests run on release v2 (v1 shares the code)")
    return ICCV21Estimator(weights_dir=weights_dir, release="v2", device="cpu", batch_size=2, keep_absent=True)


def test_predict_batch_equals_one_by_one(estimator_v2: ICCV21Estimator) -> None:
    rng = np.random.default_rng(11)
    images = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in ((200, 300, 3), (256, 256, 3), (120, 90, 3))]
    boxes = [np.array([[20.0, 30.0, 180.0, 170.0]]), np.array([[50.0, 40.0, 200.0, 220.0]]), np.zeros((0, 4))]
    calls = []
    hook = estimator_v2.model.register_forward_hook(lambda _m, args, _o: calls.append(args[0].shape[0]))
    try:
        batched = estimator_v2.predict_batch(images, boxes)
        single = [estimator_v2.predict(image, box) for image, box in zip(images, boxes)]
    finally:
        hook.remove()
    assert calls == [2, 1, 1, 1, 1]  # batch_size 2: two forwards for three photos, then one each
    for many, one in zip(batched, single):
        assert [h.handedness for h in many] == [h.handedness for h in one] == ["right", "left"]
        for a, b in zip(many, one):
            np.testing.assert_allclose(a.keypoints_3d, b.keypoints_3d, atol=1e-3)
            np.testing.assert_allclose(a.keypoints_2d, b.keypoints_2d, atol=1e-3)
            assert a.extras["hand_type_prob"] == pytest.approx(b.extras["hand_type_prob"], abs=1e-5)
    with pytest.raises(ValueError, match="image 1"):
        estimator_v2.predict_batch([images[0], images[1][..., 0]])


# ----------------------------------------------------------------------------- one-hand photos
def test_hand_evidence_presence_rule() -> None:
    rng = np.random.default_rng(1)
    joints = rng.normal(0, 40, (21, 3))
    xyc = np.concatenate([0.2 * joints[:, :2] + 32.0, np.full((21, 1), 100.0)], axis=1)
    order = tuple(range(21))
    assert hand_evidence(xyc, joints, order, 0.9).present
    assert not hand_evidence(xyc, joints, order, 0.3).present  # hand type says absent
    faint = xyc.copy()
    faint[:, 2] = 0.04 * 255  # under MIN_PEAK_SCORE = 0.05
    assert not hand_evidence(faint, joints, order, 0.99).present
    assert hand_evidence(faint, joints, order, 0.99, min_peak_score=0.0).present
    assert not hand_evidence(xyc, joints, order, 0.6, min_hand_type_prob=0.7).present


def test_one_hand_photo_reports_one_hand(estimator_v2: ICCV21Estimator, tmp_path: Path, weights_dir: Path) -> None:
    """Generated weights made to say "right hand only" (hand_fc), with strong right heatmaps
    (joint_conv_1's bias raised by 100: peaks ~0.4 of 255) and then no left heatmap (joint_conv_2)."""
    net = estimator_v2.model
    saved = {k: v.clone() for k, v in net.state_dict().items() if "hand_fc" in k or "joint_conv_" in k}
    image = np.random.default_rng(2).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    box = np.array([[60.0, 40.0, 260.0, 220.0]])
    try:
        with torch.no_grad():
            fc = net.heatmap_predictor.pose_net.hand_fc[2]
            fc.weight.zero_()
            fc.bias.copy_(torch.tensor([8.0, -8.0]))  # sigmoid: right 0.9997, left 0.0003
            net.heatmap_predictor.pose_net.joint_conv_1[0].bias.add_(100.0)
        both = estimator_v2.predict(image, box)
        assert [h.extras["present"] for h in both] == [True, False]
        assert both[1].extras["hand_type_prob"] < 1e-3
        estimator_v2.options = dataclasses.replace(estimator_v2.options, keep_absent=False)
        assert [h.handedness for h in estimator_v2.predict(image, box)] == ["right"]
        with torch.no_grad():  # left hand type says present, but its heatmaps are empty
            fc.bias.copy_(torch.tensor([8.0, 8.0]))
            conv = net.heatmap_predictor.pose_net.joint_conv_2[0]
            conv.weight.zero_()
            conv.bias.zero_()
        hands = estimator_v2.predict(image, box)
        assert [h.handedness for h in hands] == ["right"]
    finally:
        estimator_v2.options = dataclasses.replace(estimator_v2.options, keep_absent=True)
        net.load_state_dict({**net.state_dict(), **saved})


# ----------------------------------------------------------------------------- self-check
def test_registration_residual_known_answers() -> None:
    rng = np.random.default_rng(4)
    joints = rng.normal(0, 40, (21, 3))
    uv = 0.25 * joints[:, :2] + [30.0, 28.0]
    peaks = rng.uniform(50, 250, (21, 1))
    rho, rms, scale = registration_residual(np.concatenate([uv, peaks], 1), joints)
    assert rho == pytest.approx(0.0, abs=1e-9) and rms == pytest.approx(0.0, abs=1e-9) and scale == pytest.approx(0.25)
    # noise: rho^2 = weighted residual / weighted spread, against numpy's weighted least squares
    noisy = uv + rng.normal(0, 1.5, uv.shape)
    rho, rms, scale = registration_residual(np.concatenate([noisy, peaks], 1), joints)
    w = peaks[:, 0]  # rows weighted by c (squared: c^2)
    design = np.zeros((42, 3))
    design[0::2, 0], design[1::2, 0] = joints[:, 0], joints[:, 1]
    design[0::2, 1], design[1::2, 2] = 1.0, 1.0
    sol, *_ = np.linalg.lstsq(design * np.repeat(w, 2)[:, None], noisy.reshape(-1) * np.repeat(w, 2), rcond=None)
    resid = (design @ sol - noisy.reshape(-1)).reshape(21, 2)
    centred = noisy - (w[:, None] ** 2 * noisy).sum(0) / (w ** 2).sum()
    expected = np.sqrt((w ** 2 * (resid ** 2).sum(1)).sum() / (w ** 2 * (centred ** 2).sum(1)).sum())
    assert scale == pytest.approx(sol[0]) and rho == pytest.approx(expected, rel=1e-9) and 0.0 < rho < 0.2
    assert rms == pytest.approx(np.sqrt((w ** 2 * (resid ** 2).sum(1)).sum() / (w ** 2).sum()), rel=1e-9)
    # shuffled pairing: the 3D joints explain little of the keypoints
    shuffled = np.concatenate([uv[rng.permutation(21)], peaks], 1)
    assert registration_residual(shuffled, joints)[0] > MAX_REGISTRATION_RESIDUAL


@pytest.mark.parametrize("course_from_native", [COURSE_FROM_MANO, tuple(range(21))], ids=["v2-mano-order", "v1-course-order"])
def test_self_check_tells_the_joint_orders_apart(course_from_native: tuple[int, ...]) -> None:
    rng = np.random.default_rng(5)
    joints = rng.normal(0, 40, (21, 3))  # course order
    uv = np.concatenate([0.25 * joints[:, :2] + 30.0, np.full((21, 1), 200.0)], 1)
    channels_native = np.zeros((21, 3))
    channels_native[list(course_from_native)] = uv  # channel course_from_native[i] holds course joint i
    ok = hand_evidence(channels_native, joints, course_from_native, 0.9)
    assert ok.residual < 1e-9 and ok.self_check_ok and ok.residual_interhand > MAX_REGISTRATION_RESIDUAL
    channels_ih = np.zeros((21, 3))
    channels_ih[list(COURSE_FROM_INTERHAND)] = uv  # weights trained in InterHand2.6M's order
    wrong = hand_evidence(channels_ih, joints, course_from_native, 0.9)
    assert wrong.residual > MAX_REGISTRATION_RESIDUAL and not wrong.self_check_ok
    assert wrong.residual_interhand < 1e-9
    mirrored = hand_evidence(np.concatenate([-uv[:, :2], uv[:, 2:]], 1)[list(np.argsort(course_from_native))],
                             joints, course_from_native, 0.9)
    assert mirrored.scale < 0 and not mirrored.self_check_ok


def test_self_check_warns_once_with_numbers(estimator_v2: ICCV21Estimator, caplog: pytest.LogCaptureFixture) -> None:
    rng = np.random.default_rng(6)
    right, left = rng.normal(0, 40, (21, 3)), rng.normal(0, 40, (21, 3))
    good = _synthetic_output(right, left, np.zeros(4), 0.25, np.array([31.0, 29.0]), COURSE_FROM_MANO)
    bad = _synthetic_output(right, left, np.zeros(4), 0.25, np.array([31.0, 29.0]), COURSE_FROM_MANO)
    bad.xyc[0, :21] = bad.xyc[0, torch.tensor(rng.permutation(21))]  # right heatmap in another order
    transform = box_transform(np.array([[0.0, 0.0, 100.0, 100.0]]))
    faces = {"right": np.zeros((1538, 3), np.int64), "left": np.zeros((1538, 3), np.int64)}
    estimator_v2.hands_checked = estimator_v2.self_check_failures = 0
    with caplog.at_level("INFO", logger="handpose.models.iccv21.estimator"):
        estimator_v2._decide(hands_from_output(good, faces, transform))
        assert not caplog.records and estimator_v2.hands_checked == 2
        for _ in range(3):
            estimator_v2._decide(hands_from_output(bad, faces, transform))
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and len(caplog.records) == 3
    message = warnings[0].getMessage()
    assert "right hand" in message and "threshold 0.5" in message and "InterHand2.6M" in message
    assert "weights/README.md" in message and "(1 of 3 hands so far)" in message
    assert estimator_v2.self_check_failures == 3 and estimator_v2.hands_checked == 8


# ----------------------------------------------------------------------------- harmless extras, validation
def test_validate_checkpoint_reports_the_release(case: Case) -> None:
    info = validate_checkpoint(case.path)
    assert info.release == case.release and info.entries == len(case.state) and info.has_mano
    assert info.ignored == (("epoch",) if case.release == "v2" else ()) and info.filled == ()


def test_reconcile_batch_counters() -> None:
    state = {"heatmap_predictor.backbone_net.resnet.bn1.weight": torch.ones(64),
             "mesh_reg.base_net.bn1.num_batches_tracked": torch.tensor(7)}  # v1 has no such BatchNorm
    out, dropped, filled = reconcile_batch_counters(state, "v1")
    assert dropped == ["mesh_reg.base_net.bn1.num_batches_tracked"]
    assert "heatmap_predictor.backbone_net.resnet.bn1.num_batches_tracked" in filled and len(filled) == 59
    assert all(out[k].dtype == torch.int64 and int(out[k]) == 0 for k in filled)
    assert "mesh_reg.base_net.bn1.num_batches_tracked" not in out


def test_v1_harmless_extras_are_named_and_ignored(case: Case, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    if case.release != "v1":
        pytest.skip("v1's flat format is where extras appear")
    counters = [k for k in case.state if k.endswith("num_batches_tracked")][:3]
    state = {k: v for k, v in case.state.items() if k not in counters}
    state["mesh_reg.base_net.bn1.num_batches_tracked"] = torch.tensor(5)
    optimizer = {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.zeros(4)}}, "param_groups": [{"lr": 1e-4, "params": [0]}]}
    path = tmp_path / "model.pts"
    torch.save({**state, "epoch": 40, "optimizer": optimizer}, path)
    with caplog.at_level("INFO", logger="handpose.models.iccv21.checkpoint"):
        net = load_iccv21(path)
    (record,) = caplog.records
    assert record.levelname == "WARNING" and str(path) in record.getMessage()
    for text in ("ignored 3 harmless entries: epoch, optimizer, mesh_reg.base_net.bn1.num_batches_tracked",
                 f"set 3 missing BatchNorm counters to 0: {counters[0]}"):
        assert text in record.getMessage()
    loaded = net.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items() if k in loaded)
    # anything else is refused as before: an unknown weight, an unknown non-tensor entry
    torch.save({**state, "mesh_reg.extra_head.weight": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="1 unexpected keys: mesh_reg.extra_head.weight"):
        load_iccv21(path)
    torch.save({**state, "notes": [1, 2]}, path)
    with pytest.raises(CheckpointError, match="not named tensors: notes"):
        load_iccv21(path)


def test_v2_official_extras_are_not_a_warning(case: Case, caplog: pytest.LogCaptureFixture) -> None:
    if case.release != "v2":
        pytest.skip("v2's snapshot format")
    with caplog.at_level("INFO", logger="handpose.models.iccv21.checkpoint"):
        load_iccv21(case.path)
    (record,) = caplog.records
    assert record.levelname == "INFO" and "ignored 1 harmless entries: epoch" in record.getMessage()


def test_doctor_validates_a_generated_checkpoint(case: Case, weights_dir: Path) -> None:
    from handpose.cli import licence_gated_files

    status, detail = licence_gated_files(weights_dir)[CHECKPOINT_FILES[case.release]]
    assert status == "valid" and f"release {case.release}, {len(case.state)} entries" in detail
    assert "carries MANO's arrays" in detail


def test_self_check_threshold_separates_the_orders_on_simulated_hands() -> None:
    """Open-hand keypoints, random poses and rotations, seen in perspective at 500 mm over 24-40 grid
    px, rounded to the 64 grid after 0.7 px of noise: right order well under the threshold, the
    InterHand2.6M order paired as the code pairs it well over (README's figures: 200 hands)."""
    from scipy.spatial.transform import Rotation

    from handpose.handmodel import load_hand_model

    model = load_hand_model("open")  # shipped with the package
    rng = np.random.default_rng(0)
    with torch.no_grad():
        keypoints = model(pose=torch.as_tensor(rng.normal(0, 0.3, (50, model.num_pose)), dtype=torch.float32),
                          with_vertices=False).keypoints.numpy().astype(np.float64)
    right, wrong = [], []
    for b, hand in enumerate(keypoints):
        joints = Rotation.random(random_state=b).apply(hand - hand.mean(0))
        focal = 500.0 * 40.0 / np.ptp(joints[:, :2], axis=0).max() * rng.uniform(0.6, 1.0)
        uv = np.round(focal * joints[:, :2] / (500.0 + joints[:, 2:]) + 32.0 + rng.normal(0, 0.7, (21, 2)))
        xyc = np.concatenate([uv, rng.uniform(80, 250, (21, 1))], 1)
        right.append(registration_residual(xyc, joints)[0])
        channels = np.zeros_like(xyc)
        channels[list(COURSE_FROM_INTERHAND)] = xyc
        wrong.append(registration_residual(channels, joints)[0])
    assert max(right) < 0.6 * MAX_REGISTRATION_RESIDUAL and np.median(right) < 0.2
    assert min(wrong) > 1.3 * MAX_REGISTRATION_RESIDUAL
