// 3D clean-up of one organ inside its box: connected components (26-connected organ, 6-connected background, the
// usual pair), remove islands smaller than N voxels, keep the largest component, fill enclosed holes. Each writes
// into the label inside the box only; the viewer's edit() accepts it as one undoable step.
import type { Box } from '../edits'

interface Crop {
  box: Box
  w: number
  h: number
  d: number
  index: (x: number, y: number, z: number) => number // crop (x fastest) to the volume's flat index
}

function crop(box: Box, dims: number[]): Crop {
  const [nx, ny] = dims
  const w = box.x1 - box.x0 + 1
  const h = box.y1 - box.y0 + 1
  const d = box.z1 - box.z0 + 1
  return { box, w, h, d, index: (x, y, z) => ((z + box.z0) * ny + (y + box.y0)) * nx + x + box.x0 }
}

const N26: number[][] = []
for (let dz = -1; dz <= 1; dz++) for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) {
  if (dx || dy || dz) N26.push([dx, dy, dz])
}
const N6 = [[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]]

/**
 * Label the connected components of `mask` (w x h x d, x fastest): returns per-voxel component ids (0: outside the
 * mask, 1..n) and each component's size (sizes[id]).
 */
export function components(mask: Uint8Array, w: number, h: number, d: number,
  neighbours: number[][] = N26): { ids: Int32Array; sizes: number[] } {
  const ids = new Int32Array(mask.length)
  const sizes = [0]
  const stack = new Int32Array(mask.length)
  const wh = w * h
  for (let start = 0; start < mask.length; start++) {
    if (!mask[start] || ids[start]) continue
    const id = sizes.length
    let size = 0
    let top = 0
    stack[top++] = start
    ids[start] = id
    while (top > 0) {
      const i = stack[--top]
      size++
      const z = Math.floor(i / wh)
      const r = i - z * wh
      const y = Math.floor(r / w)
      const x = r - y * w
      for (const [dx, dy, dz] of neighbours) {
        const X = x + dx
        const Y = y + dy
        const Z = z + dz
        if (X < 0 || Y < 0 || Z < 0 || X >= w || Y >= h || Z >= d) continue
        const j = Z * wh + Y * w + X
        if (mask[j] && !ids[j]) {
          ids[j] = id
          stack[top++] = j
        }
      }
    }
    sizes.push(size)
  }
  return { ids, sizes }
}

function organMask(label: Uint8Array, c: Crop, value: number): Uint8Array {
  const mask = new Uint8Array(c.w * c.h * c.d)
  let o = 0
  for (let z = 0; z < c.d; z++) {
    for (let y = 0; y < c.h; y++) {
      const row = c.index(0, y, z)
      for (let x = 0; x < c.w; x++) mask[o++] = label[row + x] === value ? 1 : 0
    }
  }
  return mask
}

/** Set to 0 the organ's voxels whose component `drop(size, id)` says to drop. Returns voxels removed. */
function dropComponents(label: Uint8Array, box: Box, dims: number[], value: number,
  drop: (size: number, id: number, sizes: number[]) => boolean): number {
  const c = crop(box, dims)
  const { ids, sizes } = components(organMask(label, c, value), c.w, c.h, c.d)
  const gone = sizes.map((size, id) => id > 0 && drop(size, id, sizes))
  let removed = 0
  let o = 0
  for (let z = 0; z < c.d; z++) {
    for (let y = 0; y < c.h; y++) {
      const row = c.index(0, y, z)
      for (let x = 0; x < c.w; x++, o++) {
        if (gone[ids[o]]) {
          label[row + x] = 0
          removed++
        }
      }
    }
  }
  return removed
}

/** Remove the organ's components smaller than `minVoxels` inside `box` (which holds the whole organ). */
export function removeIslands(label: Uint8Array, box: Box, dims: number[], value: number, minVoxels: number): number {
  return dropComponents(label, box, dims, value, (size) => size < minVoxels)
}

/** Keep only the organ's largest component (the first found among equals). */
export function keepLargest(label: Uint8Array, box: Box, dims: number[], value: number): number {
  let largest = -1
  return dropComponents(label, box, dims, value, (_size, id, sizes) => {
    if (largest < 0) largest = sizes.reduce((best, s, k) => (k > 0 && s > sizes[best] ? k : best), 1)
    return id !== largest
  })
}

/**
 * Fill the organ's enclosed holes: voxels of anything else that no 6-connected path of non-organ voxels joins to the
 * border of `box` (pass the organ's box grown by one voxel, so that the outside is one connected shell).
 */
export function fillHoles(label: Uint8Array, box: Box, dims: number[], value: number): number {
  const c = crop(box, dims)
  const organ = organMask(label, c, value)
  const outside = new Uint8Array(organ.length)
  for (let i = 0; i < organ.length; i++) outside[i] = organ[i] ? 0 : 1
  const { ids, sizes } = components(outside, c.w, c.h, c.d, N6)
  const open = new Uint8Array(sizes.length) // components touching the box's border
  const wh = c.w * c.h
  for (let i = 0; i < ids.length; i++) {
    if (!ids[i]) continue
    const z = Math.floor(i / wh)
    const r = i - z * wh
    const y = Math.floor(r / c.w)
    const x = r - y * c.w
    if (x === 0 || y === 0 || z === 0 || x === c.w - 1 || y === c.h - 1 || z === c.d - 1) open[ids[i]] = 1
  }
  let filled = 0
  let o = 0
  for (let z = 0; z < c.d; z++) {
    for (let y = 0; y < c.h; y++) {
      const row = c.index(0, y, z)
      for (let x = 0; x < c.w; x++, o++) {
        if (ids[o] && !open[ids[o]]) {
          label[row + x] = value
          filled++
        }
      }
    }
  }
  return filled
}
