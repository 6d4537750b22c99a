"""Qualcomm's own on-device models from ``qai-hub-models``, composed from the layers vendored in the wheel.

Qualcomm publishes measured latencies for these networks on many Snapdragon chips, so they are
ground truth the roofline can be calibrated against; and they are unlike the classification
families (tiny face/foot detectors at VGA resolution, a grouped-conv attribute net, a YOLO-style
detector with in-graph box decoding, an RRDB super-resolution trunk). Their layer files import only
torch, but each ``model.py`` pulls in Qualcomm's hub machinery, which does not import offline. So we
load the layer files by path and compose them here exactly as each model class's ``__init__`` and
``forward`` do, keeping the in-graph pre- and post-processing, because that is the graph Qualcomm
profiled. Weights are random, as everywhere in the zoo.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from copy import deepcopy
from types import ModuleType
from typing import Any

import torch
from torch import nn

from hwnas.hardware.device_data import wheel_module


@functools.cache
def layers(model_id: str) -> ModuleType:
    """``models/<model_id>/layers.py`` of the wheel, loaded once under a private module name."""
    return wheel_module(f"models/{model_id}/layers.py", f"hwnas_qcom_{model_id}_layers")


@functools.cache
def rrdbnet_arch() -> ModuleType:
    """The vendored basicsr ``rrdbnet_arch``; its absolute import of ``arch_util`` is served from the file.

    ``arch_util`` is registered under the dotted name only while the file executes, so the stub never
    outlives the load and never hides a real ``qai_hub_models`` should one be importable.
    """
    archs = "extern/basicsr/archs"
    dotted = "qai_hub_models.extern.basicsr.archs.arch_util"
    util = wheel_module(f"{archs}/arch_util.py", "hwnas_qcom_arch_util")
    owned = dotted not in sys.modules
    if owned:
        sys.modules[dotted] = util
    try:
        return wheel_module(f"{archs}/rrdbnet_arch.py", "hwnas_qcom_rrdbnet_arch")
    finally:
        if owned:
            sys.modules.pop(dotted, None)


class FaceDetLite(nn.Module):
    """``FaceDetLite()`` as ``from_pretrained`` builds it: grey input, SE backbone, phase "train"."""

    def __init__(self, wide: int = 32) -> None:
        super().__init__()
        lay = layers("face_det_lite")
        self.bb = lay.Mbv3SmallFast("relu", False, True)
        c1, c2 = self.bb.uplayer_shape
        self.conv3 = lay.CBAModule(
            self.bb.output_channels, wide, kernel_size=1, stride=1, padding=0, bias=False
        )
        self.connect1 = lay.CBAModule(c1, wide, kernel_size=1)
        self.connect2 = lay.CBAModule(c2, wide, kernel_size=1)
        self.up0 = lay.UpModule(wide, wide, kernel_size=2, stride=2, mode="UCBA")
        self.up1 = lay.UpModule(wide, wide, kernel_size=2, stride=2, mode="UCBA")
        self.detect = lay.DetectModule(wide)
        self.center = lay.HeadModule(wide, 1)
        self.box = lay.HeadModule(wide, 4)
        self.landmark = lay.HeadModule(wide, 10)
        # Built but unused in forward; kept so the parameter count matches Qualcomm's.
        self.bridge = nn.Conv2d(wide * 2, wide, kernel_size=1, bias=False)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s8_, s16_, s32_ = self.bb((image - 0.442) / 0.280)
        s16 = self.up0(self.conv3(s32_)) + self.connect2(s16_)
        s8 = self.up1(s16) + self.connect1(s8_)
        x = self.detect(s8)
        return self.center(x), self.box(x), self.landmark(x)


class FootTrackNet(nn.Module):
    """``FootTrackNet()`` defaults: RGB in [0, 1], rescaled and normalised by a 1x1 conv and BN in-graph."""

    def __init__(self, wide: int = 64, n_lmk: int = 17) -> None:
        super().__init__()
        lay = layers("foot_track_net")
        self.conv_layer = nn.Conv2d(3, 3, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(3)
        self.bb = lay.Mbv3SmallFast("relu", True)
        c0, c1, c2 = self.bb.uplayer_shape
        self.conv3 = lay.CBAModule(
            self.bb.output_channels, wide, kernel_size=1, stride=1, padding=0, bias=False
        )
        self.connect0 = lay.CBAModule(c0, wide, kernel_size=1)
        self.connect1 = lay.CBAModule(c1, wide, kernel_size=1)
        self.connect2 = lay.CBAModule(c2, wide, kernel_size=1)
        self.ups = nn.ModuleList(
            lay.UpModule(wide, wide, kernel_size=2, stride=2, mode="UCBA") for _ in range(3)
        )
        self.detect = lay.DetectModule(wide)
        outs = [1, 4, 1, 4, 1, 4, 2 * n_lmk, n_lmk]  # heatmap/box x3, landmark, visibility
        self.heads = nn.ModuleList(lay.HeadModule(wide, c, has_ext=True) for c in outs)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.bn2(self.conv_layer(x * 255.0 * 1.0))
        s4, s8, s16, s32 = self.bb(x)
        s16 = self.ups[0](self.conv3(s32)) + self.connect2(s16)
        s8 = self.ups[1](s16) + self.connect1(s8)
        s4 = self.ups[2](s8) + self.connect0(s4)
        x = self.detect(s4)
        h = [head(x) for head in self.heads]
        heatmap = torch.cat((h[0].sigmoid(), h[2].sigmoid(), h[4].sigmoid()), dim=1)
        return heatmap, torch.cat((h[1], h[3], h[5]), dim=1), h[6], h[7].sigmoid()


class _AttribBranch(nn.Module):
    """One binary attribute head of FaceAttribNet: stride-8 and stride-16 features fused, pooled, linear."""

    def __init__(self, lay: ModuleType, c: int, group_size: int = 32) -> None:
        super().__init__()
        conv = lay.Conv2dBlock
        self.bran1_gconv = conv(
            c * 4, c * 2, 3, padding=1, stride=2, group=c * 4 // group_size, norm="none", activ="none"
        )
        self.bran1_conv = conv(c * 2, c * 2, 1, padding=0, stride=1, group=1, norm="bn", activ="prelu")
        self.bran2_gconv = conv(
            c * 10, c * 5, 3, padding=1, stride=2, group=c * 10 // group_size, norm="none", activ="none"
        )
        self.bran2_conv = conv(c * 5, c * 2, 1, padding=0, stride=1, group=1, norm="bn", activ="prelu")
        self.ave = nn.AvgPool2d(kernel_size=4, stride=1)
        self.cls = nn.Linear(c * 2, 2)

    def forward(self, fea3: torch.Tensor, fea4: torch.Tensor) -> torch.Tensor:
        a = torch.cat((self.bran1_conv(self.bran1_gconv(fea3)), fea4), dim=1)
        return self.cls(self.ave(self.bran2_conv(self.bran2_gconv(a))).flatten(start_dim=1))


class FaceAttribNet(nn.Module):
    """``FaceAttribNet(64, [2, 6, 3])`` with all five attributes; outputs the "present" probabilities."""

    def __init__(self, chan: int = 64, blocks: tuple[int, ...] = (2, 6, 3)) -> None:
        super().__init__()
        lay = layers("face_attrib_net")
        self.head = lay.HeadBlock(chan)
        stages, c = [], chan
        for n in blocks:
            stages.append(
                nn.Sequential(lay.DownsampleBlock(c), *[lay.NormalBlock(2 * c) for _ in range(n - 1)])
            )
            c *= 2
        self.main_module = nn.ModuleList(stages)
        # Order of Qualcomm's stack: left eye, right eye, eyeglasses, face mask, sunglasses.
        self.branches = nn.ModuleList(_AttribBranch(lay, chan) for _ in range(5))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        fea2 = self.main_module[0](self.head((image - 0.5) / 0.50196078))
        fea3 = self.main_module[1](fea2)
        fea4 = self.main_module[2](fea3)
        logit = torch.stack([b(fea3, fea4) for b in self.branches], dim=1)
        return torch.nn.functional.softmax(logit, dim=2)[:, :, 1]


_GEAR_ANCHORS = [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]]
_GEAR_CFG: dict[str, Any] = {
    "nc": 2, "depth_multiple": 0.33, "width_multiple": 0.5, "anchors": _GEAR_ANCHORS,
    "backbone": [
        [-1, 1, "FusedConvBatchNorm", [64, 6, 2, 2]], [-1, 1, "FusedConvBatchNorm", [128, 3, 2]],
        [-1, 3, "DoubleBlazeBlock", [128]], [-1, 1, "FusedConvBatchNorm", [256, 3, 2]],
        [-1, 3, "DoubleBlazeBlock", [256]], [-1, 1, "FusedConvBatchNorm", [512, 3, 2]],
        [-1, 9, "DoubleBlazeBlock", [512]], [-1, 1, "FusedConvBatchNorm", [1024, 3, 2]],
        [-1, 3, "DoubleBlazeBlock", [1024]], [-1, 1, "FusedConvBatchNorm", [1024, 3, 1]],
    ],
    "head": [
        [-1, 1, "FusedConvBatchNorm", [512, 1, 1]], [-1, 1, "nn.Upsample", [None, 2, "nearest"]],
        [[-1, 6], 1, "Concat", [1]], [-1, 3, "DoubleBlazeBlock", [512]],
        [-1, 1, "FusedConvBatchNorm", [256, 1, 1]], [-1, 1, "nn.Upsample", [None, 2, "nearest"]],
        [[-1, 4], 1, "Concat", [1]], [-1, 3, "DoubleBlazeBlock", [256]],
        [-1, 1, "FusedConvBatchNorm", [256, 3, 2]], [[-1, 14], 1, "Concat", [1]],
        [-1, 3, "DoubleBlazeBlock", [512]], [-1, 1, "FusedConvBatchNorm", [512, 3, 2]],
        [[-1, 10], 1, "Concat", [1]], [-1, 3, "DoubleBlazeBlock", [1024]],
        [[17, 20, 23], 1, "Detect", ["nc", "anchors"]],
    ],
}  # fmt: skip


def _decode_scale(out: torch.Tensor, anchors: torch.Tensor, stride: float) -> torch.Tensor:
    """YOLOv5 box decoding of one scale, op for op as ``GearGuardNet._decode_scale`` (it is in the graph)."""
    out = out.permute(0, 2, 3, 1)
    batch, ny, nx, _ = out.shape
    pred = out.reshape(batch, ny, nx, 3, -1)
    num_classes = pred.shape[-1] - 5
    gy, gx = torch.meshgrid(torch.arange(ny), torch.arange(nx), indexing="ij")
    gx = gx.unsqueeze(0).unsqueeze(-1).expand(batch, -1, -1, 3).reshape(batch, -1)
    gy = gy.unsqueeze(0).unsqueeze(-1).expand(batch, -1, -1, 3).reshape(batch, -1)
    obj = pred[..., 4].sigmoid().reshape(batch, -1)
    cls = pred[..., 5:].sigmoid().reshape(batch, -1, num_classes)
    flat = pred.reshape(batch, -1, pred.shape[-1])
    idx = torch.arange(3).unsqueeze(0).unsqueeze(0).expand(ny, nx, -1).reshape(-1)
    anc = anchors[idx].unsqueeze(0).expand(batch, -1, -1)
    bx = (flat[..., 0].sigmoid() * 2 - 0.5 + gx) * stride
    by = (flat[..., 1].sigmoid() * 2 - 0.5 + gy) * stride
    bw = 4 * flat[..., 2].sigmoid() ** 2 * anc[..., 0]
    bh = 4 * flat[..., 3].sigmoid() ** 2 * anc[..., 1]
    return torch.cat([torch.stack([bx, by, bw, bh, obj], dim=2), cls], dim=2)


class GearGuardNet(nn.Module):
    """The PPE detector: the wheel's config-built YOLO-style net, then decoding and score/class selection."""

    def __init__(self) -> None:
        super().__init__()
        self.model, self.save = layers("gear_guard_net").build_gear_guard_net_model(
            deepcopy(_GEAR_CFG), ch=[3]
        )
        self.register_buffer("anchors", torch.tensor(_GEAR_ANCHORS, dtype=torch.float32).view(3, 3, 2))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        y: list[Any] = []
        for m in self.model:
            if m.f != -1:
                x = y[m.f] if isinstance(m.f, int) else [x if j == -1 else y[j] for j in m.f]
            x = m(x)
            y.append(x if m.i in self.save else None)
        pred = torch.cat([_decode_scale(o, self.anchors[i], 8.0 * 2**i) for i, o in enumerate(x)], dim=1)
        centre, half = pred[:, :, :2], pred[:, :, 2:4] * 0.5
        boxes = torch.cat((centre - half, centre + half), dim=-1)
        scores, class_idx = torch.max(pred[:, :, 5:] * pred[:, :, 4:5], -1, keepdim=False)
        return boxes, scores, class_idx.to(torch.uint8)


class RealESRGANx4plus(nn.Module):
    """basicsr ``RRDBNet`` (23 RRDB blocks, 64 features, growth 32, x4) with the output clamp Qualcomm adds."""

    def __init__(self) -> None:
        super().__init__()
        self.model = rrdbnet_arch().RRDBNet(
            num_in_ch=3, num_out_ch=3, num_feat=64, num_block=23, num_grow_ch=32, scale=4
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model(image).clamp(0, 1)


BUILDERS: dict[str, Callable[[], nn.Module]] = {
    "face_det_lite": FaceDetLite,
    "foot_track_net": FootTrackNet,
    "face_attrib_net": FaceAttribNet,
    "gear_guard_net": GearGuardNet,
    "real_esrgan_x4plus": RealESRGANx4plus,
}
