// Painting tools that reach across slices: the 3D sphere brush (radius in mm) and click-to-grow (a seeded region
// growing in an HU window, in the slice or in 3D, bounded by a radius in mm). Each writes the active organ into the
// label inside the box it returns; the viewer's policy then keeps what "protect other organs" and the HU range allow.
import { type Box, clipBox } from '../edits'

export interface Painter {
  dims: number[]
  spacing: number[] // mm
  value: number // the organ painted
  canPaint: (old: number, index: number) => boolean // protection and the HU range, applied while painting
}

/** The box of a ball of `radiusMm` around a voxel, clipped to the volume. */
export function ballBox(centre: number[], radiusMm: number, p: Painter): Box | null {
  const r = [0, 1, 2].map((a) => Math.floor(radiusMm / p.spacing[a] + 1e-9))
  return clipBox({ x0: centre[0] - r[0], x1: centre[0] + r[0], y0: centre[1] - r[1], y1: centre[1] + r[1],
    z0: centre[2] - r[2], z1: centre[2] + r[2] }, p.dims)
}

/** Paint a ball of `radiusMm` (voxel centres within the radius, in mm) around `centre`. Returns its box. */
export function paintBall(label: Uint8Array, centre: number[], radiusMm: number, p: Painter): Box | null {
  const box = ballBox(centre, radiusMm, p)
  if (!box) return null
  const [nx, ny] = p.dims
  const [sx, sy, sz] = p.spacing
  const r2 = radiusMm * radiusMm + 1e-6
  for (let z = box.z0; z <= box.z1; z++) {
    const dz = (z - centre[2]) * sz
    for (let y = box.y0; y <= box.y1; y++) {
      const dy = (y - centre[1]) * sy
      const row = (z * ny + y) * nx
      for (let x = box.x0; x <= box.x1; x++) {
        const dx = (x - centre[0]) * sx
        if (dx * dx + dy * dy + dz * dz > r2) continue
        const i = row + x
        if (label[i] !== p.value && p.canPaint(label[i], i)) label[i] = p.value
      }
    }
  }
  return box
}

/** The box click-to-grow searches: the ball, or its slice across `axis` in 2D. */
export function growBox(seed: number[], radiusMm: number, threeD: boolean, axis: number, p: Painter): Box | null {
  const ball = ballBox(seed, radiusMm, p)
  if (!ball || threeD) return ball
  const box = { ...ball }
  const key = (['x', 'y', 'z'] as const)[axis]
  box[`${key}0`] = box[`${key}1`] = seed[axis]
  return box
}

/**
 * Grow from `seed` through face-connected voxels whose HU lies in [lo, hi], within `radiusMm` of the seed, in the
 * slice across `axis` (2D) or in 3D; every voxel reached takes the organ. `huBox` gives the CT over a box. Works on
 * the box only: typed arrays for the CT, the visited voxels and the queue.
 */
export function grow(label: Uint8Array, seed: number[], radiusMm: number, lo: number, hi: number, threeD: boolean,
  axis: number, huBox: (box: Box) => Float32Array, p: Painter): { box: Box | null; voxels: number } {
  const box = growBox(seed, radiusMm, threeD, axis, p)
  if (!box) return { box: null, voxels: 0 }
  const [nx, ny] = p.dims
  const [sx, sy, sz] = p.spacing
  const w = box.x1 - box.x0 + 1
  const h = box.y1 - box.y0 + 1
  const d = box.z1 - box.z0 + 1
  const wh = w * h
  const ct = huBox(box)
  const seen = new Uint8Array(w * h * d)
  const queue = new Int32Array(w * h * d)
  const r2 = radiusMm * radiusMm + 1e-6
  const dx2 = Float64Array.from({ length: w }, (_, i) => ((i + box.x0 - seed[0]) * sx) ** 2)
  const dy2 = Float64Array.from({ length: h }, (_, i) => ((i + box.y0 - seed[1]) * sy) ** 2)
  const dz2 = Float64Array.from({ length: d }, (_, i) => ((i + box.z0 - seed[2]) * sz) ** 2)
  let head = 0
  let tail = 0
  const visit = (x: number, y: number, z: number) => {
    const c = z * wh + y * w + x
    if (seen[c]) return
    seen[c] = 1
    if (dx2[x] + dy2[y] + dz2[z] > r2) return
    const v = ct[c]
    if (v < lo || v > hi) return
    const i = ((z + box.z0) * ny + y + box.y0) * nx + x + box.x0
    if (!p.canPaint(label[i], i)) return
    queue[tail++] = c
  }
  visit(seed[0] - box.x0, seed[1] - box.y0, seed[2] - box.z0)
  while (head < tail) {
    const c = queue[head++]
    const z = Math.floor(c / wh)
    const r = c - z * wh
    const y = Math.floor(r / w)
    const x = r - y * w
    label[((z + box.z0) * ny + y + box.y0) * nx + x + box.x0] = p.value
    if (x + 1 < w) visit(x + 1, y, z)
    if (x > 0) visit(x - 1, y, z)
    if (y + 1 < h) visit(x, y + 1, z)
    if (y > 0) visit(x, y - 1, z)
    if (z + 1 < d) visit(x, y, z + 1)
    if (z > 0) visit(x, y, z - 1)
  }
  return { box, voxels: tail }
}
