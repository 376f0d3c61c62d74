"""The anatomy of the phantoms: shapes in normalised body coordinates, rasterised on the voxel grid.

See the package docstring for the coordinate frame. Everything here is private to ml_engine.phantoms.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ml_engine.labels import ABDOMENATLAS  # the phantoms carry the abdomenatlas label set

# Labels are claimed in this order: an organ takes only voxels that no organ before it has taken.
_PRIORITY = ("aorta", "postcava", "kidney_right", "kidney_left", "gallbladder", "spleen", "pancreas", "stomach",
             "liver")
_LABEL = ABDOMENATLAS.values
_AIR_HU = -1000.0
_HU_RANGE = (-1024.0, 3071.0)
Box = tuple[slice, slice, slice]


# --------------------------------------------------------------------------------------------------------------
# Geometry


class _Frame:
    """The voxel grid and the normalised body coordinates (u, v, w) of its voxel centres (1D float32 each).

    u grows towards the patient's left, v anteriorly, w superiorly, and so do the canvas indices: the canvas is
    built in LAS voxel order (its first axis runs from the patient's right to the left, as LPS x does), with
    centre[0] measured along that axis. to_ras() turns a canvas array into the RAS+ voxel order of `affine`: the
    grid is centred on x = 0, so flipping the first axis mirrors x exactly and the affine stays the same.
    """

    def __init__(self, shape: tuple[int, int, int], spacing: np.ndarray, half: np.ndarray, centre: np.ndarray):
        self.shape = shape
        self.spacing = spacing
        self.origin = -(np.asarray(shape, dtype=np.float64) - 1.0) / 2.0 * spacing
        axes = []
        for k in range(3):
            world = self.origin[k] + np.arange(shape[k], dtype=np.float64) * spacing[k]
            axes.append(((world - centre[k]) / half[k]).astype(np.float32))
        self.u, self.v, self.w = axes

    @property
    def affine(self) -> np.ndarray:
        """(4, 4) voxel-to-RAS+ affine of the arrays to_ras() returns (not of the canvas)."""
        affine = np.diag([*self.spacing, 1.0]).astype(np.float64)
        affine[:3, 3] = self.origin
        return affine

    @staticmethod
    def to_ras(canvas_array: np.ndarray) -> np.ndarray:
        """A canvas array (x, y, z) in LAS order as a view in RAS+ order: the first axis reversed."""
        return canvas_array[::-1]

    def box(self, lo: Sequence[float], hi: Sequence[float]) -> Box | None:
        """Voxel slices covering the normalised box [lo, hi] (u, v, w), clipped to the grid; None if empty."""
        slices = []
        for coords, a, b in zip((self.u, self.v, self.w), lo, hi, strict=True):
            start = int(np.searchsorted(coords, a, side="left"))
            stop = int(np.searchsorted(coords, b, side="right"))
            if stop <= start:
                return None
            slices.append(slice(start, stop))
        return tuple(slices)  # type: ignore[return-value]

    def grid(self, box: Box) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Broadcastable coordinates of a box: U (nx, 1, 1), V (1, ny, 1), W (1, 1, nz), float32."""
        return (self.u[box[0]].reshape(-1, 1, 1), self.v[box[1]].reshape(1, -1, 1),
                self.w[box[2]].reshape(1, 1, -1))


def _waves(rng: np.random.Generator, count: int, freq: tuple[float, float], amp: tuple[float, float]) -> np.ndarray:
    """Random plane waves (count, 5): direction * frequency (3), phase, amplitude."""
    direction = rng.normal(size=(count, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True) + 1e-9
    k = direction * rng.uniform(*freq, size=(count, 1))
    phase = rng.uniform(0.0, 2.0 * math.pi, size=(count, 1))
    amplitude = rng.uniform(*amp, size=(count, 1))
    return np.concatenate([k, phase, amplitude], axis=1)


def _wave_field(waves: np.ndarray, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Sum of plane waves at broadcastable float32 coordinates; returns the broadcast shape, float32."""
    total: np.ndarray | float = 0.0
    for kx, ky, kz, phase, amplitude in waves:
        arg = np.float32(kx) * x + np.float32(ky) * y + (np.float32(kz) * z + np.float32(phase))
        np.sin(arg, out=arg)
        arg *= np.float32(amplitude)
        total = arg if isinstance(total, float) else np.add(total, arg, out=total)
    return np.asarray(total, dtype=np.float32)


def _smoothstep(x: np.ndarray | float) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


@dataclass
class _Blob:
    """A deformed ellipsoid in normalised body coordinates, with extra lobes and carved-out pockets.

    Lobes and carves are (offset (3), semi-axes (3)) in the blob's own frame, in units of its semi-axes.
    """

    centre: np.ndarray  # (3,) u, v, w
    axes: np.ndarray  # (3,) semi-axes in u, v, w
    theta: float  # rotation about the z axis, radians
    waves: np.ndarray  # (k, 5) surface deformation
    lobes: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    carves: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        reach = np.ones(3)
        for offset, semi in self.lobes:
            reach = np.maximum(reach, np.abs(offset) + semi)
        reach *= math.sqrt(1.0 + float(np.abs(self.waves[:, 4]).sum())) * 1.05
        c, s = abs(math.cos(self.theta)), abs(math.sin(self.theta))
        half = np.array([c * reach[0] * self.axes[0] + s * reach[1] * self.axes[1],
                         s * reach[0] * self.axes[0] + c * reach[1] * self.axes[1],
                         reach[2] * self.axes[2]])
        return self.centre - half, self.centre + half

    def level(self, U: np.ndarray, V: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(inside bool, depth float32) on the broadcast grid; depth is 0 at the centre and 1 on the surface."""
        du, dv, dw = U - np.float32(self.centre[0]), V - np.float32(self.centre[1]), W - np.float32(self.centre[2])
        c, s = np.float32(math.cos(self.theta)), np.float32(math.sin(self.theta))
        px = (c * du + s * dv) / np.float32(self.axes[0])
        py = (c * dv - s * du) / np.float32(self.axes[1])
        pz = dw / np.float32(self.axes[2])
        q2 = px * px + py * py + pz * pz
        for offset, semi in self.lobes:
            lobe = (((px - np.float32(offset[0])) / np.float32(semi[0])) ** 2
                    + ((py - np.float32(offset[1])) / np.float32(semi[1])) ** 2
                    + ((pz - np.float32(offset[2])) / np.float32(semi[2])) ** 2)
            np.minimum(q2, lobe, out=q2)
        limit = _wave_field(self.waves, px, py, pz)
        limit += np.float32(1.0)
        np.maximum(limit, np.float32(0.3), out=limit)
        q2 /= limit
        inside = q2 <= 1.0
        for offset, semi in self.carves:
            pocket = (((px - np.float32(offset[0])) / np.float32(semi[0])) ** 2
                      + ((py - np.float32(offset[1])) / np.float32(semi[1])) ** 2
                      + ((pz - np.float32(offset[2])) / np.float32(semi[2])) ** 2)
            inside &= pocket > 1.0
        return inside, q2


@dataclass
class _Tube:
    """A vessel along z: centre (u, v) wobbling with w, elliptical section; labelled for w_lo <= w <= w_hi."""

    centre: np.ndarray  # (2,) u, v at w = 0
    radius: np.ndarray  # (2,) semi-axes in u, v
    wobble: np.ndarray  # (2, 3): per axis amplitude, angular frequency, phase
    w_lo: float
    w_hi: float
    taper: float = 0.0  # relative radius change per unit w
    shift: tuple[float, float, float, float] | None = None  # (w_start, du, dv, power): path bends above w_start
    drift: tuple[float, float] = (0.0, 0.0)  # straight-line change of the centre (u, v) per unit w

    def path(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Centre u, v and radius scale along w (any shape, float32)."""
        cu = self.centre[0] + self.wobble[0, 0] * np.sin(self.wobble[0, 1] * w + self.wobble[0, 2])
        cv = self.centre[1] + self.wobble[1, 0] * np.sin(self.wobble[1, 1] * w + self.wobble[1, 2])
        cu = cu + self.drift[0] * w
        cv = cv + self.drift[1] * w
        if self.shift is not None:
            start, du, dv, power = self.shift
            bend = np.clip((w - start) / max(1e-6, 1.0 - start), 0.0, 1.0) ** power
            cu = cu + du * bend
            cv = cv + dv * bend
        scale = 1.0 + self.taper * w
        return cu.astype(np.float32), cv.astype(np.float32), np.asarray(scale, dtype=np.float32)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        w = np.linspace(self.w_lo, self.w_hi, 64)
        cu, cv, scale = self.path(w)
        ru, rv = self.radius[0] * scale * 1.1, self.radius[1] * scale * 1.1
        return (np.array([(cu - ru).min(), (cv - rv).min(), self.w_lo]),
                np.array([(cu + ru).max(), (cv + rv).max(), self.w_hi]))

    def level(self, U: np.ndarray, V: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cu, cv, scale = self.path(W)
        ru, rv = np.float32(self.radius[0]) * scale, np.float32(self.radius[1]) * scale
        q2 = ((U - cu) / ru) ** 2 + ((V - cv) / rv) ** 2
        q2 = np.broadcast_to(q2, np.broadcast_shapes(U.shape, V.shape, W.shape))
        return q2 <= 1.0, q2


@dataclass
class _Pancreas:
    """An elongated, curved organ running along u from the head (right) to the tail (left).

    Its centre line is a quadratic Bezier curve in v and a smooth rise in w; sections are ellipses in (v, w).
    """

    u_head: float
    u_tail: float
    v_ctrl: np.ndarray  # (3,) head, middle control point, tail
    w_ends: np.ndarray  # (2,) head, tail
    r_head: np.ndarray  # (2,) semi-axes in v, w at the head
    r_body: np.ndarray  # (2,) in the body and tail
    cap_head: float  # semi-axis in u of the rounded head end
    swell: float  # thickness factor at the tail tip (1 = normal)
    waves: np.ndarray  # (k, 5) lobulation

    def along(self, U: np.ndarray) -> tuple[np.ndarray, ...]:
        """Per-u quantities (same shape as U): t (0 head .. 1 tail), centre v, w, semi-axes v, w, swelling."""
        length = self.u_tail - self.u_head
        t = np.clip((U - self.u_head) / length, 0.0, 1.0)
        v0, v1, v2 = self.v_ctrl
        cv = (1 - t) ** 2 * v0 + 2 * t * (1 - t) * v1 + t**2 * v2
        dv = (2 * (1 - t) * (v1 - v0) + 2 * t * (v2 - v1)) / length
        w0, w1 = self.w_ends
        cw = w0 + (w1 - w0) * _smoothstep(t)
        dw = (w1 - w0) * 6.0 * t * (1 - t) / length
        blend = _smoothstep((t - 0.05) / 0.3)
        rv = self.r_head[0] + (self.r_body[0] - self.r_head[0]) * blend
        rw = self.r_head[1] + (self.r_body[1] - self.r_head[1]) * blend
        swelling = 1.0 + (self.swell - 1.0) * _smoothstep((t - 0.55) / 0.35)
        rv = rv * swelling * np.sqrt(1.0 + dv * dv)
        rw = rw * swelling * np.sqrt(1.0 + dw * dw)
        return (t.astype(np.float32), cv.astype(np.float32), cw.astype(np.float32), rv.astype(np.float32),
                rw.astype(np.float32), np.asarray(swelling, dtype=np.float32))

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        u = np.linspace(self.u_head, self.u_tail, 256)
        _, cv, cw, rv, rw, swelling = self.along(u)
        margin = 1.25
        tail_cap = float(self.r_body[0] * swelling[-1])
        return (np.array([self.u_head - self.cap_head * margin, (cv - rv * margin).min(), (cw - rw * margin).min()]),
                np.array([self.u_tail + tail_cap * margin, (cv + rv * margin).max(), (cw + rw * margin).max()]))

    def level(self, U: np.ndarray, V: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t, cv, cw, rv, rw, swelling = self.along(U)
        tail_cap = np.float32(self.r_body[0] * self.swell)
        end = np.where(U < self.u_head, (self.u_head - U) / np.float32(self.cap_head),
                       np.where(U > self.u_tail, (U - self.u_tail) / tail_cap, 0.0)).astype(np.float32)
        q2 = ((V - cv) / rv) ** 2 + ((W - cw) / rw) ** 2 + end * end
        limit = _wave_field(self.waves, U, V, W)
        limit += np.float32(1.0)
        q2 /= limit
        return q2 <= 1.0, q2


# --------------------------------------------------------------------------------------------------------------
# Random anatomy


def _jitter(rng: np.random.Generator, values: Sequence[float], sd: float) -> np.ndarray:
    return np.asarray(values, dtype=np.float64) + rng.normal(0.0, sd, size=len(values))


def _scale(rng: np.random.Generator, values: Sequence[float], low: float = 0.9, high: float = 1.1) -> np.ndarray:
    return np.asarray(values, dtype=np.float64) * rng.uniform(low, high, size=len(values))


def _sample_organs(rng: np.random.Generator, swell: float) -> dict[str, object]:
    """The nine organs' shapes. All random draws happen whatever the troubles, so anatomy depends on seed only."""
    organs: dict[str, object] = {}

    def blob(centre, axes, theta, *, lobes=(), carves=(), freq=(1.6, 3.0), amp=(0.04, 0.09)) -> _Blob:
        return _Blob(centre=_jitter(rng, centre, 0.025), axes=_scale(rng, axes), theta=theta + rng.normal(0, 0.1),
                     waves=_waves(rng, 4, freq, amp),
                     lobes=[(np.asarray(o, float), np.asarray(s, float)) for o, s in lobes],
                     carves=[(np.asarray(o, float), np.asarray(s, float)) for o, s in carves])

    # Liver: right lobe, left lobe reaching across the midline anteriorly, right lobe tip reaching down laterally.
    organs["liver"] = blob((-0.42, 0.05, 0.5), (0.46, 0.58, 0.42), 0.1,
                           lobes=[((0.9, 0.55, 0.2), (0.75, 0.45, 0.7)), ((-0.3, -0.1, -0.75), (0.6, 0.65, 0.55))],
                           amp=(0.05, 0.1))
    # Spleen: long axis from posteromedial to anterolateral, concave visceral side (local -x) anteromedial.
    organs["spleen"] = blob((0.57, -0.3, 0.52), (0.17, 0.3, 0.26), -0.5,
                            carves=[((-1.05, 0.0, 0.0), (0.5, 0.65, 0.8))])
    # Kidneys: local +x points laterally (theta + pi on the right), so the hilum pocket at local -x faces the
    # spine; local +y is anterior on the left and posterior on the right, hence the mirrored y offset.
    organs["kidney_right"] = blob((-0.46, -0.42, -0.16), (0.17, 0.22, 0.28), math.pi - 0.45,
                                  carves=[((-1.0, -0.35, 0.0), (0.4, 0.38, 0.35))], amp=(0.02, 0.04))
    organs["kidney_left"] = blob((0.46, -0.42, 0.0), (0.17, 0.22, 0.28), 0.45,
                                 carves=[((-1.0, 0.35, 0.0), (0.4, 0.38, 0.35))], amp=(0.02, 0.04))
    organs["gallbladder"] = blob((-0.3, 0.42, 0.08), (0.11, 0.14, 0.19), 0.3, amp=(0.02, 0.05))
    organs["stomach"] = blob((0.36, 0.22, 0.46), (0.25, 0.27, 0.3), -0.2,
                             lobes=[((-1.1, 0.55, -0.75), (0.75, 0.5, 0.45))])
    aorta_r = rng.uniform(0.07, 0.085)
    organs["aorta"] = _Tube(centre=_jitter(rng, (0.08, -0.12), 0.015), radius=np.array([aorta_r, aorta_r * 1.35]),
                            wobble=np.column_stack([rng.uniform(0, 0.02, 2), rng.uniform(1, 3, 2),
                                                    rng.uniform(0, 2 * math.pi, 2)]),
                            w_lo=rng.uniform(-0.8, -0.62), w_hi=1.5, taper=0.12)
    ivc_r = rng.uniform(0.075, 0.09)
    organs["postcava"] = _Tube(centre=_jitter(rng, (-0.17, -0.1), 0.015), radius=np.array([ivc_r * 1.15, ivc_r]),
                               wobble=np.column_stack([rng.uniform(0, 0.02, 2), rng.uniform(1, 3, 2),
                                                       rng.uniform(0, 2 * math.pi, 2)]),
                               w_lo=rng.uniform(-0.85, -0.7), w_hi=1.5, taper=0.05,
                               shift=(0.35, rng.uniform(-0.08, -0.02), rng.uniform(0.08, 0.16), 1.5))
    head_w = rng.uniform(-0.06, 0.04)
    organs["pancreas"] = _Pancreas(
        u_head=rng.uniform(-0.3, -0.24), u_tail=rng.uniform(0.46, 0.54),
        v_ctrl=_jitter(rng, (0.04, 0.28, -0.12), 0.02), w_ends=np.array([head_w, head_w + rng.uniform(0.25, 0.38)]),
        r_head=_scale(rng, (0.12, 0.1)), r_body=_scale(rng, (0.075, 0.065)), cap_head=rng.uniform(0.07, 0.1),
        swell=swell, waves=_waves(rng, 4, (8.0, 14.0), (0.04, 0.07)))
    return organs


@dataclass
class _Intensities:
    """Mean HU per tissue for one case."""

    hu: dict[str, float]
    noise_sd: float
    blur_sd: float


def _sample_intensities(rng: np.random.Generator) -> _Intensities:
    base = {  # mean, case-to-case sd
        "fat": (-100, 8), "muscle": (50, 5), "skin": (25, 5), "cancellous": (230, 30), "cortical": (650, 60),
        "disc": (85, 10), "canal": (20, 5), "liver": (60, 8), "liver_vessel": (150, 15), "spleen": (50, 6),
        "kidney_cortex": (175, 15), "kidney_medulla": (120, 12), "gallbladder": (10, 4), "stomach_wall": (42, 5),
        "stomach_lumen": (15, 5), "aorta": (180, 20), "postcava": (120, 15), "pancreas": (40, 6),
        "tumour_drop": (15, 3), "portal": (150, 15), "bowel_wall": (40, 5), "bowel_fluid": (18, 6),
        "stool": (-120, 30),
    }
    hu = {name: float(rng.normal(mean, sd)) for name, (mean, sd) in base.items()}
    hu["spleen"] = min(hu["spleen"], hu["liver"] - 2.0)  # keep the usual liver >= spleen order (portal phase)
    hu["aorta"] = max(hu["aorta"], hu["postcava"] + 20.0)
    hu["pancreas_tumour"] = hu["pancreas"] - max(8.0, hu.pop("tumour_drop"))  # hypodense, about 25 HU
    return _Intensities(hu=hu, noise_sd=float(rng.uniform(10.0, 18.0)), blur_sd=float(rng.uniform(0.4, 0.6)))


# --------------------------------------------------------------------------------------------------------------
# Rasterisation


class _Canvas:
    """The volume being built: ct (x, y, z) float32 HU, labels (x, y, z) uint8, free (x, y, z) bool.

    free marks voxels of the abdominal cavity that no organ or unlabelled structure has taken yet.
    """

    def __init__(self, frame: _Frame):
        self.frame = frame
        self.ct = np.full(frame.shape, _AIR_HU, dtype=np.float32)
        self.labels = np.zeros(frame.shape, dtype=np.uint8)
        self.free = np.zeros(frame.shape, dtype=bool)

    def claim(self, box: Box, mask: np.ndarray, value: int = 0) -> np.ndarray:
        """Give the still-free voxels of mask (box-shaped) to label value (0: unlabelled); returns them."""
        free = self.free[box]
        claimed = mask & free
        if value:
            self.labels[box][claimed] = value
        free[claimed] = False
        return claimed

    def paint(self, box: Box, mask: np.ndarray, hu: float | np.ndarray) -> None:
        """Set ct in mask (box-shaped) to hu (a number or an array broadcastable to the box)."""
        target = self.ct[box]
        if np.ndim(hu) == 0:
            target[mask] = np.float32(hu)
        else:
            target[mask] = np.broadcast_to(np.asarray(hu, dtype=np.float32), target.shape)[mask]


def _body(canvas: _Canvas, rng: np.random.Generator, hu: dict[str, float]) -> dict[str, float]:
    """Skin, subcutaneous fat, muscle wall, spine, paraspinal muscles, psoas and ribs; sets canvas.free."""
    frame = canvas.frame
    U, V = frame.u.reshape(-1, 1), frame.v.reshape(1, -1)
    angle = np.arctan2(V, U)
    harmonics = rng.normal(0.0, 0.02, size=(2, 2))
    outline = 1.0 - rng.uniform(0.04, 0.1) * np.clip(-np.sin(angle), 0.0, None) ** 3  # flatter back
    for order, (a_cos, a_sin) in enumerate(harmonics, start=2):
        outline += a_cos * np.cos(order * angle) + a_sin * np.sin(order * angle)
    rho = (np.sqrt(U * U + V * V) / outline).astype(np.float32)[:, :, None]  # (nx, ny, 1)
    girth = (1.0 + rng.uniform(0.0, 0.025) * np.sin(rng.uniform(1.5, 3.0) * frame.w + rng.uniform(0, 6.3)))
    girth = (girth - rng.uniform(0.0, 0.03) * np.clip(-frame.w - 0.5, 0, None)).astype(np.float32)[None, None, :]
    skin, subcutaneous, wall = 0.012, rng.uniform(0.05, 0.13), rng.uniform(0.05, 0.075)
    ct = canvas.ct
    np.copyto(ct, np.float32(hu["skin"]), where=rho <= girth)
    np.copyto(ct, np.float32(hu["fat"]), where=rho <= girth * np.float32(1 - skin))
    np.copyto(ct, np.float32(hu["muscle"]), where=rho <= girth * np.float32(1 - skin - subcutaneous))
    inner = 1 - skin - subcutaneous - wall
    cavity = rho <= girth * np.float32(inner)
    np.copyto(ct, np.float32(hu["fat"]), where=cavity)
    canvas.free = cavity

    def ellipse(cu: float, cv: float, ru: float, rv: float) -> np.ndarray:
        return (((U - cu) / ru) ** 2 + ((V - cv) / rv) ** 2).astype(np.float32)

    def put(mask2d: np.ndarray, value: float, zmask: np.ndarray | None = None, occupy: bool = True) -> None:
        mask = mask2d[:, :, None] if zmask is None else mask2d[:, :, None] & zmask[None, None, :]
        mask = np.broadcast_to(mask, frame.shape)
        np.copyto(ct, np.float32(value), where=mask)
        if occupy:
            canvas.free &= ~mask

    spine_v = -inner + 0.35 + rng.normal(0, 0.02)  # vertebral body centre, about -0.45
    vb_ru, vb_rv = rng.uniform(0.12, 0.15), rng.uniform(0.17, 0.21)
    vb = ellipse(0.0, spine_v, vb_ru, vb_rv)
    period = rng.uniform(0.38, 0.46)
    phase = rng.uniform(0, period)
    disc = (np.mod(frame.w - phase, period) < period * 0.22)
    canal_v = spine_v - vb_rv - 0.07
    # Paraspinal muscles and psoas (psoas grows towards the pelvis).
    for side in (-1.0, 1.0):
        put(ellipse(side * 0.17, canal_v - 0.04, 0.13, 0.15) <= 1.0, hu["muscle"])
        psoas = ellipse(side * (vb_ru + 0.06), spine_v + 0.02, 1.0, 1.0)
        radius = (0.02 + 0.07 * (0.4 - frame.w) / 1.4).astype(np.float32)
        mask = (psoas[:, :, None] <= (radius * radius)[None, None, :]) & (radius > 0)[None, None, :]
        np.copyto(ct, np.float32(hu["muscle"]), where=mask)
        canvas.free &= ~mask
    put(vb <= 1.0, hu["cortical"])
    put(vb <= 0.8, hu["cancellous"])
    put(vb <= 1.0, hu["disc"], zmask=disc)
    put(ellipse(0.0, canal_v, 0.13, 0.11) <= 1.0, hu["cortical"])  # posterior arch
    put(ellipse(0.0, canal_v - 0.12, 0.03, 0.12) <= 1.0, hu["cortical"])  # spinous process
    put(ellipse(0.0, canal_v, 0.075, 0.065) <= 1.0, hu["canal"])
    # Ribs in the muscle wall at upper levels, each crossing the slice over a short run of z.
    rib_rho = 1 - skin - subcutaneous - wall / 2
    for k, theta in enumerate(np.deg2rad([15, 50, 130, 165, -20, -160])):
        cu, cv = rib_rho * math.cos(theta), rib_rho * math.sin(theta)
        zmask = (np.cos(2 * np.pi * (frame.w - 0.1 * k) / 0.3) > 0.2) & (frame.w > 0.05 + 0.15 * (k % 3))
        put(ellipse(cu, cv, 0.035, 0.035) <= 1.0, hu["cortical"], zmask=zmask, occupy=False)
    return {"spine_v": spine_v, "canal_v": canal_v}


def _place(canvas: _Canvas, shape: _Blob | _Tube | _Pancreas) -> tuple[Box, np.ndarray, np.ndarray] | None:
    """Rasterise a shape on its bounding box: (box, inside mask, depth) or None outside the grid."""
    lo, hi = shape.bounds()
    box = canvas.frame.box(lo, hi)
    if box is None:
        return None
    inside, depth = shape.level(*canvas.frame.grid(box))
    return box, np.broadcast_to(inside, depth.shape), depth


def _organs(canvas: _Canvas, shapes: dict[str, object], hu: dict[str, float], troubles: list[str],
            trouble_rng: np.random.Generator, detail_rng: np.random.Generator) -> None:
    """Claim and paint the nine organs in priority order."""
    frame = canvas.frame
    air_level = trouble_rng.uniform(-0.35, 0.05)  # stomach air above this local v (anterior = up when supine)
    vessel_waves = (_waves(detail_rng, 3, (3.0, 6.0), (0.3, 0.5)), _waves(detail_rng, 3, (3.0, 6.0), (0.3, 0.5)))
    for name in _PRIORITY:
        placed = _place(canvas, shapes[name])  # type: ignore[arg-type]
        if placed is None:
            continue
        box, inside, depth = placed
        claimed = canvas.claim(box, inside, _LABEL[name])
        U, V, W = frame.grid(box)
        if name.startswith("kidney"):
            canvas.paint(box, claimed, np.where(depth < 0.42, hu["kidney_medulla"], hu["kidney_cortex"]))
        elif name == "stomach":
            blob: _Blob = shapes[name]  # type: ignore[assignment]
            lumen = claimed & (depth < 0.55)
            canvas.paint(box, claimed, hu["stomach_wall"])
            canvas.paint(box, lumen, hu["stomach_lumen"])
            if "stomach_air_cavity" in troubles:
                local_v = (V - np.float32(blob.centre[1])) / np.float32(blob.axes[1])
                canvas.paint(box, lumen & (local_v > air_level), _AIR_HU)
        elif name == "liver":
            blob = shapes[name]  # type: ignore[assignment]
            pu, pv, pw = ((U - np.float32(blob.centre[0])) / np.float32(blob.axes[0]),
                          (V - np.float32(blob.centre[1])) / np.float32(blob.axes[1]),
                          (W - np.float32(blob.centre[2])) / np.float32(blob.axes[2]))
            vessels = (np.abs(_wave_field(vessel_waves[0], pu, pv, pw)) < 0.07) & \
                      (np.abs(_wave_field(vessel_waves[1], pu, pv, pw)) < 0.07) & (depth < 0.8)
            canvas.paint(box, claimed, hu["liver"])
            canvas.paint(box, claimed & vessels, hu["liver_vessel"])
        elif name == "pancreas":
            pancreas: _Pancreas = shapes[name]  # type: ignore[assignment]
            t = pancreas.along(U)[0]
            tumour = _smoothstep((t - 0.55) / 0.3) if "enlarged_pancreas_tail" in troubles else np.zeros_like(t)
            canvas.paint(box, claimed, hu["pancreas"] + (hu["pancreas_tumour"] - hu["pancreas"]) * tumour)
        else:
            canvas.paint(box, claimed, hu[name])


def _clutter(canvas: _Canvas, shapes: dict[str, object], hu: dict[str, float], rng: np.random.Generator) -> None:
    """Unlabelled look-alikes on the voxels left free: iliac vessels, mesenteric and splenic vessels, bowel."""
    aorta: _Tube = shapes["aorta"]  # type: ignore[assignment]
    ivc: _Tube = shapes["postcava"]  # type: ignore[assignment]
    pancreas: _Pancreas = shapes["pancreas"]  # type: ignore[assignment]

    def draw(shape, value: float | Callable[[Box, np.ndarray, np.ndarray], np.ndarray]) -> None:
        placed = _place(canvas, shape)
        if placed is None:
            return
        box, inside, depth = placed
        claimed = canvas.claim(box, inside)
        canvas.paint(box, claimed, value(box, claimed, depth) if callable(value) else value)

    def fixed_tube(cu: float, cv: float, r: float, w_lo: float, w_hi: float,
                   spread: tuple[float, float] = (0.0, 0.0)) -> _Tube:
        """A straight tube through (cu, cv) at w_hi whose centre moves by spread (du, dv) per unit w downwards."""
        return _Tube(centre=np.array([cu + spread[0] * w_hi, cv + spread[1] * w_hi]), radius=np.array([r, r]),
                     wobble=np.zeros((2, 3)), w_lo=w_lo, w_hi=w_hi, drift=(-spread[0], -spread[1]))

    # Common iliac arteries and veins below the bifurcation and confluence: bright, unlabelled.
    for vessel, value in ((aorta, hu["aorta"]), (ivc, hu["postcava"])):
        cu, cv, scale = vessel.path(np.array([vessel.w_lo]))
        r = float(vessel.radius.mean() * scale[0] * 0.7)
        for side in (-1.0, 1.0):
            draw(fixed_tube(float(cu[0]), float(cv[0]), r, -1.5, vessel.w_lo, (side * 0.55, 0.0)), value)
    # Superior mesenteric artery and vein, in front of the aorta below the pancreas neck.
    neck_w = float(pancreas.w_ends[0])
    a_cu, a_cv, _ = aorta.path(np.array([neck_w]))
    draw(fixed_tube(float(a_cu[0]), float(a_cv[0]) + 0.2, 0.035, -0.75, neck_w - 0.04), hu["aorta"])
    draw(fixed_tube(float(a_cu[0]) - 0.08, float(a_cv[0]) + 0.22, 0.045, -0.75, neck_w - 0.04), hu["portal"])
    # Splenic vein along the back of the pancreas body and tail.
    splenic = _Pancreas(u_head=pancreas.u_head + 0.3 * (pancreas.u_tail - pancreas.u_head),
                        u_tail=pancreas.u_tail + 0.05,
                        v_ctrl=pancreas.v_ctrl - np.array([0.1, 0.1, 0.1]), w_ends=pancreas.w_ends + 0.015,
                        r_head=np.array([0.035, 0.03]), r_body=np.array([0.035, 0.03]), cap_head=0.04, swell=1.0,
                        waves=np.zeros((0, 5)))
    draw(splenic, hu["portal"])

    def bowel(content: str) -> Callable[[Box, np.ndarray, np.ndarray], np.ndarray]:
        pattern = _waves(rng, 3, (12.0, 20.0), (0.5, 1.0))

        def value(box: Box, claimed: np.ndarray, depth: np.ndarray) -> np.ndarray:
            inner = depth < 0.5
            if content == "gas":
                fill = np.full(depth.shape, _AIR_HU, dtype=np.float32)
            elif content == "stool":
                mottle = _wave_field(pattern, *canvas.frame.grid(box))
                fill = np.where(mottle > 0.3, -700.0, hu["stool"]).astype(np.float32)
            else:
                fill = np.full(depth.shape, hu["bowel_fluid"], dtype=np.float32)
            return np.where(inner, fill, np.float32(hu["bowel_wall"]))

        return value

    contents = ("fluid", "gas", "stool")
    # Duodenum: descending part right of the pancreas head, horizontal part below it.
    head_w = float(pancreas.w_ends[0])
    duodenum = fixed_tube(pancreas.u_head - 0.12, float(pancreas.v_ctrl[0]) - 0.02, 0.075, head_w - 0.25,
                          head_w + 0.12)
    draw(duodenum, bowel(contents[int(rng.integers(0, 2))]))
    horizontal = _Blob(centre=np.array([pancreas.u_head + 0.12, 0.0, head_w - 0.24]), axes=np.array([0.3, 0.07, 0.07]),
                       theta=0.0, waves=_waves(rng, 2, (1.0, 2.0), (0.02, 0.05)))
    draw(horizontal, bowel("fluid"))
    # Colon: ascending (right), descending (left), transverse (anterior); then small bowel loops below.
    draw(fixed_tube(-0.56, -0.1, 0.11, -1.5, -0.05), bowel(contents[int(rng.integers(1, 3))]))
    draw(fixed_tube(0.58, -0.2, 0.09, -1.5, 0.3), bowel(contents[int(rng.integers(1, 3))]))
    transverse = _Blob(centre=np.array([0.0, 0.6, rng.uniform(-0.25, -0.1)]), axes=np.array([0.75, 0.13, 0.1]),
                       theta=0.0, waves=_waves(rng, 3, (1.5, 3.0), (0.05, 0.1)))
    draw(transverse, bowel(contents[int(rng.integers(1, 3))]))
    for _ in range(int(rng.integers(14, 23))):
        loop = _Blob(centre=np.array([rng.uniform(-0.55, 0.55), rng.uniform(-0.2, 0.6), rng.uniform(-0.95, 0.05)]),
                     axes=_scale(rng, (0.12, 0.1, 0.1), 0.8, 1.4), theta=rng.uniform(0, math.pi),
                     waves=_waves(rng, 3, (1.5, 3.0), (0.05, 0.12)))
        draw(loop, bowel(str(rng.choice(contents, p=[0.6, 0.25, 0.15]))))


def _finish(ct: np.ndarray, rng: np.random.Generator, noise_sd: float, blur_sd: float) -> np.ndarray:
    """Blur (blur_sd voxels), add Gaussian noise (noise_sd HU), clip and round: (x, y, z) int16."""
    blurred = ndimage.gaussian_filter(ct, sigma=blur_sd, output=np.float32, truncate=3.0)
    del ct
    out = np.empty(blurred.shape, dtype=np.int16)
    step = max(1, (1 << 22) // max(1, blurred.shape[0] * blurred.shape[1]))
    for z0 in range(0, blurred.shape[2], step):
        chunk = blurred[:, :, z0:z0 + step]
        chunk += rng.standard_normal(chunk.shape, dtype=np.float32) * np.float32(noise_sd)
        np.clip(chunk, *_HU_RANGE, out=chunk)
        np.rint(chunk, out=chunk)
        out[:, :, z0:z0 + step] = chunk
    return out
