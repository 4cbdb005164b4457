"""Zhang et al., ICCV 2021: interacting two-hand 3D pose and shape from one RGB image.

A re-implementation whose state_dicts equal the authors' two releases (v1
``BaowenZ/Two-Hand-Shape-Pose`` ``model.pts``; v2 ``iscas3dv/Two-Hand-Shape-Pose_v2``
``snapshot_99.pth.tar``), so their licence-gated checkpoints (put in ``weights/`` by the user)
load strictly. No code of theirs is used; see ``../shared/iccv21/ARCHITECTURE.md`` for the facts.

Modules: :mod:`.network` (the network), :mod:`.mano_layers` (the two MANO layers),
:mod:`.checkpoint` (build / load / save / validate), :mod:`.preprocess` (crops), :mod:`.evidence`
(which of the two returned hands are there; the registration self-check), :mod:`.estimator`
(photos in, :class:`~handpose.prediction.HandPrediction` out, batched, on CPU or CUDA).
"""
from handpose.models.iccv21.checkpoint import (
    CHECKPOINT_FILES,
    CheckpointError,
    CheckpointInfo,
    build_iccv21,
    load_iccv21,
    read_state_dict,
    save_iccv21,
    validate_checkpoint,
)
from handpose.models.iccv21.estimator import (
    ICCV21Estimator,
    ICCV21Options,
    find_checkpoint,
    hands_from_output,
    place_left_hand,
    resolve_device,
)
from handpose.models.iccv21.evidence import HandEvidence, hand_evidence, registration_residual
from handpose.models.iccv21.mano_layers import fill_mano_pair, has_mano_data
from handpose.models.iccv21.network import ICCV21Net, ICCV21Output

__all__ = [
    "CHECKPOINT_FILES",
    "CheckpointError",
    "CheckpointInfo",
    "HandEvidence",
    "ICCV21Estimator",
    "ICCV21Net",
    "ICCV21Options",
    "ICCV21Output",
    "build_iccv21",
    "fill_mano_pair",
    "find_checkpoint",
    "hand_evidence",
    "hands_from_output",
    "has_mano_data",
    "load_iccv21",
    "place_left_hand",
    "read_state_dict",
    "registration_residual",
    "resolve_device",
    "save_iccv21",
    "validate_checkpoint",
]
