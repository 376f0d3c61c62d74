// The click tool's pure parts (workspace/tools/useClick.ts): the crop around a prompt, the organ's label in the crop as
// packed bits (the server's format: np.packbits(..., bitorder="little") of the crop, x fastest), and the engine's mask
// written back into the label. Crops are boxes of file voxel indices (the server's); the label is the viewer's
// (x fastest in viewer order), reached through geometry.ts's cropOffsetTerms (the file axes are a permutation of the
// viewer's, maybe flipped). Which voxels the written mask may change ("protect other organs", the HU range) is the edit
// history's policy (edits.ts), as for every other tool.
import type { Box } from '../edits'

/** A crop: file voxel indices, bounds inclusive. */
export interface Crop {
  lo: number[]
  hi: number[]
}

/** One bit a voxel (non-zero: 1), little bit order: voxel k is bit k % 8 of byte k / 8. */
export function packBits(bits: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array((bits.length + 7) >> 3)
  for (let k = 0; k < bits.length; k++) if (bits[k]) out[k >> 3] |= 1 << (k & 7)
  return out
}

/** The inverse of packBits for `count` voxels (1 / 0 each). */
export function unpackBits(packed: Uint8Array, count: number): Uint8Array {
  if (packed.length !== (count + 7) >> 3) {
    throw new Error(`${packed.length} bytes of packed bits cannot hold ${count} voxels`)
  }
  const out = new Uint8Array(count)
  for (let k = 0; k < count; k++) out[k] = (packed[k >> 3] >> (k & 7)) & 1
  return out
}

/** The crop's side along each file axis, in voxels. */
export function cropShape(crop: Crop): number[] {
  return crop.lo.map((v, f) => crop.hi[f] - v + 1)
}

export function cropVoxels(crop: Crop): number {
  return cropShape(crop).reduce((a, b) => a * b, 1)
}

export function inCrop(crop: Crop, p: readonly number[]): boolean {
  return p.every((v, f) => v >= crop.lo[f] && v <= crop.hi[f])
}

/**
 * The crop for a prompt: a cube of `sideMm` around `centre` (file voxel indices; half a side each way, converted to
 * voxels with `spacing`, the mm of each file axis), grown to hold every point of `cover` (a scribble's, a box's
 * corners), clipped to a volume of `dims` (file order).
 */
export function cropAround(centre: readonly number[], sideMm: number, spacing: readonly number[],
  dims: readonly number[], cover: readonly (readonly number[])[] = []): Crop {
  const lo: number[] = []
  const hi: number[] = []
  for (let f = 0; f < 3; f++) {
    const half = Math.max(1, Math.round(sideMm / 2 / spacing[f]))
    let a = Math.round(centre[f]) - half
    let b = Math.round(centre[f]) + half
    for (const p of cover) {
      a = Math.min(a, p[f])
      b = Math.max(b, p[f])
    }
    lo.push(Math.max(0, a))
    hi.push(Math.min(dims[f] - 1, b))
  }
  return { lo, hi }
}

/** Visit every viewer voxel of `box` with its flat index in the label and its offset in the crop. */
function eachVoxel(dims: readonly number[], box: Box, terms: Int32Array[], visit: (index: number, c: number) => void) {
  const [nx, ny] = dims
  for (let z = box.z0; z <= box.z1; z++) {
    const tz = terms[2][z - box.z0]
    for (let y = box.y0; y <= box.y1; y++) {
      const tyz = tz + terms[1][y - box.y0]
      const row = (z * ny + y) * nx
      for (let x = box.x0; x <= box.x1; x++) visit(row + x, tyz + terms[0][x - box.x0])
    }
  }
}

/** The organ `value` in the crop (1 / 0 per crop voxel, file order, x fastest) read from the label (viewer order). */
export function readCrop(label: Uint8Array, dims: readonly number[], box: Box, terms: Int32Array[], count: number,
  value: number): Uint8Array {
  const out = new Uint8Array(count)
  eachVoxel(dims, box, terms, (i, c) => {
    if (label[i] === value) out[c] = 1
  })
  return out
}

/** Write the engine's mask of the organ `value` (1 / 0 per crop voxel) into the label: the organ where the mask says
 * so, removed where it does not; other organs' voxels outside the mask are left alone. */
export function writeCrop(label: Uint8Array, dims: readonly number[], box: Box, terms: Int32Array[], mask: Uint8Array,
  value: number): void {
  eachVoxel(dims, box, terms, (i, c) => {
    if (mask[c]) label[i] = value
    else if (label[i] === value) label[i] = 0
  })
}

/** Scribbles thinned to fit `limit` points with the clicks (which are kept): each scribble keeps its first and last
 * point and every k-th between them, k the same for all (the server joins consecutive points voxel by voxel, so the
 * stroke keeps its path to within k voxels). Unchanged when everything fits; null when the clicks alone do not. */
export function fitPoints(clicks: number, scribbles: readonly (readonly number[][])[], limit: number):
  number[][][] | null {
  const total = scribbles.reduce((n, s) => n + s.length, 0)
  if (clicks + total <= limit) return scribbles.map((s) => [...s])
  const room = limit - clicks - 2 * scribbles.length
  if (room < 0) return null
  for (let k = 2; ; k++) {
    const kept = scribbles.map((s) => s.filter((_, i) => i === 0 || i === s.length - 1 || i % k === 0))
    if (kept.reduce((n, s) => n + s.length, 0) + clicks <= limit) return kept
  }
}
