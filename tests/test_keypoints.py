"""Tests of handpose.keypoints against the documented orders of MANO and InterHand2.6M."""
from __future__ import annotations

import numpy as np
import pytest

from handpose import keypoints as kp

FINGER_JOINTS = {"thumb": ("CMC", "MCP", "IP", "TIP")} | {
    f: ("MCP", "PIP", "DIP", "TIP") for f in ("index", "middle", "ring", "pinky")
}

# MANO's native order written in the course's vocabulary (16 skeleton joints, then the fingertip
# vertices): 0 wrist, 1-3 index, 4-6 middle, 7-9 pinky, 10-12 ring, 13-15 thumb, 16-20 tips.
MANO_NAMES = (
    ["WRIST"]
    + [f"{f}_{j}" for f, joints in (("INDEX", "MCP PIP DIP"), ("MIDDLE", "MCP PIP DIP"), ("PINKY", "MCP PIP DIP"),
                                     ("RING", "MCP PIP DIP"), ("THUMB", "CMC MCP IP")) for j in joints.split()]
    + [f"{f}_TIP" for f in ("THUMB", "INDEX", "MIDDLE", "RING", "PINKY")]
)
#: MANO's kinematic tree (``kintree_table[0]``) of its 16 skeleton joints.
MANO_PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)
# InterHand2.6M per hand: each finger tip to base (thumb, index, middle, ring, pinky), wrist last.
INTERHAND_NAMES = [f"{f}_{j}" for f in ("THUMB", "INDEX", "MIDDLE", "RING", "PINKY")
                   for j in reversed(FINGER_JOINTS[f.lower()])] + ["WRIST"]


def test_names_and_order() -> None:
    assert kp.NUM_KEYPOINTS == len(kp.NAMES) == len(set(kp.NAMES)) == 21
    assert kp.NAMES[0] == "WRIST" and kp.NAMES[kp.WRIST] == "WRIST" and kp.NAMES[kp.MIDDLE_MCP] == "MIDDLE_MCP"
    expected = ["WRIST"] + [f"{f.upper()}_{j}" for f, joints in FINGER_JOINTS.items() for j in joints]
    assert list(kp.NAMES) == expected
    assert all(kp.NAMES[i] == name and kp.INDEX[name] == i for i, name in enumerate(kp.NAMES))


def test_bones_form_a_tree_rooted_at_the_wrist() -> None:
    assert len(kp.BONES) == 20 and len(set(kp.BONES)) == 20
    assert kp.PARENTS[kp.WRIST] == -1 and sum(p == -1 for p in kp.PARENTS) == 1
    assert {c for _, c in kp.BONES} == set(range(1, 21))  # every joint but the wrist has one parent
    for child in range(21):  # walking up the parents reaches the wrist without cycles
        seen, j = set(), child
        while j != kp.WRIST:
            assert j not in seen
            seen.add(j)
            j = kp.PARENTS[j]
    assert all(kp.PARENTS[c] == p for p, c in kp.BONES)


def test_finger_chains() -> None:
    assert list(kp.FINGERS) == list(FINGER_JOINTS)
    for finger, chain in kp.FINGERS.items():
        assert [kp.NAMES[i] for i in chain] == [f"{finger.upper()}_{j}" for j in FINGER_JOINTS[finger]]
        assert kp.PARENTS[chain[0]] == kp.WRIST
        assert [kp.PARENTS[c] for c in chain[1:]] == list(chain[:-1])
        assert all(kp.finger_of(i) == finger for i in chain)
    assert kp.TIPS == (4, 8, 12, 16, 20) and all(kp.NAMES[t].endswith("_TIP") for t in kp.TIPS)
    assert kp.finger_of(kp.WRIST) is None
    with pytest.raises(IndexError):
        kp.finger_of(21)
    with pytest.raises(IndexError):
        kp.finger_of(-1)


def test_colours() -> None:
    assert len(kp.KEYPOINT_COLORS) == 21 and len(kp.BONE_COLORS) == 20
    assert kp.KEYPOINT_COLORS[kp.WRIST] == kp.PALM_COLOR
    assert kp.KEYPOINT_COLORS[8] == kp.FINGER_COLORS["index"] and kp.BONE_COLORS[0] == kp.FINGER_COLORS["thumb"]
    assert len(set(kp.FINGER_COLORS.values()) | {kp.PALM_COLOR}) == 6
    assert all(len(c) == 3 and all(0 <= v <= 255 for v in c) for c in kp.KEYPOINT_COLORS)


@pytest.mark.parametrize("forward, backward", [(kp.COURSE_FROM_MANO, kp.MANO_FROM_COURSE),
                                               (kp.COURSE_FROM_INTERHAND, kp.INTERHAND_FROM_COURSE)])
def test_maps_are_inverse_permutations(forward: tuple[int, ...], backward: tuple[int, ...]) -> None:
    assert sorted(forward) == sorted(backward) == list(range(21))
    assert [forward[backward[i]] for i in range(21)] == list(range(21))
    assert [backward[forward[i]] for i in range(21)] == list(range(21))
    points = np.random.default_rng(0).normal(size=(2, 21, 3))
    np.testing.assert_array_equal(points[:, forward][:, backward], points)


def test_mano_map_against_the_native_names() -> None:
    assert len(MANO_NAMES) == 21
    assert [MANO_NAMES[m] for m in kp.COURSE_FROM_MANO] == list(kp.NAMES)
    c = kp.INDEX
    assert kp.COURSE_FROM_MANO[c["THUMB_TIP"]] == 16 and kp.COURSE_FROM_MANO[c["INDEX_MCP"]] == 1
    assert kp.COURSE_FROM_MANO[c["MIDDLE_MCP"]] == 4 and kp.COURSE_FROM_MANO[c["THUMB_CMC"]] == 13
    assert kp.MANO_FROM_COURSE[20] == c["PINKY_TIP"]
    assert kp.MANO_TIP_VERTICES == (745, 317, 444, 556, 673)


def test_course_bones_are_manos_kinematic_tree() -> None:
    for parent, child in kp.BONES:
        m_child, m_parent = kp.COURSE_FROM_MANO[child], kp.COURSE_FROM_MANO[parent]
        if m_child < 16:
            assert MANO_PARENTS[m_child] == m_parent
        else:  # a tip vertex hangs off the finger's last skeleton joint, which has no child in MANO
            assert m_parent not in MANO_PARENTS


def test_interhand_map_against_the_native_names() -> None:
    assert [INTERHAND_NAMES[m] for m in kp.COURSE_FROM_INTERHAND] == list(kp.NAMES)
    assert kp.COURSE_FROM_INTERHAND[kp.WRIST] == 20 and kp.COURSE_FROM_INTERHAND[kp.INDEX["THUMB_TIP"]] == 0
    assert kp.COURSE_FROM_INTERHAND[kp.INDEX["THUMB_CMC"]] == 3
    # the order quoted in ../shared/iccv21/ARCHITECTURE.md section 3
    assert kp.COURSE_FROM_INTERHAND == (20, 3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12, 19, 18, 17, 16)


def test_the_two_palm_sets() -> None:
    assert kp.PALM_RIGID == (0, 5, 9, 13, 17)  # wrist + index..pinky MCPs
    assert kp.PALM_OUTLINE == (0, 1, 5, 9, 13, 17)  # + the thumb's CMC
    assert set(kp.PALM_RIGID) < set(kp.PALM_OUTLINE)


def test_bone_lengths_known_answer() -> None:
    points = np.zeros((2, kp.NUM_KEYPOINTS, 3))
    points[1, :, 0] = np.arange(kp.NUM_KEYPOINTS)  # keypoint i at x = i
    lengths = kp.bone_lengths(points)
    assert lengths.shape == (2, 20) and not lengths[0].any()
    np.testing.assert_allclose(lengths[1], [abs(c - p) for p, c in kp.BONES])
