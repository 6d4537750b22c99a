"""Vectorised drawing of one procedural face: coordinate grids, inequality masks, a fixed z-order.

Every part is a boolean mask computed from pixel coordinates expressed in the face's own frame (centred,
scaled and rotated), painted over what came before, so labels stay crisp and the cost is a few dozen
numpy operations per image, independent of how many parts are drawn. Sizes are biased so that even at
64x64 the small parts (eyes, brows, ears, lips) cover several pixels each and stay learnable.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from hwnas.data.labels import LABEL

_SKIN_LIGHT = np.array([0.96, 0.80, 0.68], dtype=np.float32)
_SKIN_DARK = np.array([0.33, 0.20, 0.13], dtype=np.float32)
_HAIR = np.array(
    [
        [0.06, 0.05, 0.05],  # black
        [0.22, 0.13, 0.07],  # dark brown
        [0.45, 0.28, 0.14],  # brown
        [0.85, 0.70, 0.42],  # blond
        [0.62, 0.25, 0.10],  # red
        [0.70, 0.70, 0.70],  # grey
    ],
    dtype=np.float32,
)
HAIR_STYLES = ("bald", "short", "long", "volume", "bangs")


@lru_cache(maxsize=8)
def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
    ys.setflags(write=False)
    xs.setflags(write=False)
    return ys, xs


def _hsv(rng: np.random.Generator, *, s: tuple[float, float], v: tuple[float, float]) -> np.ndarray:
    h = rng.uniform(0.0, 6.0)
    sat, val = rng.uniform(*s), rng.uniform(*v)
    k = (np.array([5.0, 3.0, 1.0]) + h) % 6.0
    return (val - val * sat * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)).astype(np.float32)


def _ellipse(u: np.ndarray, v: np.ndarray, cu: float, cv: float, a: float, b: float) -> np.ndarray:
    return ((u - cu) / a) ** 2 + ((v - cv) / b) ** 2 <= 1.0


def render_face(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw one face with per-pixel labels; every random choice comes from ``rng``.

    Returns:
        ``(image uint8 [H, W, 3], mask uint8 [H, W])`` with mask values in 0..18.
    """
    ys, xs = _grid(height, width)
    side = float(min(height, width))
    img = np.empty((height, width, 3), dtype=np.float32)
    lab = np.zeros((height, width), dtype=np.uint8)

    def paint(m: np.ndarray, colour: np.ndarray, cls: str, shade: np.ndarray | None = None) -> None:
        col = colour if shade is None else colour * shade[m][:, None]
        img[m] = col
        lab[m] = LABEL[cls]

    # Background: flat colour with a gradient, then clutter shapes (all background class).
    img[:] = _hsv(rng, s=(0.0, 0.6), v=(0.2, 0.95))
    g = rng.uniform(-0.3, 0.3, size=2).astype(np.float32)
    img *= (1.0 + g[0] * (xs / side - 0.5) + g[1] * (ys / side - 0.5))[..., None]
    for _ in range(int(rng.integers(2, 8))):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        a, b = rng.uniform(0.04, 0.3, size=2) * side
        if rng.random() < 0.5:
            m = ((xs - cx) / a) ** 2 + ((ys - cy) / b) ** 2 <= 1.0
        else:
            m = (np.abs(xs - cx) <= a) & (np.abs(ys - cy) <= b)
        img[m] = _hsv(rng, s=(0.0, 0.9), v=(0.1, 1.0))

    # The face frame: unit = half face height, u to the image right, v down.
    s = rng.uniform(0.26, 0.34) * side
    cx = width / 2 + rng.uniform(-0.12, 0.12) * side
    cy = height / 2 + rng.uniform(-0.10, 0.08) * side
    th = np.deg2rad(rng.uniform(-25.0, 25.0))
    dx, dy = xs - cx, ys - cy
    u = (np.cos(th) * dx + np.sin(th) * dy) / s
    v = (-np.sin(th) * dx + np.cos(th) * dy) / s
    fw = rng.uniform(0.68, 0.82)
    chin = 1.0 - 0.2 * np.clip(v, 0.0, 1.0)
    face = (u / (fw * chin)) ** 2 + v**2 <= 1.0
    head_big = (u / (fw * 1.12)) ** 2 + ((v + 0.04) / 1.1) ** 2 <= 1.0

    skin = _SKIN_LIGHT + rng.uniform(0.0, 1.0) * (_SKIN_DARK - _SKIN_LIGHT)
    skin = np.clip(skin * rng.uniform(0.92, 1.08, size=3), 0.0, 1.0).astype(np.float32)
    hair = np.clip(_HAIR[rng.integers(len(_HAIR))] * rng.uniform(0.85, 1.15, size=3), 0, 1)
    if rng.random() < 0.08:  # dyed
        hair = _hsv(rng, s=(0.5, 0.9), v=(0.4, 0.9))
    hair_shade = 1.0 + 0.12 * np.sin(u * rng.uniform(15, 30) + rng.uniform(0, 6))
    style = HAIR_STYLES[rng.choice(len(HAIR_STYLES), p=[0.08, 0.3, 0.3, 0.12, 0.2])]

    # Back layers: long / voluminous hair, neck, clothing (clothing in the unrotated body frame).
    if style == "long":
        paint(
            head_big | ((np.abs(u) <= fw * 1.2) & (v >= 0) & (v <= rng.uniform(0.9, 1.7))),
            hair,
            "hair",
            hair_shade,
        )
    elif style == "volume":
        paint(_ellipse(u, v, 0.0, -0.2, fw * 1.45, 1.22), hair, "hair", hair_shade)
    nw = rng.uniform(0.34, 0.46)
    paint((np.abs(u) <= nw) & (v >= 0.3) & (v <= 3.0), skin * 0.82, "neck")
    body = ((xs - cx - rng.uniform(-0.2, 0.2) * s) / (s * rng.uniform(1.3, 1.8))) ** 2
    body = body + ((ys - cy - s * rng.uniform(2.0, 2.3)) / (s * 1.1)) ** 2 <= 1.0
    cloth = _hsv(rng, s=(0.0, 0.9), v=(0.15, 0.95))
    stripes = 1.0 + (rng.random() < 0.3) * 0.25 * np.sign(np.sin(ys * rng.uniform(0.3, 0.8)))
    paint(body, cloth, "clothing", stripes.astype(np.float32))

    # Ears, then the face over their inner half.
    ev, ea, eb = rng.uniform(-0.05, 0.1), rng.uniform(0.11, 0.15), rng.uniform(0.2, 0.27)
    ear_col = skin * np.array([0.92, 0.82, 0.8], dtype=np.float32)
    paint(_ellipse(u, v, -fw - 0.02, ev, ea, eb), ear_col, "right_ear")
    paint(_ellipse(u, v, fw + 0.02, ev, ea, eb), ear_col, "left_ear")
    paint(face, skin, "skin", (1.0 - 0.12 * (u**2 + v**2)).astype(np.float32))

    # Beard (under the lips), nose, eyes, brows, mouth.
    my, mw = rng.uniform(0.5, 0.58), rng.uniform(0.22, 0.3)
    tl, bl = rng.uniform(0.08, 0.11), rng.uniform(0.09, 0.12)
    oh = rng.uniform(0.045, 0.08) if rng.random() < 0.35 else 0.0
    if rng.random() < 0.2:
        bt = rng.uniform(0.22, 0.38)
        beard = ((u / (fw * 1.05 * chin)) ** 2 + (v / 1.06) ** 2 <= 1.0) & (v >= bt)
        beard |= (np.abs(u) <= mw * 1.15) & (v >= my - oh - tl - 0.1) & (v <= my)
        paint(beard, hair * 0.9, "beard", hair_shade)
    ey, ex = rng.uniform(-0.12, -0.02), rng.uniform(0.3, 0.36)
    nose = _ellipse(u, v, 0.0, rng.uniform(0.18, 0.24), rng.uniform(0.1, 0.13), rng.uniform(0.17, 0.22))
    paint(nose, skin * 0.78, "nose", (1.0 + 0.8 * u).astype(np.float32))
    ea, eb = rng.uniform(0.17, 0.21), rng.uniform(0.1, 0.13)
    sclera = np.array([0.95, 0.95, 0.92], dtype=np.float32) * rng.uniform(0.8, 1.0)
    iris = _hsv(rng, s=(0.3, 0.8), v=(0.1, 0.45))
    gaze = rng.uniform(-0.5, 0.5) * ea
    by, ba, bb = ey - rng.uniform(0.2, 0.26), rng.uniform(0.19, 0.25), rng.uniform(0.065, 0.09)
    arch = rng.uniform(0.0, 1.5)
    for sign, eye, brow in ((-1, "right_eye", "right_brow"), (1, "left_eye", "left_brow")):
        cu = sign * ex
        white = _ellipse(u, v, cu, ey, ea, eb)
        paint(white, sclera, eye)
        paint(_ellipse(u, v, cu + gaze, ey, eb * 0.9, eb * 0.9) & white, iris, eye)
        paint(_ellipse(u, v - arch * (u - cu) ** 2, cu, by, ba, bb), hair * 0.8, brow)
    lip = np.clip(skin * 0.55 + np.array([0.38, 0.06, 0.1]) * rng.uniform(0.6, 1.2), 0, 1).astype(np.float32)
    paint(_ellipse(u, v, 0.0, my - oh, mw, tl) & (v < my - oh), lip * 0.9, "top_lip")
    paint(_ellipse(u, v, 0.0, my + oh, mw, bl) & (v >= my + oh), lip, "bottom_lip")
    if oh > 0:
        inner = (np.abs(v - my) <= oh * np.sqrt(np.clip(1 - (u / mw) ** 2, 0, 1))) & (np.abs(u) < mw)
        paint(inner, np.array([0.25, 0.05, 0.07], dtype=np.float32), "mouth_interior")

    # Front hair (cap above a hairline), then accessories.
    if style != "bald":
        line = {"bangs": rng.uniform(-0.5, -0.42)}.get(style, rng.uniform(-0.62, -0.5))
        line = line + 0.25 * (u / fw) ** 2 * (style != "bangs")
        low = {"long": 0.15, "volume": -0.05}.get(style, -0.25)
        cap = head_big & (v < low) & ((v < line) | ~face)
        cap &= ((lab != LABEL["right_ear"]) & (lab != LABEL["left_ear"])) | (v < line)  # ears stay visible
        paint(cap, hair, "hair", hair_shade)
    if rng.random() < 0.25:  # glasses: two frames, a bridge and temples
        ga, gb, t = rng.uniform(0.24, 0.29), rng.uniform(0.17, 0.22), rng.uniform(0.06, 0.09)
        frame_col = _hsv(rng, s=(0.0, 0.8), v=(0.05, 0.6))
        lens = _ellipse(u, v, -ex, ey, ga - t, gb - t) | _ellipse(u, v, ex, ey, ga - t, gb - t)
        rims = _ellipse(u, v, -ex, ey, ga, gb) | _ellipse(u, v, ex, ey, ga, gb)
        bar = (np.abs(v - ey + 0.3 * gb) <= t * 0.6) & (np.abs(u) <= ex)
        arms = (np.abs(v - ey) <= t * 0.5) & (np.abs(u) >= ex) & (np.abs(u) <= fw + 0.06)
        paint(((rims & ~lens) | bar | arms) & ~lens, frame_col, "glasses")
        if rng.random() < 0.3:  # sunglasses hide the eyes
            paint(lens, frame_col * 0.4, "glasses")
    if rng.random() < 0.15:  # facewear: a mask over nose tip and mouth, with straps
        mt = rng.uniform(0.12, 0.22)
        mask_region = ((u / (fw * 1.04 * chin)) ** 2 + (v / 1.04) ** 2 <= 1.0) & (v >= mt)
        straps = (np.abs(v - mt - 0.1) <= 0.04) & (np.abs(u) <= fw + 0.08)
        paint(mask_region | straps, _hsv(rng, s=(0.0, 0.5), v=(0.3, 1.0)), "facewear")
    if rng.random() < 0.2:  # headwear: a crown over the head and a brim
        hl = rng.uniform(-0.58, -0.42)
        crown = _ellipse(u, v, 0.0, -0.1, fw * 1.18, 1.18) & (v < hl)
        brim = (np.abs(u) <= fw * rng.uniform(1.2, 1.4)) & (v >= hl - 0.1) & (v < hl + 0.02)
        paint(crown | brim, _hsv(rng, s=(0.2, 1.0), v=(0.15, 0.95)), "headwear")

    # Global lighting gradient, exposure and sensor noise.
    gx, gy = rng.uniform(-0.5, 0.5, size=2)
    light = rng.uniform(0.8, 1.15) + gx * (xs / side - 0.5) + gy * (ys / side - 0.5)
    img *= light[..., None]
    img += rng.normal(0.0, rng.uniform(0.008, 0.03), size=img.shape).astype(np.float32)
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), lab
