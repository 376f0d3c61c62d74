// 3D clean-up of one organ inside its box: connected components (26-connected organ, 6-connected background, the
// usual pair), remove islands smaller than N voxels, keep the largest component, fill enclosed holes. Each writes
// into the label inside the box only; the viewer's edit() accepts it as one undoable step.
//
// Components are labelled on runs (maximal x-intervals of a row) with a union-find over runs: a run joins the runs
// of the neighbouring rows it overlaps (26: rows y-1 of its slice and y-1, y, y+1 of the slice below, overlap grown
// by one voxel; 6: rows y-1 and the slice below's y, exact overlap), two rows in one merge-like pass. Work grows with
// the runs, not the voxels times 26; the voxels themselves are read four at a time (32-bit words) and written as runs.
// No allocation per voxel, per run or (past the largest box seen) per call: the runs, their union-find and the
// components' sizes and marks live in scratch typed arrays kept across calls, grown by doubling, never shrunk.
//
// The first call in a page must be fast too (issue 12): the hot loops are small functions with one type of argument
// each (no inlined branch left without type feedback), and warmUpSteps() runs every clean-up and the edit history's
// box comparison on a small synthetic volume, one step per idle callback, so that the JIT has compiled them before
// the annotator's first click (workspace/tools/Cleanup.tsx schedules it).
import { type Box, EditHistory, type Policy } from '../edits'

// Scratch, kept across calls. Hot functions take the arrays as arguments (a module variable may be reassigned).
let runStart: Int32Array = new Int32Array(64) // x of each run's first voxel (crop coordinates)
let runEnd: Int32Array = new Int32Array(64) // x of its last voxel
let runParent: Int32Array = new Int32Array(64) // union-find over runs (parent[i] <= i); each run's root once resolved
let compSize: Int32Array = new Int32Array(64) // voxels per component, at its root run
let compMark: Uint8Array = new Uint8Array(64) // components chosen (at their root run)
let rowFirst: Int32Array = new Int32Array(64) // per row of the box (z * h + y), its first run; rowFirst[rows] = the run count

function grownInt32(a: Int32Array, need: number, keep: number): Int32Array {
  let size = a.length
  while (size < need) size *= 2
  const b = new Int32Array(size)
  b.set(a.subarray(0, keep))
  return b
}

/** Room for `need` runs, keeping the first `keep`. */
function reserveRuns(need: number, keep: number): void {
  if (need <= runStart.length) return
  runStart = grownInt32(runStart, need, keep)
  runEnd = grownInt32(runEnd, need, keep)
  runParent = new Int32Array(runStart.length)
  compSize = new Int32Array(runStart.length)
  compMark = new Uint8Array(runStart.length)
}

/**
 * Room in the scratch for a box of `rows` rows (z * y) with up to four runs per row on average: a case's largest
 * organ box, reserved before its first clean-up, so that the scratch grows on that call only for a ragged organ
 * (growing in a compiled loop costs a deoptimisation the first time: the JIT has no feedback for the branch).
 */
export function reserveScratch(rows: number): void {
  if (rowFirst.length < rows + 1) rowFirst = grownInt32(rowFirst, rows + 1, 0)
  reserveRuns(rows * 4, 0)
}

/** The label as 32-bit words (four voxels each) when its bytes are aligned for it, else null. */
export function wordsOf(label: Uint8Array): Uint32Array | null {
  return label.byteOffset % 4 === 0 ? new Uint32Array(label.buffer, label.byteOffset, label.length >> 2) : null
}

/** First index in [i, end) whose voxel is not `value` (end if none); whole words at a time where aligned. */
function skipEqual(label: Uint8Array, words: Uint32Array | null, i: number, end: number, value: number,
  rep: number): number {
  while (i < end && (i & 3) !== 0) {
    if (label[i] !== value) return i
    i++
  }
  if (words) while (i + 4 <= end && words[i >> 2] === rep) i += 4
  while (i < end && label[i] === value) i++
  return i
}

/** First index in [i, end) whose voxel is `value` (end if none); whole words at a time where aligned. */
function skipOther(label: Uint8Array, words: Uint32Array | null, i: number, end: number, value: number,
  rep: number): number {
  while (i < end && (i & 3) !== 0) {
    if (label[i] === value) return i
    i++
  }
  if (words) {
    // a word holds `value` where word ^ rep has a zero byte
    for (; i + 4 <= end; i += 4) {
      const v = words[i >> 2] ^ rep
      if (((v - 0x01010101) & ~v & 0x80808080) !== 0) break
    }
  }
  while (i < end && label[i] !== value) i++
  return i
}

/**
 * Append the runs of one row, label[row, rowEnd), of voxels equal to `value` (with `inverse`: different from it) to
 * start/end (x relative to `row`; room for them reserved by the caller) from index n; returns the new run count.
 */
function rowRuns(label: Uint8Array, words: Uint32Array | null, row: number, rowEnd: number, value: number, rep: number,
  inverse: boolean, start: Int32Array, end: Int32Array, n: number): number {
  let i = row
  for (;;) {
    // skip voxels outside the set, then take the run inside it
    i = inverse ? skipEqual(label, words, i, rowEnd, value, rep) : skipOther(label, words, i, rowEnd, value, rep)
    if (i >= rowEnd) return n
    const first = i
    i = inverse ? skipOther(label, words, i, rowEnd, value, rep) : skipEqual(label, words, i, rowEnd, value, rep)
    start[n] = first - row
    end[n] = i - 1 - row
    n++
  }
}

/**
 * Runs of the crop's voxels equal to `value` (or, with `inverse`, different from it) into the scratch; returns their
 * count. Scans a word (four voxels) at a time inside and between runs: a 512 x 512 x 300 liver's box is 7 M voxels.
 */
function findRuns(label: Uint8Array, dims: number[], box: Box, value: number, inverse: boolean): number {
  const [nx, ny] = dims
  const w = box.x1 - box.x0 + 1
  const h = box.y1 - box.y0 + 1
  const d = box.z1 - box.z0 + 1
  const words = wordsOf(label)
  const rep = (value * 0x01010101) >>> 0
  if (rowFirst.length < h * d + 1) rowFirst = grownInt32(rowFirst, h * d + 1, 0)
  const first = rowFirst
  const most = (w + 1) >> 1 // runs in one row at most
  let n = 0
  for (let z = 0; z < d; z++) {
    for (let y = 0; y < h; y++) {
      first[z * h + y] = n
      if (n + most > runStart.length) reserveRuns(n + most, n)
      const row = ((z + box.z0) * ny + y + box.y0) * nx + box.x0
      n = rowRuns(label, words, row, row + w, value, rep, inverse, runStart, runEnd, n)
    }
  }
  first[h * d] = n
  return n
}

/** Join two runs' components (union by smaller index, so that parent[i] <= i always holds). */
function union(parent: Int32Array, a: number, b: number): void {
  while (parent[a] !== a) a = parent[a] = parent[parent[a]]
  while (parent[b] !== b) b = parent[b] = parent[parent[b]]
  if (a < b) parent[b] = a
  else if (b < a) parent[a] = b
}

/**
 * Join the overlapping runs i in [i, iEnd) and j in [j, jEnd) of two rows (grow: 1 for diagonal contact) in one
 * merge-like pass over both.
 */
function joinRows(start: Int32Array, end: Int32Array, parent: Int32Array, i: number, iEnd: number, j: number,
  jEnd: number, grow: number): void {
  while (i < iEnd && j < jEnd) {
    if (end[j] < start[i] - grow) j++
    else if (start[j] > end[i] + grow) i++
    else {
      union(parent, i, j)
      // runs of one row are at least one voxel apart, so the run that ends first meets nothing further
      if (end[j] < end[i]) j++
      else i++
    }
  }
}

/** Join the n runs' overlapping runs of neighbouring rows; leaves each run's component root in runParent. */
function connect(n: number, h: number, d: number, full: boolean): void {
  const grow = full ? 1 : 0
  const start = runStart
  const end = runEnd
  const parent = runParent
  const first = rowFirst
  for (let k = 0; k < n; k++) parent[k] = k
  for (let z = 0; z < d; z++) {
    for (let y = 0; y < h; y++) {
      const row = z * h + y
      const a = first[row]
      const aEnd = first[row + 1]
      if (a === aEnd) continue
      if (y > 0) joinRows(start, end, parent, a, aEnd, first[row - 1], a, grow)
      if (z > 0) {
        const below = row - h
        joinRows(start, end, parent, a, aEnd, first[below], first[below + 1], grow)
        if (full) {
          if (y > 0) joinRows(start, end, parent, a, aEnd, first[below - 1], first[below], grow)
          if (y < h - 1) joinRows(start, end, parent, a, aEnd, first[below + 1], first[below + 2], grow)
        }
      }
    }
  }
  // parent[i] <= i: one ascending pass resolves every run to its root
  for (let i = 0; i < n; i++) parent[i] = parent[parent[i]]
}

/** Voxels per component of the n runs, at its root (runParent resolved). */
function sizeComponents(n: number): void {
  const size = compSize
  const start = runStart
  const end = runEnd
  const root = runParent
  size.fill(0, 0, n)
  for (let k = 0; k < n; k++) size[root[k]] += end[k] - start[k] + 1
}

/** Fill label[row + start[k], row + end[k]] with value for the runs k in [k, kEnd) whose root is marked. */
function writeRow(label: Uint8Array, row: number, start: Int32Array, end: Int32Array, root: Int32Array,
  mark: Uint8Array, k: number, kEnd: number, value: number): number {
  let written = 0
  for (; k < kEnd; k++) {
    if (mark[root[k]] === 0) continue
    label.fill(value, row + start[k], row + end[k] + 1)
    written += end[k] - start[k] + 1
  }
  return written
}

/** Write `value` over every run whose component root compMark marks. Returns voxels written. */
function writeRuns(label: Uint8Array, dims: number[], box: Box, value: number): number {
  const [nx, ny] = dims
  const h = box.y1 - box.y0 + 1
  const d = box.z1 - box.z0 + 1
  const first = rowFirst
  let written = 0
  for (let z = 0; z < d; z++) {
    for (let y = 0; y < h; y++) {
      const r = z * h + y
      if (first[r] === first[r + 1]) continue
      const row = ((z + box.z0) * ny + y + box.y0) * nx + box.x0
      written += writeRow(label, row, runStart, runEnd, runParent, compMark, first[r], first[r + 1], value)
    }
  }
  return written
}

/** The organ's components in the scratch (runs, roots, sizes); returns the run count. */
function organComponents(label: Uint8Array, box: Box, dims: number[], value: number): number {
  const n = findRuns(label, dims, box, value, false)
  connect(n, box.y1 - box.y0 + 1, box.z1 - box.z0 + 1, true)
  sizeComponents(n)
  return n
}

/** Mark the components (at their roots) of size in [1, below) and, if `spare` >= 0, not the one rooted there. */
function markSmall(n: number, below: number, spare: number): void {
  const size = compSize
  const mark = compMark
  for (let k = 0; k < n; k++) mark[k] = size[k] > 0 && size[k] < below && k !== spare ? 1 : 0
}

/** Remove the organ's components smaller than `minVoxels` inside `box` (which holds the whole organ). */
export function removeIslands(label: Uint8Array, box: Box, dims: number[], value: number, minVoxels: number): number {
  const n = organComponents(label, box, dims, value)
  markSmall(n, minVoxels, -1)
  return writeRuns(label, dims, box, 0)
}

/** Keep only the organ's largest component (the first found among equals). */
export function keepLargest(label: Uint8Array, box: Box, dims: number[], value: number): number {
  const n = organComponents(label, box, dims, value)
  const size = compSize
  let largest = -1
  for (let k = 0; k < n; k++) if (largest < 0 || size[k] > size[largest]) largest = k
  markSmall(n, 0x7fffffff, largest)
  return writeRuns(label, dims, box, 0)
}

/**
 * Fill the organ's enclosed holes: voxels of anything else that no 6-connected path of non-organ voxels joins to the
 * border of `box` (pass the organ's box grown by one voxel, so that the outside is one connected shell).
 */
export function fillHoles(label: Uint8Array, box: Box, dims: number[], value: number): number {
  const w = box.x1 - box.x0 + 1
  const h = box.y1 - box.y0 + 1
  const d = box.z1 - box.z0 + 1
  const n = findRuns(label, dims, box, value, true)
  connect(n, h, d, false)
  markClosed(n, w, h, d)
  return writeRuns(label, dims, box, value)
}

/** Mark the components (at their roots) that touch no border of the box (compSize is scratch here). */
function markClosed(n: number, w: number, h: number, d: number): void {
  const open = compSize // 1 at the root of a component with a run on the box's border
  const mark = compMark
  const start = runStart
  const end = runEnd
  const root = runParent
  const first = rowFirst
  open.fill(0, 0, n)
  for (let z = 0; z < d; z++) {
    for (let y = 0; y < h; y++) {
      const row = z * h + y
      const edge = z === 0 || y === 0 || z === d - 1 || y === h - 1
      for (let k = first[row]; k < first[row + 1]; k++) {
        if (edge || start[k] === 0 || end[k] === w - 1) open[root[k]] = 1
      }
    }
  }
  for (let k = 0; k < n; k++) mark[k] = root[k] === k && open[k] === 0 ? 1 : 0
}

/**
 * Warm-up for the JIT: steps that each run one clean-up on a small synthetic volume (an organ of value 5 with islands
 * beside it, holes inside it and a piece of another organ enclosed in it, beside another organ), accept it in an edit
 * history of its own under one of three policies (the viewer's for a clean-up; "protect other organs", which refuses
 * part of the filled holes; an intensity limit) and undo it: `rounds` times each clean-up. Touches nothing but its
 * own arrays and the scratch (which every call overwrites). The same functions, argument types and branches
 * (aligned words, runs longer than a word, empty rows, the scratch growing, voxels refused) as on a case, so that
 * the code compiled here still holds there.
 */
export function warmUpSteps(rounds: number): (() => void)[] {
  const dims = [42, 38, 24] // rows not a multiple of four voxels, so that boxes start and end inside words
  const [nx, ny, nz] = dims
  let volume: { label: Uint8Array; history: EditHistory } | null = null
  const make = () => {
    const label = new Uint8Array(nx * ny * nz)
    let seed = 12345
    const random = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x80000000
    for (let z = 0; z < nz; z++) {
      for (let y = 0; y < ny; y++) {
        for (let x = 0; x < nx; x++) {
          const organ = ((x - 18) / 13) ** 2 + ((y - 19) / 14) ** 2 + ((z - 12) / 9) ** 2 < 1
          const inner = ((x - 18) / 2) ** 2 + ((y - 19) / 2) ** 2 + ((z - 12) / 2) ** 2 < 1
          const other = ((x - 35) / 6) ** 2 + ((y - 18) / 8) ** 2 + ((z - 12) / 7) ** 2 < 1
          label[(z * ny + y) * nx + x] = inner ? 1 : organ ? 5 : other ? 1 : 0
        }
      }
    }
    // islands of 1 to 8 voxels beside the organ, holes of 1 to 8 voxels inside it
    for (let k = 0; k < 40; k++) {
      const x = 2 + Math.floor(random() * (nx - 5))
      const y = 2 + Math.floor(random() * (ny - 5))
      const z = 2 + Math.floor(random() * (nz - 5))
      const i = (z * ny + y) * nx + x
      const into = label[i] === 5 ? 0 : label[i] === 0 ? 5 : -1
      if (into < 0) continue
      for (let j = 0; j < 8; j++) if (random() < 0.6) label[i + (j & 1) + ((j >> 1) & 1) * nx + (j >> 2) * nx * ny] = into
    }
    volume = { label, history: new EditHistory(label, dims) }
  }
  const box: Box = { x0: 3, x1: 33, y0: 3, y1: 35, z0: 2, z1: 22 }
  const grown: Box = { x0: 2, x1: 34, y0: 2, y1: 36, z0: 1, z1: 23 }
  // policies as the viewer builds them for a computed edit (a spread of its policy plus `allow`) and for a stroke;
  // two intensity limits of different code, so that the call of `allow` is compiled for any function
  const plain = { tool: 'navigate' as const, active: 5, protectOthers: false }
  const protect = { tool: 'navigate' as const, active: 5, protectOthers: true }
  const policies: Policy[] = [{ ...plain, allow: undefined }, { ...protect, allow: undefined },
    { ...plain, allow: (i: number) => (i & 7) !== 0 }, { ...protect, allow: (i: number) => i % 5 !== 0 },
    { tool: 'navigate', active: 5, protectOthers: false }] // and the pen's own (niivue.ts)
  const step = (op: (label: Uint8Array) => number, where: Box, policy: Policy) => () => {
    if (!volume) make()
    op(volume!.label)
    volume!.history.accept(volume!.label, policy, where)
    volume!.history.undo(volume!.label)
  }
  const steps: (() => void)[] = [make] // the volume, a step of its own
  for (let r = 0; r < rounds; r++) {
    const policy = policies[r % policies.length]
    steps.push(step((label) => removeIslands(label, box, dims, 5, 6), box, policy))
    steps.push(step((label) => keepLargest(label, box, dims, 5), box, policy))
    steps.push(step((label) => fillHoles(label, grown, dims, 5), grown, policy))
  }
  steps.push(() => {
    volume = null
  })
  return steps
}
