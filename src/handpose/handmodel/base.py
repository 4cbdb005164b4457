"""The hand-model interface: :class:`HandModel` (a stateless ``torch.nn.Module``: buffers only,
inputs per call, like smplx's ``*Layer``) and its output :class:`HandModelOutput`; numpy adapters
(:func:`pose_model`, :func:`skinning_weights`).

Frame and units: see :mod:`handpose.handmodel`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

SIDES = ("right", "left")


@dataclass
class HandModelOutput:
    """Output of a :class:`HandModel`.

    Attributes:
        vertices: ``(B, V, 3)`` mm; ``None`` when the model was called with
            ``with_vertices=False`` (keypoints only, e.g. inside a fitting loop).
        keypoints: ``(B, 21, 3)`` mm, course order (:mod:`handpose.keypoints`).
        joints: ``(B, K, 3)`` mm, the model's own skeleton joints (open hand: the 20 bone heads;
            MANO: its 16 joints), posed.
    """

    vertices: torch.Tensor | None
    keypoints: torch.Tensor
    joints: torch.Tensor | None = None


class HandModel(torch.nn.Module):
    """One articulated hand model (see the module docstring for the frame and units).

    Attributes:
        kind: ``"open"`` or ``"mano"``.
        side: ``"right"`` or ``"left"``.
        num_pose: length of the pose vector (15 joints x 3 axis-angle components).
        num_shape: length of the shape vector, in unit-variance coordinates (MANO's betas, the open
            hand's principal components and proportions): each component is ``N(0, 1)`` a priori.
        num_proportions: how many of the shape components, the last ones, are proportions (local
            bone lengths and joint offsets, :func:`proportion_directions`) rather than components
            of overall hand shape; 0 for MANO.
        faces: ``(F, 3)`` long triangle indices, counter-clockwise seen from outside.
    """

    kind: str
    side: str
    num_pose: int
    num_shape: int
    num_proportions: int = 0
    faces: torch.Tensor

    @property
    def num_vertices(self) -> int:
        return int(self.faces.max()) + 1

    def forward(
        self,
        pose: torch.Tensor | None = None,
        shape: torch.Tensor | None = None,
        global_orient: torch.Tensor | None = None,
        transl: torch.Tensor | None = None,
        with_vertices: bool = True,
    ) -> HandModelOutput:
        """Pose and shape the hand.

        Args:
            pose: ``(B, num_pose)`` articulation; ``None``: the rest (mean) pose.
            shape: ``(B, num_shape)``; ``None``: the mean shape.
            global_orient: ``(B, 3)`` axis-angle rotation about the wrist; ``None``: identity.
            transl: ``(B, 3)`` mm translation applied last; ``None``: zero.
            with_vertices: ``False`` skips the mesh (``vertices = None``) where the model can
                compute its keypoints without it: the same keypoints, much cheaper (fitting loops).
        """
        raise NotImplementedError

    def pose_limits(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(num_pose,)`` lower and upper bounds of each pose component, radians."""
        raise NotImplementedError

    def pose_prior(self, pose: torch.Tensor) -> torch.Tensor:
        """``(B,)`` penalty of ``pose`` ``(B, num_pose)``, zero at the rest pose."""
        raise NotImplementedError

    def _reference(self) -> torch.Tensor:
        return next(b for b in self.buffers() if b.is_floating_point())

    def check_pose(self, pose: torch.Tensor) -> torch.Tensor:
        """``pose`` itself if it is a ``(B, num_pose)`` tensor, else a ``ValueError``."""
        if not torch.is_tensor(pose) or pose.ndim != 2 or pose.shape[1] != self.num_pose:
            got = tuple(pose.shape) if torch.is_tensor(pose) else type(pose).__name__
            raise ValueError(f"pose must be a (B, {self.num_pose}) tensor, got {got}")
        return pose

    def batch_inputs(
        self,
        pose: torch.Tensor | None,
        shape: torch.Tensor | None,
        global_orient: torch.Tensor | None,
        transl: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Validate the inputs and fill the missing ones with zeros of the common batch size.

        Returns ``(pose (B, num_pose), shape (B, num_shape), global_orient (B, 3), transl (B, 3))``
        in the model's dtype and device.
        """
        ref = self._reference()
        widths = {"pose": self.num_pose, "shape": self.num_shape, "global_orient": 3, "transl": 3}
        given = {"pose": pose, "shape": shape, "global_orient": global_orient, "transl": transl}
        sizes = set()
        for name, value in given.items():
            if value is None:
                continue
            if not torch.is_tensor(value):
                raise ValueError(f"{name} must be a torch tensor, got {type(value).__name__}")
            if value.ndim != 2 or value.shape[1] != widths[name]:
                raise ValueError(f"{name} must have shape (B, {widths[name]}), got {tuple(value.shape)}")
            sizes.add(value.shape[0])
        if len(sizes) > 1:
            raise ValueError(f"inputs disagree on the batch size: {sorted(sizes)}")
        batch = sizes.pop() if sizes else 1
        filled = [
            ref.new_zeros(batch, widths[name]) if value is None else value.to(ref)
            for name, value in given.items()
        ]
        return filled[0], filled[1], filled[2], filled[3]


# ---------------------------------------------------------------------------------------------
# Posing a model with numpy arrays (torch stays inside)
# ---------------------------------------------------------------------------------------------
@dataclass
class PosedModel:
    """Output of :func:`pose_model`.

    Attributes:
        vertices: ``(N, V, 3)`` mm.
        keypoints: ``(N, 21, 3)`` mm, course order.
        joints: ``(N, K, 3)`` mm, the model's own skeleton joints (open hand: the 20 bone heads).
        faces: ``(F, 3)``.
    """

    vertices: np.ndarray
    keypoints: np.ndarray
    joints: np.ndarray
    faces: np.ndarray


def pose_model(model: "HandModel", pose: np.ndarray | None = None, shape: np.ndarray | None = None,
               global_orient: np.ndarray | None = None) -> PosedModel:
    """Evaluate ``model`` on ``N`` poses / shapes given as numpy arrays (torch stays inside).

    Args:
        pose: ``(N, num_pose)`` or ``(num_pose,)``; ``None``: rest pose.
        shape: ``(N, num_shape)`` or ``(num_shape,)``; ``None``: mean shape.
        global_orient: ``(N, 3)`` or ``(3,)`` axis-angle; ``None``: identity.
    """
    given = {"pose": pose, "shape": shape, "global_orient": global_orient}
    widths = {"pose": model.num_pose, "shape": model.num_shape, "global_orient": 3}
    tensors = {}
    for name, value in given.items():
        if value is None:
            continue
        value = np.asarray(value, dtype=np.float64)
        value = value[None] if value.ndim == 1 else value
        if value.ndim != 2 or value.shape[1] != widths[name]:
            raise ValueError(f"{name} must be (N, {widths[name]}) or ({widths[name]},), got {value.shape}")
        tensors[name] = torch.as_tensor(value)  # the model casts inputs to its dtype
    sizes = {len(v) for v in tensors.values()}
    if len(sizes) > 1:
        # broadcast single rows to the common batch
        n = max(sizes)
        if any(len(v) not in (1, n) for v in tensors.values()):
            raise ValueError(f"inputs disagree on N: {sorted(sizes)}")
        tensors = {k: v.expand(n, -1) for k, v in tensors.items()}
    with torch.no_grad():
        out = model(**tensors)
    joints = out.joints if out.joints is not None else out.keypoints
    return PosedModel(out.vertices.double().numpy(), out.keypoints.double().numpy(), joints.double().numpy(),
                     model.faces.numpy().copy())


def skinning_weights(model: "HandModel") -> np.ndarray:
    """``(V, K)`` linear blend skinning weights ``W`` of a hand model (rows sum to 1): the open
    hand's per-bone weights, or MANO's ``lbs_weights``."""
    weights = getattr(model, "weights", None)
    if not torch.is_tensor(weights):
        weights = getattr(getattr(model, "layer", None), "lbs_weights", None)
    if not torch.is_tensor(weights):
        raise ValueError(f"{type(model).__name__} exposes no skinning weights")
    return weights.detach().double().numpy().copy()
