"""The 19 FaceSynthetics segmentation classes, shared by every face dataset in hwnas.

Class ids follow Microsoft's FaceSynthetics release (https://github.com/microsoft/FaceSynthetics), so a
model trained on the procedural faces and one trained on the real renders speak the same label space.
"Right" and "left" are the subject's: the subject's right eye appears on the image's left side.
"""

from __future__ import annotations

import numpy as np

CLASS_NAMES: tuple[str, ...] = (
    "background",
    "skin",
    "nose",
    "right_eye",
    "left_eye",
    "right_brow",
    "left_brow",
    "right_ear",
    "left_ear",
    "mouth_interior",
    "top_lip",
    "bottom_lip",
    "neck",
    "hair",
    "beard",
    "clothing",
    "glasses",
    "headwear",
    "facewear",
)
NUM_CLASSES: int = len(CLASS_NAMES)
IGNORE_INDEX: int = 255

#: Classes the reference face-segmentation F1 averages over: 1..17 (no background 0, no facewear 18).
F1_CLASSES: tuple[int, ...] = tuple(range(1, 18))

# Class ids by name, for readable drawing code and tests (``LABEL["left_eye"] == 4``).
LABEL: dict[str, int] = {name: i for i, name in enumerate(CLASS_NAMES)}

_PAIRS = (("right_eye", "left_eye"), ("right_brow", "left_brow"), ("right_ear", "left_ear"))


def _flip_swap_table() -> np.ndarray:
    table = np.arange(256, dtype=np.uint8)
    for right, left in _PAIRS:
        table[LABEL[right]], table[LABEL[left]] = LABEL[left], LABEL[right]
    table.setflags(write=False)
    return table


# Lookup table applied after a horizontal flip: ``FLIP_SWAP[mask[:, ::-1]]``. A mirrored right eye is a
# left eye, so the labels must swap with the pixels; every other value (255 included) maps to itself.
FLIP_SWAP: np.ndarray = _flip_swap_table()
