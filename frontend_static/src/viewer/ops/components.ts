// 3D clean-up of one organ inside its box: connected components (26-connected organ, 6-connected background, the
// usual pair), remove islands smaller than N voxels, keep the largest component, fill enclosed holes. Each writes
// into the label inside the box only; the viewer's edit() accepts it as one undoable step.
//
// Components are labelled on runs (maximal x-intervals of a row) with a union-find over runs: a run joins the runs
// of the neighbouring rows it overlaps (26: rows y-1 of its slice and y-1, y, y+1 of the slice below, overlap grown
// by one voxel; 6: rows y-1 and the slice below's y, exact overlap). Work grows with the runs, not the voxels times 26.
import type { Box } from '../edits'

interface Runs {
  start: Int32Array // x of each run's first voxel (crop coordinates)
  end: Int32Array // x of its last voxel
  rowFirst: Int32Array // per row (z * h + y), its first run; rowFirst[rows] = the run count
  parent: Int32Array // union-find over runs
}

/**
 * Runs of the crop's voxels equal to `value` (or, with `inverse`, different from it). One specialised loop per
 * row (no callback per voxel): a 512 x 512 x 300 liver's box is 7 M voxels.
 */
function findRuns(label: Uint8Array, dims: number[], box: Box, value: number, inverse: boolean): Runs {
  const [nx, ny] = dims
  const w = box.x1 - box.x0 + 1
  const h = box.y1 - box.y0 + 1
  const d = box.z1 - box.z0 + 1
  let start = new Int32Array(4096)
  let end = new Int32Array(4096)
  const rowFirst = new Int32Array(h * d + 1)
  let n = 0
  for (let z = 0; z < d; z++) {
    for (let y = 0; y < h; y++) {
      rowFirst[z * h + y] = n
      const row = ((z + box.z0) * ny + y + box.y0) * nx + box.x0
      let x = 0
      while (x < w) {
        // skip voxels outside the set, then take the run inside it
        if (inverse) {
          while (x < w && label[row + x] === value) x++
        } else {
          while (x < w && label[row + x] !== value) x++
        }
        if (x >= w) break
        const first = x
        if (inverse) {
          while (x < w && label[row + x] !== value) x++
        } else {
          while (x < w && label[row + x] === value) x++
        }
        if (n === start.length) {
          const s2 = new Int32Array(n * 2)
          s2.set(start)
          start = s2
          const e2 = new Int32Array(n * 2)
          e2.set(end)
          end = e2
        }
        start[n] = first
        end[n] = x - 1
        n++
      }
    }
  }
  rowFirst[h * d] = n
  const parent = new Int32Array(n)
  for (let i = 0; i < n; i++) parent[i] = i
  return { start: start.subarray(0, n), end: end.subarray(0, n), rowFirst, parent }
}

function root(parent: Int32Array, i: number): number {
  while (parent[i] !== i) {
    parent[i] = parent[parent[i]]
    i = parent[i]
  }
  return i
}

/** Join overlapping runs of neighbouring rows; returns each run's component root. */
function connect(r: Runs, h: number, d: number, full: boolean): Int32Array {
  const { start, end, rowFirst, parent } = r
  const grow = full ? 1 : 0
  const join = (a: number, rowB: number) => {
    for (let b = rowFirst[rowB]; b < rowFirst[rowB + 1]; b++) {
      if (end[b] < start[a] - grow) continue
      if (start[b] > end[a] + grow) break
      const ra = root(parent, a)
      const rb = root(parent, b)
      if (ra !== rb) parent[Math.max(ra, rb)] = Math.min(ra, rb)
    }
  }
  for (let z = 0; z < d; z++) {
    for (let y = 0; y < h; y++) {
      const row = z * h + y
      for (let a = rowFirst[row]; a < rowFirst[row + 1]; a++) {
        if (y > 0) join(a, row - 1)
        if (z > 0) {
          join(a, row - h)
          if (full) {
            if (y > 0) join(a, row - h - 1)
            if (y < h - 1) join(a, row - h + 1)
          }
        }
      }
    }
  }
  const roots = new Int32Array(parent.length)
  for (let i = 0; i < parent.length; i++) roots[i] = root(parent, i)
  return roots
}

/** Write `value` over every run whose component `pick(root)` selects. Returns voxels written. */
function writeRuns(label: Uint8Array, dims: number[], box: Box, r: Runs, roots: Int32Array,
  pick: (root: number) => boolean, value: number): number {
  const [nx, ny] = dims
  const h = box.y1 - box.y0 + 1
  const d = box.z1 - box.z0 + 1
  let written = 0
  for (let z = 0; z < d; z++) {
    for (let y = 0; y < h; y++) {
      const rowIndex = z * h + y
      const row = ((z + box.z0) * ny + y + box.y0) * nx + box.x0
      for (let k = r.rowFirst[rowIndex]; k < r.rowFirst[rowIndex + 1]; k++) {
        if (!pick(roots[k])) continue
        label.fill(value, row + r.start[k], row + r.end[k] + 1)
        written += r.end[k] - r.start[k] + 1
      }
    }
  }
  return written
}

function organComponents(label: Uint8Array, box: Box, dims: number[], value: number) {
  const runs = findRuns(label, dims, box, value, false)
  const roots = connect(runs, box.y1 - box.y0 + 1, box.z1 - box.z0 + 1, true)
  const sizes = new Map<number, number>()
  const count = new Int32Array(roots.length) // voxels per root (roots are run indices)
  for (let k = 0; k < roots.length; k++) count[roots[k]] += runs.end[k] - runs.start[k] + 1
  for (let k = 0; k < roots.length; k++) if (count[k] > 0) sizes.set(k, count[k])
  return { runs, roots, sizes }
}

/** Remove the organ's components smaller than `minVoxels` inside `box` (which holds the whole organ). */
export function removeIslands(label: Uint8Array, box: Box, dims: number[], value: number, minVoxels: number): number {
  const { runs, roots, sizes } = organComponents(label, box, dims, value)
  return writeRuns(label, dims, box, runs, roots, (r) => sizes.get(r)! < minVoxels, 0)
}

/** Keep only the organ's largest component (the first found among equals). */
export function keepLargest(label: Uint8Array, box: Box, dims: number[], value: number): number {
  const { runs, roots, sizes } = organComponents(label, box, dims, value)
  let largest = -1
  let most = -1
  for (const [r, size] of sizes) {
    if (size > most || (size === most && r < largest)) {
      largest = r
      most = size
    }
  }
  return writeRuns(label, dims, box, runs, roots, (r) => r !== largest, 0)
}

/**
 * Fill the organ's enclosed holes: voxels of anything else that no 6-connected path of non-organ voxels joins to the
 * border of `box` (pass the organ's box grown by one voxel, so that the outside is one connected shell).
 */
export function fillHoles(label: Uint8Array, box: Box, dims: number[], value: number): number {
  const w = box.x1 - box.x0 + 1
  const h = box.y1 - box.y0 + 1
  const d = box.z1 - box.z0 + 1
  const runs = findRuns(label, dims, box, value, true)
  const roots = connect(runs, h, d, false)
  const open = new Uint8Array(roots.length) // components (by root run) touching the box's border
  for (let z = 0; z < d; z++) {
    for (let y = 0; y < h; y++) {
      const row = z * h + y
      const edge = z === 0 || y === 0 || z === d - 1 || y === h - 1
      for (let k = runs.rowFirst[row]; k < runs.rowFirst[row + 1]; k++) {
        if (edge || runs.start[k] === 0 || runs.end[k] === w - 1) open[roots[k]] = 1
      }
    }
  }
  return writeRuns(label, dims, box, runs, roots, (r) => !open[r], value)
}
