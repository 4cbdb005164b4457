"""handpose.rotations: frames from two directions, checked against SciPy and on degenerate input."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from handpose.rotations import frame_from_directions, normalize


def test_frame_known_answer_and_right_handedness() -> None:
    frame = frame_from_directions(np.array([0.0, 2.0, 0.0]), np.array([0.0, 1.0, 3.0]))
    np.testing.assert_allclose(frame, np.eye(3), atol=1e-15)  # y kept, z made orthogonal, x = y x z


def test_frames_recover_random_rotations_batched() -> None:
    rotations = Rotation.random(50, random_state=0).as_matrix()  # (50, 3, 3), columns = axes
    rng = np.random.default_rng(1)
    y = rotations[:, :, 1] * rng.uniform(0.1, 10.0, (50, 1))
    hint = rotations[:, :, 2] + rng.normal(0, 1.0, (50, 1)) * rotations[:, :, 1]  # z tilted towards y
    np.testing.assert_allclose(frame_from_directions(y, hint), rotations, atol=1e-12)


def test_dtype_is_kept() -> None:
    y, z = np.array([0, 1, 0], np.float32), np.array([0, 0, 1], np.float32)
    assert frame_from_directions(y, z).dtype == np.float32
    assert frame_from_directions(np.array([0, 1, 0]), np.array([0, 0, 1])).dtype == np.float64


@pytest.mark.parametrize("y, hint, message", [
    ([0, 1, 0], [0, -3, 0], "parallel"),
    ([0, 1, 0], [0, 1, 1e-9], "parallel"),
    ([0, 0, 0], [0, 0, 1], "zero"),
    ([0, 1, 0], [0, 0, 0], "zero"),
    ([0, np.nan, 0], [0, 0, 1], "finite"),
    ([0, 1], [0, 0, 1], r"\(\.\.\., 3\)"),
])
def test_degenerate_directions_are_refused(y, hint, message) -> None:
    with pytest.raises(ValueError, match=message):
        frame_from_directions(np.array(y, float), np.array(hint, float))


def test_normalize_gives_unit_vectors_and_keeps_zero_vectors() -> None:
    v = np.array([[3.0, 0.0, 4.0], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(normalize(v), [[0.6, 0.0, 0.8], [0.0, 0.0, 0.0]])
