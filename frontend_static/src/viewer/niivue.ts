// The one module that knows NiiVue. The rest of the app sees a Viewer: load a task's volumes, views, window
// presets, tools, undo/redo, hotspot navigation, and the label map as a .nii.gz for upload.
//
// Layers: the CT is the background volume, the attention heatmap an overlay with the `hot` colour map, and the
// label map NiiVue's drawing layer coloured with the label set's colours. NiiVue's own undo (a whole-volume RLE
// snapshot per stroke) is switched off; EditHistory keeps undo and redo and applies the overwrite policy.
import { DRAG_MODE, NVImage, Niivue, SHOW_RENDER, SLICE_TYPE } from '@niivue/niivue'
import { EditHistory, type Policy, type Tool } from './edits'

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
  fetchMs: number
}

const SLICE: Record<ViewName, SLICE_TYPE> = {
  axial: SLICE_TYPE.AXIAL,
  coronal: SLICE_TYPE.CORONAL,
  sagittal: SLICE_TYPE.SAGITTAL,
  multiplanar: SLICE_TYPE.MULTIPLANAR,
}

function rgb(hex: string): [number, number, number] {
  const m = /^#?([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})/i.exec(hex)
  return m ? [parseInt(m[1], 16), parseInt(m[2], 16), parseInt(m[3], 16)] : [255, 0, 0]
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
      loadingText: '',
      penSize: 1,
      maxDrawUndoBitmaps: 2,
    })
    await nv.attachToCanvas(canvas)
    const viewer = new Viewer(canvas, nv)
    // Our EditHistory replaces NiiVue's undo snapshots (each one RLE-encodes the whole volume).
    ;(nv as unknown as { drawAddUndoBitmap: () => void }).drawAddUndoBitmap = () => {}
    // NiiVue 0.69's pen line (new point A to previous point B) skips A itself, so a stroke's last voxel is lost
    // on mouse-up; paint A as well.
    const pen = nv as unknown as { drawPenLine: (a: number[], b: number[], value: number) => void }
    const drawPenLine = pen.drawPenLine.bind(nv)
    pen.drawPenLine = (a, b, value) => {
      drawPenLine(a, b, value)
      nv.drawPt(a[0], a[1], a[2], value)
    }
    nv.onDrawingChanged = (action: string) => {
      if (action === 'draw') viewer.acceptStroke()
    }
    nv.onIntensityChange = () => {
      const w = viewer.window()
      viewer.onWindow(w.width, w.level)
    }
    nv.onLocationChange = () => viewer.onCrosshair(viewer.crosshairVoxel())
    return viewer
  }

  /** 'webgl2' when NiiVue renders through a WebGL2 context, else 'none'. */
  webgl(): string {
    const gl = (this.nv as unknown as { _gl: unknown })._gl
    return typeof WebGL2RenderingContext !== 'undefined' && gl instanceof WebGL2RenderingContext ? 'webgl2' : 'none'
  }

  async load(urls: { ct: string; label: string; attention: string }): Promise<LoadTimes> {
    const t0 = performance.now()
    const [ct, heat, label] = await Promise.all([
      NVImage.loadFromUrl({ url: urls.ct, name: 'ct.nii.gz' }),
      NVImage.loadFromUrl({ url: urls.attention, name: 'attention.nii.gz', colormap: 'hot', opacity: 0.5,
        cal_min: 1, cal_max: 255 }).catch(() => null),
      NVImage.loadFromUrl({ url: urls.label, name: 'label.nii.gz' }).catch(() => null),
    ])
    const t1 = performance.now()
    ct.cal_min = WINDOW_PRESETS.abdomen.level - WINDOW_PRESETS.abdomen.width / 2
    ct.cal_max = WINDOW_PRESETS.abdomen.level + WINDOW_PRESETS.abdomen.width / 2
    this.nv.addVolume(ct)
    if (heat) {
      heat.cal_min = 1
      heat.cal_max = 255
      heat.opacity = this.heatVisible ? this.heatOpacity : 0
      this.heat = heat
      this.heatApplied = true
      this.nv.addVolume(heat)
    }
    if (label) {
      if (!this.nv.loadDrawing(label)) throw new Error('the label map does not match the CT grid')
    } else {
      this.nv.createEmptyDrawing()
    }
    this.history = new EditHistory(this.bitmap())
    this.onWindow(WINDOW_PRESETS.abdomen.width, WINDOW_PRESETS.abdomen.level)
    this.nv.setSliceType(SLICE[this.view])
    this.applyTool()
    return { totalMs: performance.now() - t0, fetchMs: t1 - t0 }
  }

  /** Replace the label with the server's newer one and re-apply the local edits on top. Returns voxels kept. */
  async rebase(labelUrl: string): Promise<number> {
    if (!this.history) return 0
    const label = await NVImage.loadFromUrl({ url: labelUrl, name: 'label.nii.gz' })
    const old = this.history
    if (!this.nv.loadDrawing(label)) throw new Error('the newer label map does not match the CT grid')
    const { history, kept } = old.rebase(this.bitmap())
    this.history = history
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
    const result = this.history.accept(this.bitmap(), this.policy)
    if (result.refused > 0) this.nv.refreshDrawing(true)
    this.lastStrokeMs = performance.now() - t0
    this.lastStrokeVoxels = result.changed
    this.onEdit()
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
    this.nv.updateGLVolume()
    this.onWindow(width, level)
  }

  setLabelColours(colours: LabelColour[]): void {
    const key = JSON.stringify(colours.map((c) => [c.value, c.color, c.visible]))
    if (key === this.coloursKey) return
    this.coloursKey = key
    const max = Math.max(1, ...colours.map((c) => c.value))
    const R: number[] = []
    const G: number[] = []
    const B: number[] = []
    const A: number[] = []
    const I: number[] = []
    for (let value = 0; value <= max; value++) {
      const c = colours.find((x) => x.value === value)
      const [r, g, b] = c ? rgb(c.color) : [255, 255, 255]
      R.push(r)
      G.push(g)
      B.push(b)
      A.push(value === 0 || (c && !c.visible) ? 0 : 255)
      I.push(value)
    }
    this.nv.setDrawColormap({ R, G, B, A, I } as unknown as string)
    this.nv.refreshDrawing(true)
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
    this.nv.setOpacity(1, this.heatVisible ? this.heatOpacity : 0)
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
    if (tool === 'navigate') {
      this.nv.setDrawingEnabled(false)
      return
    }
    this.nv.setDrawingEnabled(true)
    if (tool === 'eraser') this.nv.setPenValue(0, false)
    else this.nv.setPenValue(active, tool === 'fill')
  }

  undo(): boolean {
    if (!this.history?.undo(this.bitmap())) return false
    this.nv.refreshDrawing(true)
    this.onEdit()
    return true
  }

  redo(): boolean {
    if (!this.history?.redo(this.bitmap())) return false
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
    const axis = this.view === 'sagittal' ? 0 : this.view === 'coronal' ? 1 : 2
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
    const gl = (this.nv as unknown as { _gl: WebGL2RenderingContext | null })._gl
    gl?.getExtension('WEBGL_lose_context')?.loseContext()
  }
}
