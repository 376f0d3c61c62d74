// Edit history for a label volume: our own undo and redo stacks (NiiVue keeps undo only, as whole-volume RLE
// snapshots), and the overwrite policy applied to each stroke. Pure: no NiiVue, no DOM.
//
// Volumes are flat Uint8Arrays in the viewer's voxel order (x fastest, then y, then z; dims [nx, ny, nz]).
// `committed` is the label after the last accepted stroke; the viewer paints into `live`; accept() compares the two
// and keeps only what the policy allows. A stroke touches one slice, so accept() takes the box the viewer painted
// in and scans only that (a 512 x 512 x 300 volume is 78.6 M voxels; a stroke's box a few thousand).

// the NiiVue pen's tools; the others (sphere brush, region growing, the click model, clean-up...) compute their edit
// themselves
export type Tool = 'navigate' | 'brush' | 'eraser' | 'fill' | 'sphere' | 'grow' | 'click'

export interface Policy {
  tool: Tool
  active: number // the organ value the pen paints (and the only organ any tool removes)
  protectOthers: boolean // painting never overwrites another organ
  allow?: (index: number) => boolean // when set, only voxels it allows may change (an HU range)
}

/** An axis-aligned box of voxels, bounds inclusive: x0..x1, y0..y1, z0..z1. */
export interface Box {
  x0: number
  x1: number
  y0: number
  y1: number
  z0: number
  z1: number
}

/** The smallest box holding both (either may be null). */
export function unionBox(a: Box | null, b: Box | null): Box | null {
  if (!a) return b
  if (!b) return a
  return { x0: Math.min(a.x0, b.x0), x1: Math.max(a.x1, b.x1), y0: Math.min(a.y0, b.y0), y1: Math.max(a.y1, b.y1),
    z0: Math.min(a.z0, b.z0), z1: Math.max(a.z1, b.z1) }
}

/** The box clipped to a volume of `dims`, or null when nothing of it is inside. */
export function clipBox(box: Box, dims: readonly number[]): Box | null {
  const b = { x0: Math.max(0, box.x0), x1: Math.min(dims[0] - 1, box.x1), y0: Math.max(0, box.y0),
    y1: Math.min(dims[1] - 1, box.y1), z0: Math.max(0, box.z0), z1: Math.min(dims[2] - 1, box.z1) }
  return b.x0 <= b.x1 && b.y0 <= b.y1 && b.z0 <= b.z1 ? b : null
}

/**
 * The box around flat voxel indices (null for none). Its bounds are kept in locals, so that the box is made of
 * small integers only: a Box holding Infinity, even for a moment, would change every Box's hidden class (integer
 * fields become doubles) and throw away the code the JIT compiled for boxes.
 */
export function boxOfIndices(index: Uint32Array, dims: readonly number[]): Box | null {
  if (index.length === 0) return null
  const nx = dims[0]
  const nxy = dims[0] * dims[1]
  let x0 = nx
  let x1 = -1
  let y0 = dims[1]
  let y1 = -1
  let z0 = dims[2]
  let z1 = -1
  for (let k = 0; k < index.length; k++) {
    const i = index[k]
    const z = Math.floor(i / nxy)
    const r = i - z * nxy
    const y = Math.floor(r / nx)
    const x = r - y * nx
    if (x < x0) x0 = x
    if (x > x1) x1 = x
    if (y < y0) y0 = y
    if (y > y1) y1 = y
    if (z < z0) z0 = z
    if (z > z1) z1 = z
  }
  return { x0, x1, y0, y1, z0, z1 }
}

/** First word index in [w, end) where a and b differ (end if none). */
function firstDifference(a: Uint32Array, b: Uint32Array, w: number, end: number): number {
  while (w < end && a[w] === b[w]) w++
  return w
}

interface Step {
  index: Uint32Array
  before: Uint8Array
  after: Uint8Array
}

export interface StrokeResult {
  changed: number // voxels the stroke changed (after the policy)
  refused: number // voxels the viewer changed that the policy put back
}

/**
 * One accept(): applies the policy to each voxel it is given, keeps the step's voxels in arrays grown by doubling.
 * A class, not closures made per call: its methods are the same functions on every call, so the code the JIT
 * compiles for them (and inlines into accept) holds from one call to the next.
 */
class Acceptor {
  changed = 0
  refused = 0
  private index = new Uint32Array(1024)
  private before = new Uint8Array(1024)
  private after = new Uint8Array(1024)
  private n = 0
  private readonly active: number
  private readonly protectOthers: boolean
  private readonly allow: ((index: number) => boolean) | null

  constructor(private readonly committed: Uint8Array, private readonly live: Uint8Array, policy: Policy) {
    this.active = policy.active
    this.protectOthers = policy.protectOthers
    this.allow = policy.allow ?? null
  }

  /** Accept or put back voxel i (which may equal the committed one). */
  visit(i: number): void {
    const old = this.committed[i]
    const now = this.live[i]
    if (old === now) return
    // only the active organ is added or removed (the pen never writes 0 except as the eraser)
    let ok: boolean
    if (now === 0) ok = old === this.active
    else ok = now === this.active && (!this.protectOthers || old === 0 || old === this.active)
    if (ok && this.allow !== null && !this.allow(i)) ok = false
    if (ok) {
      this.push(i, old, now)
      this.committed[i] = now
      this.changed++
    } else {
      this.live[i] = old
      this.refused++
    }
  }

  /** Visit the four voxels of word w. */
  visitWord(w: number): void {
    const i = w << 2
    this.visit(i)
    this.visit(i + 1)
    this.visit(i + 2)
    this.visit(i + 3)
  }

  private push(i: number, b: number, a: number): void {
    const n = this.n
    if (n === this.index.length) {
      const i2 = new Uint32Array(n * 2)
      i2.set(this.index)
      this.index = i2
      const b2 = new Uint8Array(n * 2)
      b2.set(this.before)
      this.before = b2
      const a2 = new Uint8Array(n * 2)
      a2.set(this.after)
      this.after = a2
    }
    this.index[n] = i
    this.before[n] = b
    this.after[n] = a
    this.n = n + 1
  }

  step(): Step {
    const n = this.n
    return { index: this.index.slice(0, n), before: this.before.slice(0, n), after: this.after.slice(0, n) }
  }
}

export class EditHistory {
  readonly original: Uint8Array // the label as loaded (the base revision)
  readonly committed: Uint8Array
  private undoStack: Step[] = []
  private redoStack: Step[] = []
  private rebased = false // holds local edits carried over from an older base

  readonly dims: readonly number[] // [nx, ny, nz]

  constructor(loaded: Uint8Array, dims: readonly number[]) {
    if (dims[0] * dims[1] * dims[2] !== loaded.length) {
      throw new Error(`a label of ${loaded.length} voxels is not ${dims.join(' x ')}`)
    }
    this.dims = dims.slice(0, 3)
    this.original = loaded.slice()
    this.committed = loaded.slice()
  }

  get canUndo(): boolean {
    return this.undoStack.length > 0
  }

  get canRedo(): boolean {
    return this.redoStack.length > 0
  }

  /** Whether the label differs from the loaded one through edits made here (cheap: no volume scan). */
  get dirty(): boolean {
    return this.undoStack.length > 0 || this.rebased
  }

  get depth(): [number, number] {
    return [this.undoStack.length, this.redoStack.length]
  }

  /** The newest edit still on the undo stack (compared by identity: is an edit still the newest?). */
  get newest(): object | null {
    return this.undoStack.length ? this.undoStack[this.undoStack.length - 1] : null
  }

  /** Whether an edit (newest's identity when it was made) is on the undo stack: made and not undone. */
  holds(edit: object): boolean {
    return this.undoStack.includes(edit as Step)
  }

  /**
   * Accept the viewer's stroke in `live` under the policy; refused voxels are put back in `live`. With `box`, only
   * voxels inside it are compared: the caller promises that `live` and the committed label agree outside it.
   * Without, the whole volume is scanned.
   */
  accept(live: Uint8Array, policy: Policy, box?: Box | null): StrokeResult {
    const c = this.committed
    const n = c.length
    const v = new Acceptor(c, live, policy)
    const aligned = c.byteOffset % 4 === 0 && live.byteOffset % 4 === 0
    if (box) {
      // row by row; a row's aligned middle four voxels (one 32-bit word) at a time
      const [nx, ny] = this.dims
      const inside = clipBox(box, this.dims)
      const c32 = aligned ? new Uint32Array(c.buffer, c.byteOffset, n >> 2) : null
      const l32 = aligned ? new Uint32Array(live.buffer, live.byteOffset, n >> 2) : null
      if (inside) {
        for (let z = inside.z0; z <= inside.z1; z++) {
          for (let y = inside.y0; y <= inside.y1; y++) {
            const row = (z * ny + y) * nx
            const end = row + inside.x1 + 1
            let i = row + inside.x0
            if (c32 && l32) {
              for (; i < end && (i & 3) !== 0; i++) v.visit(i)
              // the row's whole words: each differing one found by a small loop of its own (compiled early)
              const wordEnd = end >> 2
              for (let w = i >> 2; (w = firstDifference(c32, l32, w, wordEnd)) < wordEnd; w++) v.visitWord(w)
              if (wordEnd << 2 > i) i = wordEnd << 2 // (a row shorter than its unaligned head stays as it is)
            }
            for (; i < end; i++) v.visit(i)
          }
        }
      }
    } else if (aligned) {
      const words = n >> 2
      const c32 = new Uint32Array(c.buffer, c.byteOffset, words)
      const l32 = new Uint32Array(live.buffer, live.byteOffset, words)
      for (let w = 0; (w = firstDifference(c32, l32, w, words)) < words; w++) v.visitWord(w)
      for (let i = words << 2; i < n; i++) v.visit(i)
    } else {
      for (let i = 0; i < n; i++) v.visit(i)
    }
    if (v.changed > 0) {
      this.undoStack.push(v.step())
      this.redoStack = []
    }
    return { changed: v.changed, refused: v.refused }
  }

  /** Put `live` back to the committed state (a stroke the viewer drew but we discard). */
  revert(live: Uint8Array): void {
    live.set(this.committed)
  }

  /** Undo the last accepted stroke in `live` too; returns the box it touched, or null when there was none. */
  undo(live: Uint8Array): Box | null {
    const step = this.undoStack.pop()
    if (!step) return null
    for (let k = 0; k < step.index.length; k++) {
      live[step.index[k]] = step.before[k]
      this.committed[step.index[k]] = step.before[k]
    }
    this.redoStack.push(step)
    return boxOfIndices(step.index, this.dims)
  }

  /** Redo the last undone stroke in `live` too; returns the box it touched, or null when there was none. */
  redo(live: Uint8Array): Box | null {
    const step = this.redoStack.pop()
    if (!step) return null
    for (let k = 0; k < step.index.length; k++) {
      live[step.index[k]] = step.after[k]
      this.committed[step.index[k]] = step.after[k]
    }
    this.undoStack.push(step)
    return boxOfIndices(step.index, this.dims)
  }

  /** Voxels that differ from the loaded label, and per organ value how many voxels it gained or lost. */
  changes(): { voxels: number; byValue: Map<number, number> } {
    const byValue = new Map<number, number>()
    let voxels = 0
    const o = this.original
    const c = this.committed
    for (let i = 0; i < c.length; i++) {
      if (o[i] !== c[i]) {
        voxels++
        byValue.set(o[i], (byValue.get(o[i]) ?? 0) + 1)
        byValue.set(c[i], (byValue.get(c[i]) ?? 0) + 1)
      }
    }
    byValue.delete(0)
    return { voxels, byValue }
  }

  /**
   * Re-base the local edits onto a newer label (`latest`, modified in place): every voxel we changed from our
   * original takes our value, every other voxel keeps the newer label's. Returns a fresh history on `latest`.
   */
  rebase(latest: Uint8Array): { history: EditHistory; kept: number } {
    const history = new EditHistory(latest, this.dims)
    const o = this.original
    const c = this.committed
    let kept = 0
    for (let i = 0; i < c.length; i++) {
      if (o[i] !== c[i]) {
        latest[i] = c[i]
        history.committed[i] = c[i]
        kept++
      }
    }
    history.rebased = kept > 0
    return { history, kept }
  }
}
