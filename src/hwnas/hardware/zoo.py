"""ONNX graphs, with random weights, of the ``qai-hub-models`` models whose latency Qualcomm published.

Why: fitting and checking the offline estimate needs, for each measured model, the graph it measured.
Latency does not depend on trained weights, so every model here is built offline with random weights
at the input shape AI Hub profiled it with (the model's ``get_input_spec``).

Most entries are the very torchvision or timm builders ``qai-hub-models`` calls. Three are the same
published design from another library (``SOURCES`` says which): ``mobilenet_v2`` (torchvision's, Qualcomm
uses a vendored copy of the paper's reference code), ``mobilenet_v4`` and ``efficientnet_lite4`` (timm's,
Qualcomm uses vendored repositories); their graphs may differ in details such as padding. Qualcomm's
own models are composed from the layer files vendored in the wheel (``zoo_qcom``); models whose sources
``qai-hub-models`` clones at run time are written out from their published designs (``zoo_unet``,
``zoo_seg``, ``zoo_sr``, ``zoo_ffnet``, ``zoo_dense``); ``LOCAL_BUILDERS`` maps their builder prefixes.

How the builders are found: the ``qai-hub-models`` models listed in ``ZOO`` are torchvision
architectures. PyPI's ``torchvision`` wheels load their C++ operators (NMS, RoI align) only against
the torch build they were compiled with, and importing the ``torchvision`` package registers those
operators, so ``import torchvision`` fails next to this project's CPU torch. The model builders
themselves are pure Python and need none of those operators: ``torchvision_models()`` loads
``torchvision.models`` from the pinned wheel installed with ``--no-deps`` beside the device data
(``hwnas.hardware.device_data.data_root``) *without* running ``torchvision/__init__.py``. This keeps
the exact architectures Qualcomm measured (not re-implementations that may drift) and leaves the
project's torch alone. ``timm`` (also ``--no-deps``, for DLA, Inception v4, Sequencer, MobileNet v4 and
EfficientNet-Lite) imports ``torchvision.transforms``, which loads through the same route.

``family`` groups models that share a design (ResNet 18/50/101 and Wide ResNet; the two ResNeXts; the
video ResNets), so cross-validation can hold a whole family out.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwnas.hardware.device_data import data_root
from hwnas.utils.errors import DataError


@dataclass(frozen=True)
class ZooModel:
    """One ``qai-hub-models`` model id, the torchvision builder that makes it and its profiled input."""

    model: str
    family: str
    task: str
    builder: str
    input_shape: tuple[int, ...]
    kwargs: tuple[tuple[str, Any], ...] = ()


_IMG = (1, 3, 224, 224)
ZOO: tuple[ZooModel, ...] = (
    ZooModel("resnet18", "resnet", "classification", "resnet18", _IMG),
    ZooModel("resnet50", "resnet", "classification", "resnet50", _IMG),
    ZooModel("resnet101", "resnet", "classification", "resnet101", _IMG),
    ZooModel("wideresnet50", "resnet", "classification", "wide_resnet50_2", _IMG),
    ZooModel("resnext50", "resnext", "classification", "resnext50_32x4d", _IMG),
    ZooModel("resnext101", "resnext", "classification", "resnext101_32x8d", _IMG),
    ZooModel("regnet", "regnet", "classification", "regnet_x_3_2gf", _IMG),
    ZooModel("regnet_y_800mf", "regnet", "classification", "regnet_y_800mf", _IMG),
    ZooModel("mobilenet_v2", "mobilenet_v2", "classification", "mobilenet_v2", _IMG),
    ZooModel("mobilenet_v3_large", "mobilenet_v3", "classification", "mobilenet_v3_large", _IMG),
    ZooModel("mobilenet_v3_small", "mobilenet_v3", "classification", "mobilenet_v3_small", _IMG),
    ZooModel("mnasnet05", "mnasnet", "classification", "mnasnet0_5", _IMG),
    ZooModel("efficientnet_b0", "efficientnet", "classification", "efficientnet_b0", _IMG),
    ZooModel("efficientnet_b4", "efficientnet", "classification", "efficientnet_b4", (1, 3, 380, 380)),
    ZooModel("efficientnet_v2_s", "efficientnet", "classification", "efficientnet_v2_s", (1, 3, 384, 384)),
    ZooModel("shufflenet_v2", "shufflenet", "classification", "shufflenet_v2_x0_5", _IMG),
    ZooModel("squeezenet1_1", "squeezenet", "classification", "squeezenet1_1", _IMG),
    ZooModel("densenet121", "densenet", "classification", "densenet121", _IMG),
    ZooModel("googlenet", "inception", "classification", "googlenet", _IMG, (("aux_logits", False),
                                                                             ("init_weights", True))),
    ZooModel("inception_v3", "inception", "classification", "inception_v3", _IMG, (("aux_logits", False),
                                                                                   ("init_weights", True))),
    ZooModel("convnext_tiny", "convnext", "classification", "convnext_tiny", _IMG),
    ZooModel("convnext_base", "convnext", "classification", "convnext_base", _IMG),
    ZooModel("vit", "vit", "classification", "vit_b_16", _IMG),
    ZooModel("swin_tiny", "swin", "classification", "swin_t", _IMG),
    ZooModel("swin_small", "swin", "classification", "swin_s", _IMG),
    ZooModel("swin_base", "swin", "classification", "swin_b", _IMG),
    ZooModel("dla102x", "dla", "classification", "timm:dla102x", _IMG),
    ZooModel("inception_v4", "inception", "classification", "timm:inception_v4", (1, 3, 299, 299)),
    ZooModel("sequencer2d", "sequencer", "classification", "timm:sequencer2d_s", _IMG),
    ZooModel("mobilenet_v4", "mobilenet_v4", "classification", "timm:mobilenetv4_conv_medium", _IMG),
    ZooModel("efficientnet_lite4", "efficientnet", "classification", "timm:efficientnet_lite4", (1, 3, 300, 300)),
    ZooModel("fcn_resnet50", "fcn", "segmentation", "segmentation.fcn_resnet50", (1, 3, 520, 520),
             (("aux_loss", False), ("weights_backbone", None))),
    ZooModel("unet_segmentation", "unet", "segmentation", "hwnas:unet", (1, 3, 640, 1280)),
    ZooModel("resnet_3d", "video_resnet", "video", "video.r3d_18", (1, 3, 16, 112, 112)),
    ZooModel("resnet_2plus1d", "video_resnet", "video", "video.r2plus1d_18", (1, 3, 16, 112, 112)),
    ZooModel("resnet_mixed", "video_resnet", "video", "video.mc3_18", (1, 3, 16, 112, 112)),
    ZooModel("dncnn", "dncnn", "denoising", "hwnas_sr:dncnn", (1, 1, 256, 256)),
    ZooModel("quicksrnetsmall", "quicksrnet", "super_resolution", "hwnas_sr:quicksrnetsmall", (1, 3, 128, 128)),
    ZooModel("quicksrnetmedium", "quicksrnet", "super_resolution", "hwnas_sr:quicksrnetmedium", (1, 3, 128, 128)),
    ZooModel("quicksrnetlarge", "quicksrnet", "super_resolution", "hwnas_sr:quicksrnetlarge", (1, 3, 128, 128)),
    ZooModel("srgan", "srgan", "super_resolution", "hwnas_sr:srgan", (1, 3, 128, 128)),
    ZooModel("real_esrgan_general_x4v3", "esrgan", "super_resolution", "hwnas_sr:real_esrgan_general_x4v3", (1, 3, 128, 128)),
    ZooModel("face_det_lite", "mbv3_small_det", "face", "hwnas_qcom:face_det_lite", (1, 1, 480, 640)),
    ZooModel("foot_track_net", "mbv3_small_det", "detection", "hwnas_qcom:foot_track_net", (1, 3, 480, 640)),
    ZooModel("face_attrib_net", "face_attrib_net", "face", "hwnas_qcom:face_attrib_net", (1, 3, 128, 128)),
    ZooModel("gear_guard_net", "gear_guard_net", "detection", "hwnas_qcom:gear_guard_net", (1, 3, 320, 192)),
    ZooModel("real_esrgan_x4plus", "srgan", "super_resolution", "hwnas_qcom:real_esrgan_x4plus", (1, 3, 128, 128)),
    ZooModel("deeplabv3_plus_mobilenet", "deeplab", "segmentation", "hwnas_seg:deeplabv3_plus_mobilenet", (1, 3, 513, 513)),
    ZooModel("pspnet", "pspnet", "segmentation", "hwnas_seg:pspnet", (1, 3, 473, 473)),
    ZooModel("ddrnet23_slim", "ddrnet", "segmentation", "hwnas_seg:ddrnet23_slim", (1, 3, 1024, 2048)),
    ZooModel("sesr_m5", "sesr", "super_resolution", "hwnas_sr:sesr_m5", (1, 3, 128, 128)),
    ZooModel("xlsr", "xlsr", "super_resolution", "hwnas_sr:xlsr", (1, 3, 128, 128)),
    ZooModel("ffnet_40s", "ffnet", "segmentation", "hwnas_ffnet:ffnet_40s", (1, 3, 1024, 2048)),
    ZooModel("ffnet_54s", "ffnet", "segmentation", "hwnas_ffnet:ffnet_54s", (1, 3, 1024, 2048)),
    ZooModel("ffnet_78s", "ffnet", "segmentation", "hwnas_ffnet:ffnet_78s", (1, 3, 1024, 2048)),
    ZooModel("ffnet_78s_lowres", "ffnet", "segmentation", "hwnas_ffnet:ffnet_78s_lowres", (1, 3, 512, 1024)),
    ZooModel("ffnet_122ns_lowres", "ffnet", "segmentation", "hwnas_ffnet:ffnet_122ns_lowres", (1, 3, 512, 1024)),
    ZooModel("pidnet", "pidnet", "segmentation", "hwnas_dense:pidnet", (1, 3, 1024, 2048)),
    ZooModel("midas", "midas", "depth", "hwnas_dense:midas", (1, 3, 256, 256)),
    ZooModel("sinet", "sinet", "segmentation", "hwnas_dense:sinet", (1, 3, 224, 224)),
)  # fmt: skip


#: Models built from another library than the one ``qai-hub-models`` uses (same published architecture).
SOURCES = {"unet_segmentation": "hwnas.hardware.zoo_unet (equivalent)", "mobilenet_v2": "torchvision (equivalent)", "mobilenet_v4": "timm (equivalent)",
           "efficientnet_lite4": "timm (equivalent)", "dncnn": "hwnas.hardware.zoo_sr (equivalent)",
           "quicksrnetsmall": "hwnas.hardware.zoo_sr (equivalent)", "quicksrnetmedium": "hwnas.hardware.zoo_sr (equivalent)",
           "quicksrnetlarge": "hwnas.hardware.zoo_sr (equivalent)", "srgan": "hwnas.hardware.zoo_sr (equivalent)",
           **{m: "hwnas.hardware.zoo_qcom (the wheel's own layers, composed as its model class does)"
              for m in ("face_det_lite", "foot_track_net", "face_attrib_net", "gear_guard_net", "real_esrgan_x4plus")},
           **{m: "hwnas.hardware.zoo_seg (equivalent)" for m in ("deeplabv3_plus_mobilenet", "pspnet", "ddrnet23_slim")},
           "sesr_m5": "hwnas.hardware.zoo_sr (equivalent)", "xlsr": "hwnas.hardware.zoo_sr (equivalent)",
           **{m: "hwnas.hardware.zoo_ffnet (equivalent)" for m in ("ffnet_40s", "ffnet_54s", "ffnet_78s", "ffnet_78s_lowres", "ffnet_122ns_lowres")},
           **{m: "hwnas.hardware.zoo_dense (equivalent)" for m in ("pidnet", "midas", "sinet")}}  # fmt: skip


#: Builder prefixes served by this package's modules (each has a ``BUILDERS`` dict keyed by model id).
LOCAL_BUILDERS = {"hwnas_sr": "zoo_sr", "hwnas_qcom": "zoo_qcom", "hwnas_seg": "zoo_seg",
                  "hwnas_ffnet": "zoo_ffnet", "hwnas_dense": "zoo_dense"}  # fmt: skip


def zoo_models() -> dict[str, ZooModel]:
    """``ZOO`` by model id."""
    return {m.model: m for m in ZOO}


def torchvision_models(root: str | Path | None = None) -> types.ModuleType:
    """``torchvision.models`` from the pinned wheel, loaded without ``torchvision/__init__`` (see above)."""
    loaded = sys.modules.get("torchvision.models")
    if loaded is not None:
        return loaded
    folder = Path(root or data_root()) / "torchvision"
    if not (folder / "models").is_dir():
        raise DataError(
            f"torchvision's model builders are not installed: {folder}/models is missing",
            key="HWNAS_DEVICE_DATA",
            fix="run `make install` (it installs the pinned torchvision --no-deps next to the device data)",
        )
    if "torchvision" not in sys.modules:
        spec = importlib.machinery.ModuleSpec("torchvision", None, is_package=True)
        spec.submodule_search_locations = [str(folder)]
        pkg = importlib.util.module_from_spec(spec)
        pkg.__file__ = str(folder / "__init__.py")
        sys.modules["torchvision"] = pkg
    return importlib.import_module("torchvision.models")


def timm_module(root: str | Path | None = None) -> types.ModuleType:
    """``timm`` from the pinned wheel beside the device data (it imports ``torchvision.transforms``, so the
    builders above are set up first; the folder goes last on ``sys.path``, after this venv's packages)."""
    folder = Path(root or data_root())
    if not (folder / "timm").is_dir():
        raise DataError(
            f"timm's model builders are not installed: {folder}/timm is missing",
            key="HWNAS_DEVICE_DATA",
            fix="run `make install` (it installs the pinned timm --no-deps next to the device data)",
        )
    torchvision_models(root)
    if str(folder) not in sys.path:
        sys.path.append(str(folder))
    return importlib.import_module("timm")


def build(entry: ZooModel) -> Any:
    """The torch model of ``entry`` with random weights, in eval mode."""
    if entry.builder == "hwnas:unet":
        from hwnas.hardware.zoo_unet import UNet

        return UNet().eval()
    prefix, _, key = entry.builder.partition(":")
    if prefix in LOCAL_BUILDERS:
        return importlib.import_module(f"hwnas.hardware.{LOCAL_BUILDERS[prefix]}").BUILDERS[key]().eval()
    if entry.builder.startswith("timm:"):
        return timm_module().create_model(entry.builder[5:], pretrained=False, **dict(entry.kwargs)).eval()
    mod: Any = torchvision_models()
    for part in entry.builder.split("."):
        mod = getattr(mod, part)
    return mod(weights=None, **dict(entry.kwargs)).eval()


def export(entry: ZooModel, workdir: str | Path) -> Path:
    """``<workdir>/<model>.onnx`` (exported once, then reused): the graph the estimate reads."""
    from hwnas.hardware.export import export_onnx

    path = Path(workdir) / f"{entry.model}_{'x'.join(map(str, entry.input_shape))}.onnx"
    if not path.is_file():
        export_onnx(build(entry), entry.input_shape, path)
    return path
