// The one module that knows NiiVue. The rest of the app sees a Viewer: load a task's volumes, views, window
// presets, tools, undo/redo, hotspot navigation, and the label map as a .nii.gz for upload.
//
// Layers: the CT is the background volume, the attention heatmap an overlay with the `hot` colour map, and the
// label map NiiVue's drawing layer coloured with the label set's colours. NiiVue's own undo (a whole-volume RLE
// snapshot per stroke) is switched off; EditHistory keeps undo and redo and applies the overwrite policy.
//
// Large volumes (512 x 512 x 300 = 78.6 M voxels): NiiVue 0.69 re-uploads the whole drawing texture on every mouse
// move of a stroke, and re-blends every layer (plus a gradient texture for 3D rendering) whenever anything about a
// volume changes. The adapter keeps that slice-local or once-only by wrapping a few NiiVue methods on the instance
// (wrapNiivue()):
// - the pen, the filled outline and our undo / redo record the box of voxels they touched; refreshDrawing uploads
//   only that box (texSubImage3D) and EditHistory.accept scans only that box; anything else falls back to NiiVue's
//   whole-volume upload and a whole-volume scan;
// - the CT and the heatmap go onto the GPU in one volume update instead of one each; label colours update the
//   colour table only (NiiVue's setDrawColormap re-blends every layer); a window preset re-blends the CT only, the
//   heatmap's toggle and opacity the heatmap only;
// - the gradient texture (read only by the 3D render, which this page never shows) is computed on a 1 x 1 x nz
//   texture instead of in two full-size passes, and texture allocations skip NiiVue's zero-filled uploads (WebGL 2
//   initialises texture storage to zero itself);
// - the scene is redrawn once per mouse move (NiiVue redraws several times per move), and right-drag window / level
//   re-blends the CT at most once a frame.
// Performance marks ('atlas:load:*', 'atlas:stroke', 'atlas:tool') and upload counters show the costs in the page.
//
// Our own tools (sphere brush, click to grow, clean-up, interpolation, members; workspace/tools/) compute an edit into
// the drawing bitmap inside a box and hand it over through edit() or paint() + endStroke(): one EditHistory step under
// the same policy, and a box upload. Display is radiological by default.
import { DRAG_MODE, NVImage, Niivue, SHOW_RENDER, SLICE_TYPE } from '@niivue/niivue'
import { type Box, EditHistory, type Policy, type Tool, clipBox, unionBox } from './edits'
import { colourTable, fillBox, penBox, readLayer, syncGpu, textureMismatches, uploadBox } from './textures'
import { type PointerTool, type VolumeGeometry, geometryOf, listenPointer, organBoxes } from './geometry'
import { KeySlices } from './ops/interpolate'
import { wrapNiivue } from './wrap'

export type ViewName = 'axial' | 'coronal' | 'sagittal' | 'multiplanar'

export const WINDOW_PRESETS: Record<string, { width: number; level: number }> = {
  abdomen: { width: 400, level: 40 },
  liver: { width: 150, level: 60 },
  bone: { width: 1800, level: 400 },
}

export interface LabelColour {
  value: number
  color: string // #rrggbb
  visible: boolean
}

export interface LoadTimes {
  totalMs: number
  fetchMs: number // fetch + gunzip + decode of the three files (NiiVue's NVImage.loadFromUrl)
  volumesMs: number // CT and heatmap onto the GPU (one volume update)
  labelMs: number // the label map as the drawing layer, and the edit history
  gpuMs: number // waiting for the GPU to finish the above and paint the first frame
}

/** Drawing texture uploads since the page opened: whole volume, and only a touched box (with its voxels). */
export interface UploadStats {
  full: number
  box: number
  boxVoxels: number
}

const SLICE: Record<ViewName, SLICE_TYPE> = {
  axial: SLICE_TYPE.AXIAL,
  coronal: SLICE_TYPE.CORONAL,
  sagittal: SLICE_TYPE.SAGITTAL,
  multiplanar: SLICE_TYPE.MULTIPLANAR,
}

function boxVoxels(box: Box | null): number {
  return box ? (box.x1 - box.x0 + 1) * (box.y1 - box.y0 + 1) * (box.z1 - box.z0 + 1) : 0
}

async function gzip(data: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([data as BlobPart]).stream().pipeThrough(new CompressionStream('gzip'))
  return new Uint8Array(await new Response(stream).arrayBuffer())
}

export class Viewer {
  readonly canvas: HTMLCanvasElement
  private nv: Niivue
  private history: EditHistory | null = null
  private heat: NVImage | null = null
  private view: ViewName = 'axial'
  private heatVisible = true
  private heatOpacity = 0.5
  private coloursKey = ''
  private heatApplied = false
  private labelOpacity = -1
  policy: Policy = { tool: 'navigate', active: 1, protectOthers: true }
  brushSize = 1
  lastStrokeMs = 0
  lastStrokeVoxels = 0
  lastStrokeScanned = 0 // voxels EditHistory compared for the last stroke (the stroke's box; all when unknown)
  readonly uploads: UploadStats = { full: 0, box: 0, boxVoxels: 0 }
  draws = 0 // scene redraws since the page opened
  cleanups: (() => void)[] = []
  texBox: Box | null = null // drawing voxels changed since the last texture upload (null: unknown)
  private strokeBox: Box | null = null // drawing voxels the pen touched since the last accepted stroke
  private loadedBoxes = new Map<number, Box>() // each organ's box in the loaded label
  private editedBox: Box | null = null // every voxel any edit, undo or redo touched since
  private keys = new KeySlices() // painted slices, for interpolation
  private pointer: PointerTool | null = null // a tool that takes the left button from NiiVue (sphere, grow)
  private intensity: ((index: number) => boolean) | undefined // an HU range limiting every painting tool
  geometry: VolumeGeometry | null = null
  radiological = true // the patient's right on the screen's left, as PACS, Slicer and OHIF show it
  lastToolMs = 0 // a computed edit's own work: computing it and applying it to the label and its history
  lastRedrawMs = 0 // its upload to the GPU and the redraw, apart
  onEdit: () => void = () => {}
  onWindow: (width: number, level: number) => void = () => {}
  onCrosshair: (voxel: number[]) => void = () => {}

  private constructor(canvas: HTMLCanvasElement, nv: Niivue) {
    this.canvas = canvas
    this.nv = nv
  }

  static async create(canvas: HTMLCanvasElement): Promise<Viewer> {
    const nv = new Niivue({
      backColor: [0, 0, 0, 1],
      crosshairColor: [0.2, 0.8, 1, 0.7],
      show3Dcrosshair: false,
      isColorbar: false,
      dragAndDropEnabled: false,
      multiplanarShowRender: SHOW_RENDER.NEVER,
      dragMode: DRAG_MODE.windowing, // right-drag: window / level, as in ITK-SNAP and Slicer
      clipPlaneHotKey: '',
      cycleClipPlaneHotKey: '',
      viewModeHotKey: '',
      isNearestInterpolation: true,
      isRadiologicalConvention: true,
      isOrientationTextVisible: true,
      loadingText: '',
      penSize: 1,
      maxDrawUndoBitmaps: 2,
    })
    await nv.attachToCanvas(canvas)
    const viewer = new Viewer(canvas, nv)
    viewer.wrapNiivue()
    nv.onDrawingChanged = (action: string) => {
      if (action === 'draw') viewer.acceptStroke()
    }
    nv.onIntensityChange = () => {
      const w = viewer.window()
      viewer.onWindow(w.width, w.level)
    }
    nv.onLocationChange = () => viewer.onCrosshair(viewer.crosshairVoxel())
    viewer.listenPointer()
    return viewer
  }

  /** Instance-level wrappers of NiiVue 0.69 internals (wrap.ts). */
  private wrapNiivue(): void {
    wrapNiivue(this.nv, this)
  }

  /** The drawing's dims [nx, ny, nz] (RAS order, as NiiVue holds the bitmap). */
  private drawDims(): number[] {
    const d = this.nv.back?.dims
    return d ? [d[1], d[2], d[3]] : [0, 0, 0]
  }

  private touch(box: Box | null): void {
    this.texBox = unionBox(this.texBox, box)
    this.strokeBox = unionBox(this.strokeBox, box)
  }

  /** The pen's box: a line from a to b (or a point), spread by the pen in the slice's plane. */
  touchPen(a: number[], b: number[], axCorSag: number): void {
    this.touch(penBox(a, b, axCorSag, this.nv.opts.penSize ?? 1, this.drawDims()))
  }

  touchFill(points: number[][], axCorSag: number): void {
    this.touch(fillBox(points, axCorSag, this.drawDims()))
  }

  /** Upload one box of the drawing bitmap into the drawing texture. False when it cannot (caller uploads all). */
  uploadBox(box: Box): boolean {
    const nv = this.nv
    const bmp = nv.drawBitmap
    const tex = nv.drawTexture
    const dims = this.drawDims()
    if (!bmp || !tex || nv.opts.is2DSliceShader || bmp.length !== dims[0] * dims[1] * dims[2]) return false
    const voxels = uploadBox(nv.gl, tex, bmp, dims, box)
    if (voxels) {
      this.uploads.box++
      this.uploads.boxVoxels += voxels
    }
    return true
  }

  /** Run fn with NiiVue's volume updates held back, then do one if fn asked for any. */
  private oneVolumeUpdate(fn: () => void, update = true): void {
    const nv = this.nv as unknown as Record<string, unknown>
    let asked = false
    nv.updateGLVolume = () => {
      asked = true
    }
    try {
      fn()
    } finally {
      delete nv.updateGLVolume // back to the prototype's
    }
    if (asked && update) this.nv.updateGLVolume()
  }

  /** Milliseconds for one redraw of the scene, GPU included (benchmarks). */
  timeRedraw(): number {
    const t0 = performance.now()
    this.nv.drawScene()
    this.syncGpu()
    return performance.now() - t0
  }

  private syncGpu(): void {
    syncGpu(this.nv.gl)
  }

  private readLayer(texture: WebGLTexture, z: number): Uint8Array {
    const [nx, ny] = this.drawDims()
    return readLayer(this.nv.gl, texture, z, nx, ny)
  }

  /**
   * Voxels where the drawing texture on the GPU differs from the drawing bitmap (tests: box uploads must keep the
   * two equal). Reads the whole texture back; meant for small volumes.
   */
  drawingTextureMismatches(): number {
    const bmp = this.nv.drawBitmap
    const tex = this.nv.drawTexture
    return bmp && tex ? textureMismatches(this.nv.gl, tex, bmp, this.drawDims()) : -1
  }

  /** The CT's colour at a voxel (RAS indices) as blended on the GPU, [r, g, b, a] (tests: the window applies). */
  backgroundColour(voxel: number[]): number[] {
    const tex = (this.nv as unknown as { volumeTexture: WebGLTexture | null }).volumeTexture
    const [nx] = this.drawDims()
    if (!tex) return []
    const rgba = this.readLayer(tex, voxel[2])
    const i = (voxel[0] + voxel[1] * nx) * 4
    return Array.from(rgba.subarray(i, i + 4))
  }

  /** 'webgl2' when NiiVue renders through a WebGL2 context, else 'none'. */
  webgl(): string {
    const gl = (this.nv as unknown as { _gl: unknown })._gl
    return typeof WebGL2RenderingContext !== 'undefined' && gl instanceof WebGL2RenderingContext ? 'webgl2' : 'none'
  }

  async load(urls: { ct: string; label: string; attention: string }): Promise<LoadTimes> {
    const t0 = performance.now()
    performance.mark('atlas:load')
    const [ct, heat, label] = await Promise.all([
      NVImage.loadFromUrl({ url: urls.ct, name: 'ct.nii.gz' }),
      NVImage.loadFromUrl({ url: urls.attention, name: 'attention.nii.gz', colormap: 'hot', opacity: 0.5,
        cal_min: 1, cal_max: 255 }).catch(() => null),
      NVImage.loadFromUrl({ url: urls.label, name: 'label.nii.gz' }).catch(() => null),
    ])
    const t1 = performance.now()
    performance.measure('atlas:load:fetch', { start: t0, end: t1 })
    ct.cal_min = WINDOW_PRESETS.abdomen.level - WINDOW_PRESETS.abdomen.width / 2
    ct.cal_max = WINDOW_PRESETS.abdomen.level + WINDOW_PRESETS.abdomen.width / 2
    if (heat) {
      heat.cal_min = 1
      heat.cal_max = 255
      heat.opacity = this.heatVisible ? this.heatOpacity : 0
      this.heat = heat
      this.heatApplied = true
    }
    // one volume update for both layers (NiiVue's addVolume does one each, re-blending every layer every time)
    this.oneVolumeUpdate(() => {
      this.nv.addVolume(ct)
      if (heat) this.nv.addVolume(heat)
    })
    const t2 = performance.now()
    performance.measure('atlas:load:volumes', { start: t1, end: t2 })
    this.texBox = null
    if (label) {
      if (!this.nv.loadDrawing(label)) throw new Error('the label map does not match the CT grid')
    } else {
      this.nv.createEmptyDrawing()
    }
    this.strokeBox = null
    this.history = new EditHistory(this.bitmap(), this.drawDims())
    this.geometry = geometryOf(ct)
    this.loadedBoxes = organBoxes(this.bitmap(), this.drawDims())
    this.editedBox = null
    const t3 = performance.now()
    performance.measure('atlas:load:label', { start: t2, end: t3 })
    this.onWindow(WINDOW_PRESETS.abdomen.width, WINDOW_PRESETS.abdomen.level)
    this.nv.setSliceType(SLICE[this.view])
    this.applyTool()
    // The GPU works through the layers' blending after the calls above return: wait for it, so that "loaded" means
    // the first frame is painted (in software WebGL this is most of the load).
    this.nv.drawScene()
    this.syncGpu()
    const t4 = performance.now()
    performance.measure('atlas:load:gpu', { start: t3, end: t4 })
    performance.measure('atlas:load', { start: t0, end: t4 })
    return { totalMs: t4 - t0, fetchMs: t1 - t0, volumesMs: t2 - t1, labelMs: t3 - t2, gpuMs: t4 - t3 }
  }

  /** Replace the label with the server's newer one and re-apply the local edits on top. Returns voxels kept. */
  async rebase(labelUrl: string): Promise<number> {
    if (!this.history) return 0
    const label = await NVImage.loadFromUrl({ url: labelUrl, name: 'label.nii.gz' })
    const old = this.history
    this.texBox = null
    if (!this.nv.loadDrawing(label)) throw new Error('the newer label map does not match the CT grid')
    this.strokeBox = null
    const { history, kept } = old.rebase(this.bitmap())
    this.history = history
    this.loadedBoxes = organBoxes(this.bitmap(), this.drawDims())
    this.texBox = null // the whole volume
    this.nv.refreshDrawing(true)
    this.onEdit()
    return kept
  }

  private bitmap(): Uint8Array {
    const bmp = this.nv.drawBitmap
    if (!bmp) throw new Error('no label layer')
    return bmp
  }

  private acceptStroke(): void {
    if (!this.history) return
    const t0 = performance.now()
    const box = this.strokeBox // null: the pen went a way we do not track, so scan the whole volume
    this.strokeBox = null
    const result = this.history.accept(this.bitmap(), this.paintPolicy(), box)
    this.editedBox = box ? unionBox(this.editedBox, box) : { x0: 0, y0: 0, z0: 0, x1: 1e9, y1: 1e9, z1: 1e9 }
    this.logKeySlice(box)
    if (result.refused > 0) {
      this.texBox = box
      this.nv.refreshDrawing(true)
    }
    const t1 = performance.now()
    performance.measure('atlas:stroke', { start: t0, end: t1 })
    this.lastStrokeMs = t1 - t0
    this.lastStrokeVoxels = result.changed
    this.lastStrokeScanned = box ? boxVoxels(clipBox(box, this.drawDims())) : this.bitmap().length
    this.onEdit()
  }

  private paintPolicy(): Policy {
    const painting = this.policy.tool !== 'eraser' && this.policy.tool !== 'navigate'
    return painting && this.intensity ? { ...this.policy, allow: this.intensity } : this.policy
  }

  get intensityLimit(): ((index: number) => boolean) | undefined {
    return this.intensity
  }

  /** Limit every painting tool (brush, outline, sphere, grow; not the eraser) to voxels the test allows. */
  setIntensityLimit(allow: ((index: number) => boolean) | undefined): void {
    this.intensity = allow
  }

  /** The box holding every voxel of an organ (conservative: grown by every edit since loading), or null. */
  organBox(value: number): Box | null {
    const loaded = this.loadedBoxes.get(value) ?? null
    const edited = this.editedBox ? clipBox(this.editedBox, this.drawDims()) : null
    return unionBox(loaded, edited)
  }

  /** The label, flat in the viewer's voxel order (x fastest). Tools read it; they write only through edit(). */
  label(): Uint8Array {
    return this.bitmap()
  }

  /**
   * One computed edit as one undoable step: `write` puts new values into the label inside `box` only; the policy
   * (only the active organ is added or removed, "protect other organs", the HU range unless `limit` is false) keeps
   * what it allows. Returns the voxels changed. lastToolMs: write + accept; lastRedrawMs: upload + redraw.
   */
  edit(box: Box | null, write: (label: Uint8Array) => void, limit = true): number {
    const inside = box ? clipBox(box, this.drawDims()) : null
    if (!this.history || !inside) return 0
    const t0 = performance.now()
    write(this.bitmap())
    const policy = { ...this.policy, allow: limit ? this.intensity : undefined }
    const result = this.history.accept(this.bitmap(), policy, inside)
    this.editedBox = unionBox(this.editedBox, inside)
    const t1 = performance.now()
    this.texBox = inside
    this.nv.refreshDrawing(true)
    this.syncGpu()
    const t2 = performance.now()
    performance.measure('atlas:tool', { start: t0, end: t1 })
    this.lastToolMs = t1 - t0
    this.lastRedrawMs = t2 - t1
    this.lastStrokeVoxels = result.changed
    this.lastStrokeScanned = boxVoxels(inside)
    this.onEdit()
    return result.changed
  }

  /** Paint into the label during a stroke (shown at once, accepted as one edit by endStroke()). */
  paint(box: Box | null, write: (label: Uint8Array) => void): void {
    const inside = box ? clipBox(box, this.drawDims()) : null
    if (!inside) return
    const t0 = performance.now()
    write(this.bitmap())
    this.lastToolMs += performance.now() - t0
    this.touch(inside)
    this.nv.refreshDrawing(true)
  }

  /** Accept what paint() drew since the stroke began as one edit. */
  endStroke(): void {
    const before = this.lastToolMs
    this.acceptStroke()
    this.lastToolMs = before + this.lastStrokeMs
    this.onEdit()
  }

  /** A pen stroke on one slice of the view's axis is a key slice for interpolation of its organ (changed or not). */
  private logKeySlice(box: Box | null): void {
    const { tool, active } = this.policy
    if (box && (tool === 'brush' || tool === 'fill')) this.keys.add(box, this.axis(), active)
  }

  /** The slices painted with the organ across `axis` since the last interpolation, and the box around the strokes. */
  keySlices(axis: number, value: number): { slices: number[]; box: Box | null } {
    return this.keys.slices(axis, value)
  }

  forgetKeySlices(axis: number, value: number): void {
    this.keys.forget(axis, value)
  }

  /** Give the left button to a tool of ours (null: back to NiiVue's navigate / pen). */
  setPointerTool(tool: PointerTool | null): void {
    this.pointer = tool
  }

  private listenPointer(): void {
    listenPointer(this.canvas, {
      tool: () => this.pointer,
      voxelAt: (e) => this.voxelAt(e),
      axis: () => this.axis(),
      begin: () => {
        this.lastToolMs = 0
      },
    }, this.cleanups)
  }

  /** The voxel axis across the displayed slice: axial z (2), coronal y (1), sagittal x (0); multiplanar: z. */
  axis(): number {
    return this.view === 'sagittal' ? 0 : this.view === 'coronal' ? 1 : 2
  }

  /** Radiological (the patient's right on the screen's left) or neurological display. */
  setRadiological(on: boolean): void {
    if (on === this.radiological) return
    this.radiological = on
    this.nv.opts.isRadiologicalConvention = on
    this.nv.drawScene()
  }

  get dims(): number[] {
    const back = this.nv.volumes[0]
    return back ? [back.dimsRAS![1], back.dimsRAS![2], back.dimsRAS![3]] : [0, 0, 0]
  }

  get sliceType(): ViewName {
    return this.view
  }

  setView(view: ViewName): void {
    if (view === this.view) return
    this.view = view
    this.nv.setSliceType(SLICE[view])
  }

  window(): { width: number; level: number } {
    const v = this.nv.volumes[0]
    if (!v) return { width: 0, level: 0 }
    const lo = v.cal_min ?? 0
    const hi = v.cal_max ?? 0
    return { width: hi - lo, level: (hi + lo) / 2 }
  }

  setWindow(width: number, level: number): void {
    const v = this.nv.volumes[0]
    if (!v) return
    if (v.cal_min === level - width / 2 && v.cal_max === level + width / 2) return
    v.cal_min = level - width / 2
    v.cal_max = level + width / 2
    this.refreshLayer(0)
    this.onWindow(width, level)
  }

  setLabelColours(colours: LabelColour[]): void {
    const key = JSON.stringify(colours.map((c) => [c.value, c.color, c.visible]))
    if (key === this.coloursKey) return
    this.coloursKey = key
    const table = colourTable(colours)
    // NiiVue's setDrawColormap re-blends every layer (updateGLVolume); the drawing's colours are only the last row
    // of the colour-map texture, which refreshColormaps rebuilds.
    this.oneVolumeUpdate(() => this.nv.setDrawColormap(table as unknown as string), false)
    this.nv.refreshColormaps()
    this.nv.drawScene()
  }

  setLabelOpacity(opacity: number): void {
    if (opacity === this.labelOpacity) return
    this.labelOpacity = opacity
    this.nv.setDrawOpacity(opacity)
  }

  get hasHeatmap(): boolean {
    return this.heat !== null
  }

  setHeatmap(visible: boolean, opacity: number): void {
    if (visible === this.heatVisible && opacity === this.heatOpacity && this.heatApplied) return
    this.heatApplied = this.heat !== null
    this.heatVisible = visible
    this.heatOpacity = opacity
    if (!this.heat) return
    this.heat.opacity = this.heatVisible ? this.heatOpacity : 0
    this.refreshLayer(1)
  }

  /** Re-blend one layer (0: the CT, 1: the heatmap) and redraw: NiiVue's updateGLVolume re-blends them all. */
  private refreshLayer(index: number): void {
    const volume = this.nv.volumes[index]
    if (!volume) return
    this.nv.refreshLayers(volume, index)
    this.nv.drawScene()
  }

  setTool(tool: Tool, active: number, brushSize: number, protectOthers: boolean): void {
    const p = this.policy
    if (p.tool === tool && p.active === active && p.protectOthers === protectOthers && this.brushSize === brushSize &&
      this.nv.drawBitmap) return
    this.policy = { tool, active, protectOthers }
    this.brushSize = brushSize
    this.applyTool()
  }

  private applyTool(): void {
    const { tool, active } = this.policy
    this.nv.opts.penSize = this.brushSize
    if (tool === 'navigate' || tool === 'sphere' || tool === 'grow') {
      this.nv.setDrawingEnabled(false)
      return
    }
    this.nv.setDrawingEnabled(true)
    if (tool === 'eraser') this.nv.setPenValue(0, false)
    else this.nv.setPenValue(active, tool === 'fill')
  }

  undo(): boolean {
    const box = this.history?.undo(this.bitmap())
    if (!box) return false
    this.texBox = box
    this.editedBox = unionBox(this.editedBox, box)
    this.nv.refreshDrawing(true)
    this.onEdit()
    return true
  }

  redo(): boolean {
    const box = this.history?.redo(this.bitmap())
    if (!box) return false
    this.texBox = box
    this.editedBox = unionBox(this.editedBox, box)
    this.nv.refreshDrawing(true)
    this.onEdit()
    return true
  }

  get dirty(): boolean {
    return this.history?.dirty ?? false
  }

  get undoDepth(): [number, number] {
    return this.history?.depth ?? [0, 0]
  }

  /** Changed voxels against the loaded label, and per organ value how many voxels it gained or lost. */
  changes(): { voxels: number; byValue: Map<number, number> } {
    return this.history?.changes() ?? { voxels: 0, byValue: new Map() }
  }

  /** The viewer's voxel (RAS-ordered indices, as NiiVue holds the volume) under a mouse event, or null. */
  voxelAt(event: MouseEvent): number[] | null {
    const rect = this.canvas.getBoundingClientRect()
    const dpr = this.canvas.width / Math.max(1, rect.width)
    const frac = this.nv.canvasPos2frac([(event.clientX - rect.left) * dpr, (event.clientY - rect.top) * dpr])
    if (frac[0] < 0) return null
    return Array.from(this.nv.frac2vox(frac)).map((v) => Math.round(v))
  }

  labelAt(voxel: number[]): number {
    const [nx, ny] = this.dims
    const bmp = this.nv.drawBitmap
    return bmp ? bmp[voxel[0] + voxel[1] * nx + voxel[2] * nx * ny] : 0
  }

  crosshairVoxel(): number[] {
    return Array.from(this.nv.frac2vox(this.nv.scene.crosshairPos)).map((v) => Math.round(v))
  }

  /** Centre all views on a voxel given in the file's own (x, y, z) indices (hotspot centroids are). */
  centreOnFileVoxel(ijk: number[]): void {
    const back = this.nv.volumes[0]
    if (!back) return
    const A = back.hdr!.affine
    const mm = [0, 1, 2].map((r) => A[r][0] * ijk[0] + A[r][1] * ijk[1] + A[r][2] * ijk[2] + A[r][3])
    this.nv.scene.crosshairPos = this.nv.mm2frac([mm[0], mm[1], mm[2]])
    this.nv.drawScene()
    this.onCrosshair(this.crosshairVoxel())
  }

  /** Move the displayed slice by `delta` along the view's axis (axial: z, coronal: y, sagittal: x). */
  scroll(delta: number): void {
    const axis = this.axis()
    const step = [0, 0, 0]
    step[axis] = delta
    this.nv.moveCrosshairInVox(step[0], step[1], step[2])
    this.onCrosshair(this.crosshairVoxel())
  }

  /** The current label map as a gzipped NIfTI on the CT's grid (uint8), ready for upload. */
  async labelNifti(): Promise<Uint8Array> {
    const raw = (await this.nv.volumes[0].saveToDisk('', this.bitmap())) as Uint8Array
    return gzip(raw)
  }

  destroy(): void {
    this.history = null
    for (const cleanup of this.cleanups.splice(0)) cleanup()
    const gl = (this.nv as unknown as { _gl: WebGL2RenderingContext | null })._gl
    gl?.getExtension('WEBGL_lose_context')?.loseContext()
  }
}
