// The label map's edit state behind the Viewer: the edit history with its overwrite policy, the boxes that keep each
// edit box-local (the pen's stroke, each organ's box, everything edited since loading), the painted key slices for
// interpolation, the HU range, and the figures of the last edit. No NiiVue: the viewer hands over the bitmap and
// shows a box of it again through the host.
import { type Box, EditHistory, type Policy, clipBox, unionBox } from './edits'
import { organBoxes } from './geometry'
import { KeySlices } from './ops/interpolate'

/** What the edit state needs from the viewer. */
export interface EditHost {
  bitmap: () => Uint8Array
  dims: () => number[] // the drawing's [nx, ny, nz]
  axis: () => number // the voxel axis across the displayed slice
  show: (box: Box | null) => void // upload a box of the bitmap (null: all of it) and redraw
  syncGpu: () => void
  onEdit: () => void
}

const EVERYWHERE: Box = { x0: 0, y0: 0, z0: 0, x1: 1e9, y1: 1e9, z1: 1e9 }

export function boxVoxels(box: Box | null): number {
  return box ? (box.x1 - box.x0 + 1) * (box.y1 - box.y0 + 1) * (box.z1 - box.z0 + 1) : 0
}

export class LabelEdits {
  policy: Policy = { tool: 'navigate', active: 1, protectOthers: true }
  lastStrokeMs = 0
  lastStrokeVoxels = 0
  lastStrokeScanned = 0 // voxels EditHistory compared for the last stroke (the stroke's box; all when unknown)
  lastToolMs = 0 // a computed edit's own work: computing it and applying it to the label and its history
  lastRedrawMs = 0 // its upload to the GPU and the redraw, apart
  private history: EditHistory | null = null
  private strokeBox: Box | null = null // drawing voxels the pen touched since the last accepted stroke
  private loadedBoxes = new Map<number, Box>() // each organ's box in the loaded label
  private editedBox: Box | null = null // every voxel any edit, undo or redo touched since
  private keys = new KeySlices() // painted slices, for interpolation
  private intensity: ((index: number) => boolean) | undefined // an HU range limiting every painting tool

  constructor(private host: EditHost) {}

  /** A freshly loaded label: a new history and organ boxes. */
  reset(): void {
    const bmp = this.host.bitmap()
    this.strokeBox = null
    this.history = new EditHistory(bmp, this.host.dims())
    this.loadedBoxes = organBoxes(bmp, this.host.dims())
    this.editedBox = null
  }

  /** The server's newer label is in the bitmap: re-apply the local edits on top. Returns voxels kept. */
  rebase(): number {
    if (!this.history) return 0
    this.strokeBox = null
    const { history, kept } = this.history.rebase(this.host.bitmap())
    this.history = history
    this.loadedBoxes = organBoxes(this.host.bitmap(), this.host.dims())
    return kept
  }

  get loaded(): boolean {
    return this.history !== null
  }

  close(): void {
    this.history = null
  }

  /** The pen touched these voxels during the current stroke. */
  touch(box: Box | null): void {
    this.strokeBox = unionBox(this.strokeBox, box)
  }

  /** Accept the pen's stroke (NiiVue drew it into the bitmap) as one edit under the policy. */
  acceptStroke(): void {
    if (!this.history) return
    const t0 = performance.now()
    const box = this.strokeBox // null: the pen went a way we do not track, so scan the whole volume
    this.strokeBox = null
    const result = this.history.accept(this.host.bitmap(), this.paintPolicy(), box)
    this.editedBox = unionBox(this.editedBox, box ?? EVERYWHERE)
    this.logKeySlice(box)
    if (result.refused > 0) this.host.show(box)
    const t1 = performance.now()
    performance.measure('atlas:stroke', { start: t0, end: t1 })
    this.lastStrokeMs = t1 - t0
    this.lastStrokeVoxels = result.changed
    this.lastStrokeScanned = box ? boxVoxels(clipBox(box, this.host.dims())) : this.host.bitmap().length
    this.host.onEdit()
  }

  private paintPolicy(): Policy {
    const painting = this.policy.tool !== 'eraser' && this.policy.tool !== 'navigate'
    return painting && this.intensity ? { ...this.policy, allow: this.intensity } : this.policy
  }

  get intensityLimit(): ((index: number) => boolean) | undefined {
    return this.intensity
  }

  setIntensityLimit(allow: ((index: number) => boolean) | undefined): void {
    this.intensity = allow
  }

  organBox(value: number): Box | null {
    const loaded = this.loadedBoxes.get(value) ?? null
    const edited = this.editedBox ? clipBox(this.editedBox, this.host.dims()) : null
    return unionBox(loaded, edited)
  }

  edit(box: Box | null, write: (label: Uint8Array) => void, limit: boolean): number {
    const inside = box ? clipBox(box, this.host.dims()) : null
    if (!this.history || !inside) return 0
    const t0 = performance.now()
    write(this.host.bitmap())
    const policy = { ...this.policy, allow: limit ? this.intensity : undefined }
    const result = this.history.accept(this.host.bitmap(), policy, inside)
    this.editedBox = unionBox(this.editedBox, inside)
    const t1 = performance.now()
    this.host.show(inside)
    this.host.syncGpu()
    const t2 = performance.now()
    performance.measure('atlas:tool', { start: t0, end: t1 })
    this.lastToolMs = t1 - t0
    this.lastRedrawMs = t2 - t1
    this.lastStrokeVoxels = result.changed
    this.lastStrokeScanned = boxVoxels(inside)
    this.host.onEdit()
    return result.changed
  }

  /** Paint into the label during a stroke; returns the box painted in (null: outside the volume). */
  paint(box: Box | null, write: (label: Uint8Array) => void): Box | null {
    const inside = box ? clipBox(box, this.host.dims()) : null
    if (!inside) return null
    const t0 = performance.now()
    write(this.host.bitmap())
    this.lastToolMs += performance.now() - t0
    this.touch(inside)
    return inside
  }

  endStroke(): void {
    const before = this.lastToolMs
    this.acceptStroke()
    this.lastToolMs = before + this.lastStrokeMs
    this.host.onEdit()
  }

  /** A pen stroke on one slice of the view's axis is a key slice for interpolation of its organ (changed or not). */
  private logKeySlice(box: Box | null): void {
    const { tool, active } = this.policy
    if (box && (tool === 'brush' || tool === 'fill')) this.keys.add(box, this.host.axis(), active)
  }

  keySlices(axis: number, value: number): { slices: number[]; box: Box | null } {
    return this.keys.slices(axis, value)
  }

  forgetKeySlices(axis: number, value: number): void {
    this.keys.forget(axis, value)
  }

  /** Undo (or redo) one step; returns the box it changed, or null when there was none. */
  step(back: boolean): Box | null {
    const bmp = this.host.bitmap()
    const box = back ? this.history?.undo(bmp) : this.history?.redo(bmp)
    if (!box) return null
    this.editedBox = unionBox(this.editedBox, box)
    return box
  }

  get dirty(): boolean {
    return this.history?.dirty ?? false
  }

  get depth(): [number, number] {
    return this.history?.depth ?? [0, 0]
  }

  get newest(): object | null {
    return this.history?.newest ?? null
  }

  holds(edit: object): boolean {
    return this.history?.holds(edit) ?? false
  }

  changes(): { voxels: number; byValue: Map<number, number> } {
    return this.history?.changes() ?? { voxels: 0, byValue: new Map() }
  }
}
