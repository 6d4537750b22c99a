"""Qualcomm's published device latencies, read from the ``qai-hub-models`` wheel's files (never the network).

Why: the offline Snapdragon estimate needs a ground truth to be fitted and checked against, and the
``qai-hub-models`` wheel ships one: a ``models/<id>/perf.yaml`` per model with the inference time AI Hub
measured on each device, runtime and precision, and ``devices_and_chipsets.yaml`` mapping every device
to its chipset and Hexagon (HTP) generation. The package pins torch and torchvision ranges that would
replace the CPU torch of this project, so it is never imported: ``make install`` puts it, with
``--no-deps``, in a folder of its own (``.venv/device-data``, see ``DATA_ENV``) and this module reads
its YAML files as data.

``perf_table()`` returns one row per (model, component, device, runtime, precision) measurement with
the columns in ``COLUMNS``.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from hwnas.utils.errors import DataError

#: Environment variable naming the folder ``qai_hub_models`` (and ``torchvision``) were installed into.
DATA_ENV = "HWNAS_DEVICE_DATA"
#: The pinned wheels ``make install`` puts there (``pip install --no-deps --target``).
PINNED = ("qai-hub-models==0.65.0", "torchvision==0.28.0", "timm==1.0.31")

COLUMNS = (
    "model",
    "component",
    "device",
    "chipset",
    "npu_generation",
    "runtime",
    "precision",
    "input_shape",
    "measured_ms",
    "layers_total",
    "layers_npu",
    "layers_gpu",
    "layers_cpu",
    "primary_compute_unit",
    "qairt",
    "job_id",
    "use_case",
)


def data_root() -> Path:
    """The folder holding the ``qai_hub_models`` package files (``$HWNAS_DEVICE_DATA`` or the venv's)."""
    return Path(os.environ.get(DATA_ENV) or Path(sys.prefix) / "device-data")


def package_dir(root: str | Path | None = None) -> Path:
    """``<root>/qai_hub_models``, or a ``DataError`` that says how to install it."""
    pkg = Path(root or data_root()) / "qai_hub_models"
    if not (pkg / "models").is_dir():
        raise DataError(
            f"Qualcomm's device measurements are not installed: {pkg}/models is missing",
            key=DATA_ENV,
            fix=f"run `make install` (pip install --no-deps --target {Path(root or data_root())} "
            + " ".join(PINNED)
            + f") or set {DATA_ENV} to the folder holding qai_hub_models/",
        )
    return pkg


def chipsets(pkg: Path) -> tuple[dict[str, str], dict[str, int | None]]:
    """``(device -> chipset, chipset -> HTP generation)`` from ``devices_and_chipsets.yaml``."""
    doc = yaml.safe_load((pkg / "devices_and_chipsets.yaml").read_text())
    devices = {str(k): str(v.get("chipset", "")) for k, v in (doc.get("devices") or {}).items()}
    htp = {str(k): v.get("htp_version") for k, v in (doc.get("chipsets") or {}).items()}
    return devices, htp


_SHAPE = re.compile(r"(\d+)\s*x\s*(\d+)(?:\s*x\s*(\d+))?(?:\s*x\s*(\d+))?")


def input_shape(manifest: dict[str, Any]) -> str:
    """The published input resolution as ``HxW`` (or the full shape when given), ``""`` if unknown."""
    tech = manifest.get("technical_details") or {}
    text = next((str(v) for k, v in tech.items() if str(k).lower().startswith("input resolution")), "")
    m = _SHAPE.search(text)
    return "x".join(g for g in m.groups() if g) if m else ""


def _rows_of(model: str, doc: dict[str, Any], manifest: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    shape = input_shape(manifest)
    for precision, pnode in (doc.get("precisions") or {}).items():
        for component, cnode in ((pnode or {}).get("components") or {}).items():
            for device, dnode in ((cnode or {}).get("performance_metrics") or {}).items():
                for runtime, r in (dnode or {}).items():
                    ms = (r or {}).get("inference_time_milliseconds")
                    if r.get("job_status", "Passed") != "Passed" or ms is None:
                        continue
                    layers = r.get("layer_counts") or {}
                    rows.append(
                        {
                            "model": model,
                            "component": str(component),
                            "device": str(device),
                            "runtime": str(runtime),
                            "precision": str(precision),
                            "input_shape": shape,
                            "measured_ms": float(ms),
                            "layers_total": layers.get("total"),
                            "layers_npu": layers.get("npu", 0),
                            "layers_gpu": layers.get("gpu", 0),
                            "layers_cpu": layers.get("cpu", 0),
                            "primary_compute_unit": r.get("primary_compute_unit"),
                            "qairt": (r.get("tool_versions") or {}).get("qairt"),
                            "job_id": r.get("job_id"),
                            "use_case": manifest.get("use_case"),
                        }
                    )
    return rows


def perf_table(root: str | Path | None = None) -> pd.DataFrame:
    """Every published measurement of the installed ``qai-hub-models`` as a table (``COLUMNS``).

    ``npu_generation`` is the chipset's Hexagon HTP version (68 for the QCS6490 and the Snapdragon 888,
    69 for the 8 Gen 1, 75 for the 8 Gen 3, 79 for the 8 Elite, ...).
    """
    pkg = package_dir(root)
    device_chip, htp = chipsets(pkg)
    rows: list[dict[str, Any]] = []
    for perf in sorted((pkg / "models").glob("*/perf.yaml")):
        manifest_path = perf.parent / "manifest.yaml"
        manifest = yaml.safe_load(manifest_path.read_text()) if manifest_path.is_file() else {}
        rows.extend(_rows_of(perf.parent.name, yaml.safe_load(perf.read_text()) or {}, manifest or {}))
    df = pd.DataFrame(rows, columns=[c for c in COLUMNS if c not in ("chipset", "npu_generation")])
    df["chipset"] = df["device"].map(device_chip).fillna("")
    df["npu_generation"] = df["chipset"].map(htp).astype("Int64")
    return df[list(COLUMNS)]


def qai_hub_models_version(root: str | Path | None = None) -> str:
    """The version of the installed ``qai-hub-models`` data (from its dist-info folder)."""
    base = package_dir(root).parent
    found = sorted(base.glob("qai_hub_models-*.dist-info"))
    return found[-1].name.removesuffix(".dist-info").split("-")[1] if found else "unknown"


def wheel_module(relative: str, alias: str, root: str | Path | None = None) -> Any:
    """The wheel's file ``qai_hub_models/<relative>`` executed as a module named ``alias``, without importing
    the ``qai_hub_models`` package (whose ``__init__`` needs the hub client): how the zoo uses the pure
    torch layer files vendored in it."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(alias, package_dir(root) / relative)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_UNITS = {"": 1.0, "K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9}


def published_params(model: str, root: str | Path | None = None) -> float:
    """The parameter count a model's ``manifest.yaml`` publishes (``"5.80M"`` -> 5.8e6): what the zoo's
    written-out graphs are checked against.

    Raises:
        DataError: the manifest or its ``Number of parameters`` is missing or unreadable.
    """
    details = _technical_details(model, root)
    text = str(details.get("Number of parameters", "")).strip()
    match = re.fullmatch(r"([\d.]+)\s*([KMBG]?)", text)
    if match is None:
        raise DataError(f"{model}: manifest has no readable 'Number of parameters' ({text!r})", key="model")
    return float(match.group(1)) * _UNITS[match.group(2)]


def published_fp32_params(model: str, root: str | Path | None = None) -> float:
    """Parameters implied by the manifest's float model size (MB, counted as MiB of fp32): the check for
    a manifest whose own count disagrees with its size."""
    text = str(_technical_details(model, root).get("Model size (float)", "")).strip()
    match = re.fullmatch(r"([\d.]+) MB", text)
    if match is None:
        raise DataError(f"{model}: manifest has no readable 'Model size (float)' ({text!r})", key="model")
    return float(match.group(1)) * 2**20 / 4


def _technical_details(model: str, root: str | Path | None) -> dict[str, Any]:
    path = package_dir(root) / "models" / model / "manifest.yaml"
    if not path.is_file():
        raise DataError(f"no manifest for {model!r} at {path}", key="model")
    return dict((yaml.safe_load(path.read_text()) or {}).get("technical_details") or {})
