// Slice interpolation, shape-based: between two key slices (along one axis) that hold the organ, each slice in
// between takes the organ where the linear blend of the two slices' signed distance maps is negative (Raya and
// Udupa's shape-based interpolation; chamfer 3-4 distances in the slice). Only adds the organ; works inside the
// in-plane box given (the annotator's strokes), slices strictly between the key slices only.
import { type Box, unionBox } from '../edits'

/** Two-pass chamfer (3-4) distance to the nearest set voxel of a w x h mask (0 on set voxels; units: 1/3 voxel). */
function chamfer(mask: Uint8Array, w: number, h: number): Float32Array {
  const big = 1e9
  const dt = new Float32Array(w * h)
  for (let i = 0; i < dt.length; i++) dt[i] = mask[i] ? 0 : big
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * w + x
      let v = dt[i]
      if (x > 0) v = Math.min(v, dt[i - 1] + 3)
      if (y > 0) {
        v = Math.min(v, dt[i - w] + 3)
        if (x > 0) v = Math.min(v, dt[i - w - 1] + 4)
        if (x < w - 1) v = Math.min(v, dt[i - w + 1] + 4)
      }
      dt[i] = v
    }
  }
  for (let y = h - 1; y >= 0; y--) {
    for (let x = w - 1; x >= 0; x--) {
      const i = y * w + x
      let v = dt[i]
      if (x < w - 1) v = Math.min(v, dt[i + 1] + 3)
      if (y < h - 1) {
        v = Math.min(v, dt[i + w] + 3)
        if (x < w - 1) v = Math.min(v, dt[i + w + 1] + 4)
        if (x > 0) v = Math.min(v, dt[i + w - 1] + 4)
      }
      dt[i] = v
    }
  }
  return dt
}

/** Signed distance (negative inside) of a mask; with no voxel set, +infinity everywhere (or -infinity if all). */
function signed(mask: Uint8Array, w: number, h: number): Float32Array {
  const inv = new Uint8Array(mask.length)
  for (let i = 0; i < mask.length; i++) inv[i] = mask[i] ? 0 : 1
  const out = chamfer(mask, w, h)
  const inside = chamfer(inv, w, h)
  for (let i = 0; i < out.length; i++) out[i] = out[i] - inside[i]
  return out
}

export interface SliceFrame {
  axis: number // the axis across the slices (0 x, 1 y, 2 z)
  box: Box // in-plane extent to work in (its extent along `axis` is ignored)
}

/** The in-plane voxels of slice `s` inside the frame: flat indices, row-major over the two in-plane axes. */
function sliceIndices(frame: SliceFrame, s: number, dims: number[]): { index: Int32Array; w: number; h: number } {
  const [nx, ny] = dims
  const lo = [frame.box.x0, frame.box.y0, frame.box.z0]
  const hi = [frame.box.x1, frame.box.y1, frame.box.z1]
  const [a, b] = [0, 1, 2].filter((k) => k !== frame.axis)
  const w = hi[a] - lo[a] + 1
  const h = hi[b] - lo[b] + 1
  const index = new Int32Array(w * h)
  const v = [0, 0, 0]
  v[frame.axis] = s
  for (let j = 0; j < h; j++) {
    for (let i = 0; i < w; i++) {
      v[a] = lo[a] + i
      v[b] = lo[b] + j
      index[j * w + i] = (v[2] * ny + v[1]) * nx + v[0]
    }
  }
  return { index, w, h }
}

/**
 * Fill the slices strictly between consecutive `keys` (sorted slice numbers along frame.axis) with the organ's
 * interpolated shape. Returns the box written (null when nothing lies between).
 */
export function interpolateSlices(label: Uint8Array, dims: number[], value: number, frame: SliceFrame,
  keys: number[]): Box | null {
  const sorted = [...new Set(keys)].sort((m, n) => m - n)
  let written: Box | null = null
  for (let k = 0; k + 1 < sorted.length; k++) {
    const s0 = sorted[k]
    const s1 = sorted[k + 1]
    if (s1 - s0 < 2) continue
    const a = sliceIndices(frame, s0, dims)
    const b = sliceIndices(frame, s1, dims)
    const maskA = new Uint8Array(a.index.length)
    const maskB = new Uint8Array(b.index.length)
    for (let i = 0; i < maskA.length; i++) {
      maskA[i] = label[a.index[i]] === value ? 1 : 0
      maskB[i] = label[b.index[i]] === value ? 1 : 0
    }
    if (!maskA.includes(1) || !maskB.includes(1)) continue
    const da = signed(maskA, a.w, a.h)
    const db = signed(maskB, b.w, b.h)
    for (let s = s0 + 1; s < s1; s++) {
      const t = (s - s0) / (s1 - s0)
      const { index } = sliceIndices(frame, s, dims)
      for (let i = 0; i < index.length; i++) if ((1 - t) * da[i] + t * db[i] < 0) label[index[i]] = value
    }
    const box = { ...frame.box }
    const key = (['x', 'y', 'z'] as const)[frame.axis]
    box[`${key}0`] = s0 + 1
    box[`${key}1`] = s1 - 1
    written = written ? { x0: Math.min(written.x0, box.x0), x1: Math.max(written.x1, box.x1), y0: Math.min(written.y0,
      box.y0), y1: Math.max(written.y1, box.y1), z0: Math.min(written.z0, box.z0), z1: Math.max(written.z1, box.z1) }
      : box
  }
  return written
}

/** The slices the annotator painted (one-slice pen strokes), per axis and organ: interpolation's key slices. */
export class KeySlices {
  private keys: { axis: number; slice: number; value: number; box: Box }[] = []

  /** Log a stroke's box when it lies in one slice across `axis`. */
  add(box: Box, axis: number, value: number): void {
    const lo = [box.x0, box.y0, box.z0][axis]
    if (lo === [box.x1, box.y1, box.z1][axis]) this.keys.push({ axis, slice: lo, value, box })
  }

  slices(axis: number, value: number): { slices: number[]; box: Box | null } {
    const keys = this.keys.filter((k) => k.axis === axis && k.value === value)
    return { slices: [...new Set(keys.map((k) => k.slice))].sort((a, b) => a - b),
      box: keys.reduce<Box | null>((b, k) => unionBox(b, k.box), null) }
  }

  forget(axis: number, value: number): void {
    this.keys = this.keys.filter((k) => k.axis !== axis || k.value !== value)
  }
}
