"""The ICCV 2021 two-hand network (Zhang et al., "Interacting two-hand 3D pose and shape
reconstruction from single color image"), written from the facts in ``../shared/iccv21/ARCHITECTURE.md``.

Module and parameter names reproduce the authors' state_dicts exactly (both releases), so their
checkpoints load strictly. Data flow for a ``(B, 3, 256, 256)`` RGB image in ``[0, 1]``::

    heatmap_predictor (InterNet: BN ResNet-50 + two volumetric heads)
        -> heatmap (B, 42, 64, 64, 64)  raw (~0..255), right hand = joints 0-20, left = 21-41
    heatmap -> xyc (B, 42, 3)        integer 2D argmax on the 64 grid + peak value
            -> attention (B, 2, 64, 64)   max over each hand's 21*64 channels
            -> injected (B, 672, 32, 32)  heatmap[:, :, ::4, ::2, ::2]
    mesh_reg.base_net (BN-free ResNet-50, heatmap concatenated before layer3)
        -> features (B, 2048), layer2..4 maps
    stage 0: attention-pooled layer4 -> ManoBranch per hand -> MANO;  trans_branch(features) -> (B, 4)
    stages 1-3: layer4 / layer3 / layer2 masked by register_heatmap(xyc, previous joints)
        -> BN-free bottleneck -> [other hand's shape, pose, own shape, pose, features, trans]
        -> ManoBranch (absolute pose / shape, not residual) -> MANO
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from handpose.heatmap import ICCV21_SIGMA, register_heatmap
from handpose.keypoints import COURSE_FROM_MANO, NUM_KEYPOINTS
from handpose.models.iccv21.mano_layers import ManoOutput, Release, make_mano_pair
from handpose.models.iccv21.preprocess import INPUT_SIZE

HEATMAP_SIZE = 64  # InterNet's output_hm_shape = (64, 64, 64): depth, height, width
NUM_HANDS = 2
INJECTED_CHANNELS = NUM_HANDS * NUM_KEYPOINTS * HEATMAP_SIZE // 4  # 672
CASCADE_INPUT = 2048 + 2 * (10 + 48) + 4  # 2168
MANO_NEURONS = (512, 512, 512, 512)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESNET50_BLOCKS = (3, 4, 6, 3)


# ----------------------------------------------------------------------------- heatmap predictor
class Bottleneck(nn.Module):
    """torchvision's ResNet-50 bottleneck with BatchNorm (stride on the 3x3 conv)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


def _bn_layer(inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    downsample = None
    if stride != 1 or inplanes != planes * 4:
        downsample = nn.Sequential(nn.Conv2d(inplanes, planes * 4, 1, stride=stride, bias=False), nn.BatchNorm2d(planes * 4))
    layers = [Bottleneck(inplanes, planes, stride, downsample)]
    layers += [Bottleneck(planes * 4, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


class ResNet50Backbone(nn.Module):
    """torchvision ResNet-50 without avgpool / fc: ``(B, 3, 256, 256) -> (B, 2048, 8, 8)``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = _bn_layer(64, 64, RESNET50_BLOCKS[0], 1)
        self.layer2 = _bn_layer(256, 128, RESNET50_BLOCKS[1], 2)
        self.layer3 = _bn_layer(512, 256, RESNET50_BLOCKS[2], 2)
        self.layer4 = _bn_layer(1024, 512, RESNET50_BLOCKS[3], 2)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class BackboneNet(nn.Module):
    """InterNet's ``BackboneNet`` (holds the ResNet as ``resnet``)."""

    def __init__(self) -> None:
        super().__init__()
        self.resnet = ResNet50Backbone()

    def forward(self, x: Tensor) -> Tensor:
        return self.resnet(x)


def _deconv_head() -> nn.Sequential:
    """3 x [ConvTranspose2d(k4, s2, p1) + BN + ReLU]: 2048 -> 256 -> 256 -> 256, 8 -> 64 px."""
    layers: list[nn.Module] = []
    for cin in (2048, 256, 256):
        layers += [nn.ConvTranspose2d(cin, 256, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(256), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def _mlp(sizes: tuple[int, ...]) -> nn.Sequential:
    """Linear + ReLU between ``sizes``, no ReLU after the last Linear."""
    layers: list[nn.Module] = []
    for i, (cin, cout) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(cin, cout))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


@dataclass
class HeatmapOutput:
    """InterNet's outputs.

    Attributes:
        heatmap: ``(B, 42, 64, 64, 64)`` raw volumetric heatmaps (joint, depth, y, x); right 0-20.
        root_depth: ``(B, 1)`` soft-argmax of ``root_fc`` on the 64 depth bins (unused by the network).
        hand_type: ``(B, 2)`` sigmoid probabilities ``[right, left]`` present (unused by the network).
    """

    heatmap: Tensor
    root_depth: Tensor
    hand_type: Tensor


class PoseNet(nn.Module):
    """InterNet's PoseNet(21): two volumetric joint heads (right ``_1``, left ``_2``), root and hand-type."""

    def __init__(self, joint_num: int = NUM_KEYPOINTS) -> None:
        super().__init__()
        self.joint_num = joint_num
        self.joint_deconv_1 = _deconv_head()
        self.joint_conv_1 = nn.Sequential(nn.Conv2d(256, joint_num * HEATMAP_SIZE, 1))
        self.joint_deconv_2 = _deconv_head()
        self.joint_conv_2 = nn.Sequential(nn.Conv2d(256, joint_num * HEATMAP_SIZE, 1))
        self.root_fc = _mlp((2048, 512, HEATMAP_SIZE))
        self.hand_fc = _mlp((2048, 512, 2))

    def forward(self, img_feat: Tensor) -> HeatmapOutput:
        batch = img_feat.shape[0]
        shape = (batch, self.joint_num, HEATMAP_SIZE, HEATMAP_SIZE, HEATMAP_SIZE)
        right = self.joint_conv_1(self.joint_deconv_1(img_feat)).view(shape)
        left = self.joint_conv_2(self.joint_deconv_2(img_feat)).view(shape)
        pooled = img_feat.mean(dim=(2, 3))
        # root depth = sum_d d softmax(z)_d
        prob = F.softmax(self.root_fc(pooled), dim=1)
        bins = torch.arange(HEATMAP_SIZE, dtype=prob.dtype, device=prob.device)
        root_depth = (prob * bins).sum(dim=1, keepdim=True)
        hand_type = torch.sigmoid(self.hand_fc(pooled))
        return HeatmapOutput(torch.cat([right, left], dim=1), root_depth, hand_type)


class HeatmapPredictor(nn.Module):
    """InterNet (Moon et al., ECCV 2020): ``(B, 3, 256, 256)`` RGB in ``[0, 1]`` -> :class:`HeatmapOutput`."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone_net = BackboneNet()
        self.pose_net = PoseNet(NUM_KEYPOINTS)

    def forward(self, image: Tensor) -> HeatmapOutput:
        return self.pose_net(self.backbone_net(image))


# ----------------------------------------------------------------------------- mesh regressor
class PlainBottleneck(nn.Module):
    """BN-free bottleneck: 1x1 -> 3x3 (stride) -> 1x1, bias-free convs, identity or ``downsample``."""

    def __init__(self, inplanes: int, planes: int, outplanes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.conv3 = nn.Conv2d(planes, outplanes, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.conv1(x))
        out = self.relu(self.conv2(out))
        out = self.conv3(out)
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


def _plain_layer(inplanes: int, planes: int, blocks: int, stride: int, release: Release) -> nn.Sequential:
    # v1: downsample = Conv2d ; v2: downsample = Sequential(Conv2d, BatchNorm2d)
    conv = nn.Conv2d(inplanes, planes * 4, 1, stride=stride, bias=False)
    downsample = conv if release == "v1" else nn.Sequential(conv, nn.BatchNorm2d(planes * 4))
    layers = [PlainBottleneck(inplanes, planes, planes * 4, stride, downsample)]
    layers += [PlainBottleneck(planes * 4, planes, planes * 4) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


@dataclass
class EncoderOutput:
    """Mesh encoder outputs: ``features (B, 2048)`` and ``layer2 (B, 512, 32, 32)``,
    ``layer3 (B, 1024, 16, 16)``, ``layer4 (B, 2048, 8, 8)``."""

    features: Tensor
    layer2: Tensor
    layer3: Tensor
    layer4: Tensor


class MeshEncoder(nn.Module):
    """The mesh regressor's ResNet-50 (``resnet_anydim``): no BN in the blocks; v1 no BN at all and
    an unused ``fc`` (kept for the checkpoint), v2 a stem ``bn1`` and BN in ``downsample``.
    The injected heatmap (672 channels) is concatenated to layer2's output before layer3."""

    def __init__(self, release: Release) -> None:
        super().__init__()
        self.release = release
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64) if release == "v2" else None
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = _plain_layer(64, 64, RESNET50_BLOCKS[0], 1, release)
        self.layer2 = _plain_layer(256, 128, RESNET50_BLOCKS[1], 2, release)
        self.layer3 = _plain_layer(512 + INJECTED_CHANNELS, 256, RESNET50_BLOCKS[2], 2, release)
        self.layer4 = _plain_layer(1024, 512, RESNET50_BLOCKS[3], 2, release)
        # v1's resnet_anydim keeps torchvision's classifier: in the checkpoint, never called.
        self.fc = nn.Linear(2048, 1000) if release == "v1" else None

    def forward(self, x: Tensor, injected: Tensor) -> EncoderOutput:
        x = self.conv1(x)
        if self.bn1 is not None:
            x = self.bn1(x)
        x = self.maxpool(self.relu(x))
        layer2 = self.layer2(self.layer1(x))
        layer3 = self.layer3(torch.cat([layer2, injected], dim=1))
        layer4 = self.layer4(layer3)
        return EncoderOutput(layer4.mean(dim=(2, 3)), layer2, layer3, layer4)


class ManoBranch(nn.Module):
    """4 x (Linear + ReLU) -> ``pose_reg`` (48 axis-angle) and ``shape_reg`` (10 betas)."""

    def __init__(self, in_features: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for cin, cout in zip((in_features,) + MANO_NEURONS[:-1], MANO_NEURONS):
            layers += [nn.Linear(cin, cout), nn.ReLU(inplace=True)]
        self.base_layer = nn.Sequential(*layers)
        self.pose_reg = nn.Linear(MANO_NEURONS[-1], 48)
        self.shape_reg = nn.Sequential(nn.Linear(MANO_NEURONS[-1], 10))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(B, F)`` -> ``(pose (B, 48), shape (B, 10))``."""
        hidden = self.base_layer(x)
        return self.pose_reg(hidden), self.shape_reg(hidden)


class AbsoluteBranch(nn.Module):
    """Relative-transform branch: Linear(2048, 1024) + ReLU -> Linear(1024, 4) = ``[log s, dx, dy, dz]``."""

    def __init__(self) -> None:
        super().__init__()
        self.final_layer = nn.Linear(1024, 4)  # registered first, as in the authors' state_dict
        self.decoder = nn.Sequential(nn.Linear(2048, 1024), nn.ReLU(inplace=True))

    def forward(self, x: Tensor) -> Tensor:
        return self.final_layer(self.decoder(x))


def _cascade_extractor(inplanes: int, stride: int) -> PlainBottleneck:
    """BN-free bottleneck ``inplanes -> 2048`` at 8x8 (``downsample`` = strided 1x1 conv)."""
    downsample = nn.Conv2d(inplanes, 2048, 1, stride=stride, bias=False)
    return PlainBottleneck(inplanes, inplanes // 2, 2048, stride, downsample)


@dataclass
class HandStages:
    """One hand's MANO estimates at the 4 stages (initial + 3 refinements; ``[:, -1]`` is final).

    Attributes:
        vertices: ``(B, 4, 778, 3)`` mm.
        joints: ``(B, 4, 21, 3)`` mm, in the release's order and origin (see :class:`ManoOutput`).
        rest_joints: ``(B, 4, 21 | 16, 3)`` mm rest-pose joints.
        pose: ``(B, 4, 48)`` axis-angle; shape: ``(B, 4, 10)`` betas.
    """

    vertices: Tensor
    joints: Tensor
    rest_joints: Tensor
    pose: Tensor
    shape: Tensor


@dataclass
class _Estimate:
    pose: Tensor
    shape: Tensor
    mano: ManoOutput


def _stack(estimates: list[_Estimate]) -> HandStages:
    return HandStages(
        vertices=torch.stack([e.mano.vertices for e in estimates], dim=1),
        joints=torch.stack([e.mano.joints for e in estimates], dim=1),
        rest_joints=torch.stack([e.mano.rest_joints for e in estimates], dim=1),
        pose=torch.stack([e.pose for e in estimates], dim=1),
        shape=torch.stack([e.shape for e in estimates], dim=1),
    )


def heatmap_keypoints(heatmap: Tensor) -> Tensor:
    """Integer 2D argmax of volumetric heatmaps.

    Args:
        heatmap: ``(B, J, D, H, W)``.

    Returns:
        ``(B, J, 3)`` ``[x, y, c]``: column and row of the maximum over depth (integers, as
        floats) and the maximum value.
    """
    if heatmap.ndim != 5:
        raise ValueError(f"heatmap must be (B, J, D, H, W), got {tuple(heatmap.shape)}")
    batch, joints, _, height, width = heatmap.shape
    flat = heatmap.amax(dim=2).reshape(batch, joints, height * width)
    value, index = flat.max(dim=2)
    x = (index % width).to(heatmap.dtype)
    y = torch.div(index, width, rounding_mode="floor").to(heatmap.dtype)
    return torch.stack([x, y, value], dim=2)


def hand_attention(heatmap: Tensor) -> Tensor:
    """``(B, 42, D, H, W)`` -> ``(B, 2, H, W)``: max over each hand's ``21 * D`` channels (right first)."""
    batch, joints, depth, height, width = heatmap.shape
    flat = heatmap.reshape(batch, NUM_HANDS, joints // NUM_HANDS * depth, height, width)
    return flat.amax(dim=2)


def injected_heatmap(heatmap: Tensor) -> Tensor:
    """``(B, 42, 64, 64, 64) -> (B, 672, 32, 32)``: ``heatmap[:, :, ::4, ::2, ::2]``, channel ``j * 16 + d``."""
    sub = heatmap[:, :, ::4, ::2, ::2]
    return sub.reshape(sub.shape[0], -1, sub.shape[3], sub.shape[4])


def attention_pool(features: Tensor, attention: Tensor) -> Tensor:
    """``mean_{h,w}(features * nearest_resize(attention))``: ``(B, C, h, w), (B, 1, H, W) -> (B, C)``.

    Nearest resizing picks rows / columns ``0, H/h, 2H/h, ...`` (no averaging), as
    ``F.interpolate``'s default mode in the authors' code.
    """
    mask = F.interpolate(attention, size=features.shape[-2:], mode="nearest")
    return (features * mask).mean(dim=(2, 3))


class MeshRegNet(nn.Module):
    """The mesh regressor: encoder, attention, per-hand MANO branches, ``trans``, 3 cascades."""

    def __init__(self, release: Release) -> None:
        super().__init__()
        self.release = release
        self.base_net = MeshEncoder(release)
        self.mano_layer = make_mano_pair(release)
        self.left_mano_branch = ManoBranch(2048)
        self.right_mano_branch = ManoBranch(2048)
        self.trans_branch = AbsoluteBranch()
        self.cascaded_left_mano_branch_list = nn.ModuleList([ManoBranch(CASCADE_INPUT) for _ in range(3)])
        self.cascaded_right_mano_branch_list = nn.ModuleList([ManoBranch(CASCADE_INPUT) for _ in range(3)])
        # stage i reads layer{4-i}: (2048, 8x8), (1024, 16x16), (512, 32x32) -> 2048 x 8 x 8
        self.cascaded_left_feature_extractor_list = nn.ModuleList([_cascade_extractor(c, s) for c, s in ((2048, 1), (1024, 2), (512, 4))])
        self.cascaded_right_feature_extractor_list = nn.ModuleList([_cascade_extractor(c, s) for c, s in ((2048, 1), (1024, 2), (512, 4))])

    def _estimate(self, branch: ManoBranch, side: str, x: Tensor) -> _Estimate:
        pose, shape = branch(x)
        return _Estimate(pose, shape, self.mano_layer[side](pose, shape))

    def forward(self, image: Tensor, heatmap: Tensor, xyc: Tensor, attention: Tensor) -> tuple[HandStages, HandStages, Tensor]:
        """Args: ``image (B, 3, 256, 256)`` normalised for the release, ``heatmap (B, 42, 64, 64, 64)``,
        ``xyc (B, 42, 3)``, ``attention (B, 2, 64, 64)``. Returns ``(right, left, trans (B, 4))``."""
        enc = self.base_net(image, injected_heatmap(heatmap))
        right = [self._estimate(self.right_mano_branch, "r", attention_pool(enc.layer4, attention[:, 0:1]))]
        left = [self._estimate(self.left_mano_branch, "l", attention_pool(enc.layer4, attention[:, 1:2]))]
        trans = self.trans_branch(enc.features)
        xyc_right, xyc_left = xyc[:, :NUM_KEYPOINTS], xyc[:, NUM_KEYPOINTS:]
        for i, fmap in enumerate((enc.layer4, enc.layer3, enc.layer2)):
            size = fmap.shape[-1]
            r, l = right[-1], left[-1]
            # The heatmap channel j is paired with the release's joint j (v1 course, v2 MANO order).
            # mask = 1 - prod_j (1 - exp(-|x - p_j|^2 / 3)), p_j = (s J_j + T) size / 64, (s, T) detached
            mask_r = register_heatmap(xyc_right, r.mano.joints, HEATMAP_SIZE, size, sigma=ICCV21_SIGMA, detach_fit=True)
            mask_l = register_heatmap(xyc_left, l.mano.joints, HEATMAP_SIZE, size, sigma=ICCV21_SIGMA, detach_fit=True)
            feat_r = self.cascaded_right_feature_extractor_list[i](fmap * mask_r[:, None]).mean(dim=(2, 3))
            feat_l = self.cascaded_left_feature_extractor_list[i](fmap * mask_l[:, None]).mean(dim=(2, 3))
            left_in = torch.cat([r.shape, r.pose, l.shape, l.pose, feat_l, trans], dim=1)
            right_in = torch.cat([l.shape, l.pose, r.shape, r.pose, feat_r, trans], dim=1)
            left.append(self._estimate(self.cascaded_left_mano_branch_list[i], "l", left_in))
            right.append(self._estimate(self.cascaded_right_mano_branch_list[i], "r", right_in))
        return _stack(right), _stack(left), trans


@dataclass
class ICCV21Output:
    """Everything the network computes for a batch.

    Attributes:
        right, left: :class:`HandStages` (4 stages; ``[:, -1]`` is the final estimate).
        trans: ``(B, 4)`` ``[log s, dx, dy, dz]``: left-in-right-frame placement of the
            length-normalised, middle-MCP-centred hands, ``left_r = (left_n + d) * exp(s)``.
        heatmap_output: :class:`HeatmapOutput` of InterNet.
        xyc: ``(B, 42, 3)`` heatmap argmax ``[x, y, peak]`` on the 64 grid (right 0-20, left 21-41).
        attention: ``(B, 2, 64, 64)`` per-hand attention maps ``[right, left]``.
        course_from_native: index map from the release's joint order to the course order.
    """

    right: HandStages
    left: HandStages
    trans: Tensor
    heatmap_output: HeatmapOutput
    xyc: Tensor
    attention: Tensor
    course_from_native: tuple[int, ...]


class ICCV21Net(nn.Module):
    """The whole network; ``state_dict()`` keys equal the authors' (``mesh_reg.*``, ``heatmap_predictor.*``).

    Args:
        release: ``"v2"`` (iscas3dv/Two-Hand-Shape-Pose_v2) or ``"v1"`` (BaowenZ/Two-Hand-Shape-Pose).
    """

    def __init__(self, release: Release = "v2") -> None:
        super().__init__()
        if release not in ("v1", "v2"):
            raise ValueError(f"release must be 'v1' or 'v2', got {release!r}")
        self.release = release
        self.mesh_reg = MeshRegNet(release)
        self.heatmap_predictor = HeatmapPredictor()

    @property
    def course_from_native(self) -> tuple[int, ...]:
        """v1 outputs joints in the course order already, v2 in MANO's native order."""
        return tuple(range(NUM_KEYPOINTS)) if self.release == "v1" else COURSE_FROM_MANO

    def normalize(self, image: Tensor) -> Tensor:
        """The mesh encoder's input: v1 ``x - 0.5``; v2 ImageNet ``(x - mean) / std``."""
        if self.release == "v1":
            return image - 0.5
        mean = torch.tensor(IMAGENET_MEAN, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
        return (image - mean) / std

    def forward(self, image: Tensor) -> ICCV21Output:
        """``image``: ``(B, 3, 256, 256)`` RGB in ``[0, 1]`` (InterNet's input, unnormalised)."""
        if image.ndim != 4 or tuple(image.shape[1:]) != (3, INPUT_SIZE, INPUT_SIZE):
            raise ValueError(f"image must be (B, 3, {INPUT_SIZE}, {INPUT_SIZE}), got {tuple(image.shape)}")
        hm = self.heatmap_predictor(image)
        xyc = heatmap_keypoints(hm.heatmap)
        attention = hand_attention(hm.heatmap)
        right, left, trans = self.mesh_reg(self.normalize(image), hm.heatmap, xyc, attention)
        return ICCV21Output(right, left, trans, hm, xyc, attention, self.course_from_native)
