// The one module that knows NiiVue. The rest of the app sees a Viewer: load a task's volumes, views, window
// presets, tools, undo/redo, hotspot navigation, and the label map as a .nii.gz for upload.
//
// Layers: the CT is the background volume, the attention heatmap an overlay with the `hot` colour map, and the
// label map NiiVue's drawing layer coloured with the label set's colours. NiiVue's own undo (a whole-volume RLE
// snapshot per stroke) is switched off; EditHistory keeps undo and redo and applies the overwrite policy.
//
// Large volumes (512 x 512 x 300 = 78.6 M voxels): NiiVue 0.69 re-uploads the whole drawing texture on every mouse
// move of a stroke and re-blends every layer whenever anything about a volume changes; wrap.ts and layers.ts keep
// that slice-local or once-only (wrap.ts says how).
// Performance marks ('atlas:load:*', 'atlas:stroke', 'atlas:tool') and upload counters show the costs in the page.
//
// Our own tools (sphere brush, click to grow, clean-up, interpolation, members; workspace/tools/) compute an edit into
// the drawing bitmap inside a box and hand it over through edit() or paint() + endStroke(): one EditHistory step under
// the same policy, and a box upload. Display is radiological by default.
//
// Modules: options.ts (types, presets, NiiVue's options), layers.ts (fetching and showing the CT, heatmap and label
// colours), labelEdits.ts (the edit state: history, boxes, key slices, HU range), wrap.ts (the NiiVue wrappers),
// textures.ts (GPU uploads), navigation.ts and geometry.ts (voxels, mm, HU), probes.ts (read-backs for tests).
import { NVImage, Niivue } from '@niivue/niivue'
import { type Box, type Tool, unionBox } from './edits'
import { LabelEdits } from './labelEdits'
import { type LabelColour, type LoadTimes, NIIVUE_OPTIONS, SLICE, type UploadStats, type ViewName, WINDOW_PRESETS,
  gzip } from './options'
import { Layers, fetchVolumes } from './layers'
import { type Marker, type Outline, OutlineLayer } from './outlines'
import { blendedColour, drawingMismatches, timeRedraw, webglKind } from './probes'
import { syncGpu } from './textures'
import { type PointerTool, type VolumeGeometry, geometryOf, listenPointer } from './geometry'
import { crosshairToFileVoxel, crosshairVoxel, voxelAt } from './navigation'
import { drawDims, wrapNiivue } from './wrap'

export { WINDOW_PRESETS }
export type { LabelColour, LoadTimes, Marker, Outline, UploadStats, ViewName }

export class Viewer {
  readonly canvas: HTMLCanvasElement
  private nv: Niivue
  private edits: LabelEdits
  private layers: Layers
  private outlines: OutlineLayer
  private view: ViewName = 'axial'
  brushSize = 1
  readonly uploads: UploadStats = { full: 0, box: 0, boxVoxels: 0 }
  draws = 0 // scene redraws since the page opened
  cleanups: (() => void)[] = []
  texBox: Box | null = null // drawing voxels changed since the last texture upload (null: unknown)
  private pointer: PointerTool | null = null // a tool that takes the left button from NiiVue (sphere, grow)
  geometry: VolumeGeometry | null = null
  radiological = true // the patient's right on the screen's left, as PACS, Slicer and OHIF show it
  onEdit: () => void = () => {}
  onWindow: (width: number, level: number) => void = () => {}
  onCrosshair: (voxel: number[]) => void = () => {}

  private constructor(canvas: HTMLCanvasElement, nv: Niivue) {
    this.canvas = canvas
    this.nv = nv
    this.layers = new Layers(nv)
    this.outlines = new OutlineLayer(nv, canvas, () => this.axis(), () => this.crosshairVoxel())
    this.edits = new LabelEdits({
      bitmap: () => this.bitmap(),
      dims: () => drawDims(this.nv),
      axis: () => this.axis(),
      show: (box) => this.showBox(box),
      syncGpu: () => syncGpu(this.nv.gl),
      onEdit: () => this.onEdit(),
    })
  }

  static async create(canvas: HTMLCanvasElement): Promise<Viewer> {
    const nv = new Niivue(NIIVUE_OPTIONS)
    await nv.attachToCanvas(canvas)
    const viewer = new Viewer(canvas, nv)
    wrapNiivue(nv, viewer) // instance-level wrappers of NiiVue 0.69 internals (wrap.ts)
    nv.onDrawingChanged = (action: string) => {
      if (action === 'draw') viewer.edits.acceptStroke()
    }
    nv.onIntensityChange = () => {
      const w = viewer.window()
      viewer.onWindow(w.width, w.level)
    }
    nv.onLocationChange = () => viewer.onCrosshair(viewer.crosshairVoxel())
    listenPointer(canvas, {
      tool: () => viewer.pointer,
      voxelAt: (e) => viewer.voxelAt(e),
      axis: () => viewer.axis(),
      begin: () => {
        viewer.edits.lastToolMs = 0
      },
    }, viewer.cleanups)
    return viewer
  }

  // --- the last edit's figures (labelEdits.ts) ---
  get lastStrokeMs(): number {
    return this.edits.lastStrokeMs
  }

  get lastStrokeVoxels(): number {
    return this.edits.lastStrokeVoxels
  }

  get lastStrokeScanned(): number {
    return this.edits.lastStrokeScanned
  }

  get lastToolMs(): number {
    return this.edits.lastToolMs
  }

  get lastRedrawMs(): number {
    return this.edits.lastRedrawMs
  }

  /** The pen or the outline changed these voxels (wrap.ts): upload them, and accept them with the stroke. */
  touch(box: Box | null): void {
    this.texBox = unionBox(this.texBox, box)
    this.edits.touch(box)
  }

  // --- read-backs for tests and benchmarks (probes.ts) ---
  /** Milliseconds for one redraw of the scene, GPU included. */
  timeRedraw(): number {
    return timeRedraw(this.nv)
  }

  /** Voxels where the drawing texture on the GPU differs from the drawing bitmap (box uploads must keep none). */
  drawingTextureMismatches(): number {
    return drawingMismatches(this.nv, drawDims(this.nv))
  }

  /** The CT's colour at a voxel (RAS indices) as blended on the GPU, [r, g, b, a] (tests: the window applies). */
  backgroundColour(voxel: number[]): number[] {
    return blendedColour(this.nv, drawDims(this.nv), voxel)
  }

  webgl(): string {
    return webglKind(this.nv)
  }

  async load(urls: { ct: string; label: string; attention: string }): Promise<LoadTimes> {
    const t0 = performance.now()
    performance.mark('atlas:load')
    const { ct, heat, label } = await fetchVolumes(urls)
    const t1 = performance.now()
    performance.measure('atlas:load:fetch', { start: t0, end: t1 })
    this.layers.add(ct, heat, WINDOW_PRESETS.abdomen)
    const t2 = performance.now()
    performance.measure('atlas:load:volumes', { start: t1, end: t2 })
    this.texBox = null
    if (label) {
      if (!this.nv.loadDrawing(label)) throw new Error('the label map does not match the CT grid')
    } else {
      this.nv.createEmptyDrawing()
    }
    this.edits.reset()
    this.geometry = geometryOf(ct)
    const t3 = performance.now()
    performance.measure('atlas:load:label', { start: t2, end: t3 })
    this.onWindow(WINDOW_PRESETS.abdomen.width, WINDOW_PRESETS.abdomen.level)
    this.showSliceType()
    this.applyTool()
    // The GPU works through the layers' blending after the calls above return: wait for it, so that "loaded" means
    // the first frame is painted (in software WebGL this is most of the load).
    this.nv.drawScene()
    syncGpu(this.nv.gl)
    const t4 = performance.now()
    performance.measure('atlas:load:gpu', { start: t3, end: t4 })
    performance.measure('atlas:load', { start: t0, end: t4 })
    return { totalMs: t4 - t0, fetchMs: t1 - t0, volumesMs: t2 - t1, labelMs: t3 - t2, gpuMs: t4 - t3 }
  }

  /** Replace the label with the server's newer one and re-apply the local edits on top. Returns voxels kept. */
  async rebase(labelUrl: string): Promise<number> {
    if (!this.edits.loaded) return 0
    const label = await NVImage.loadFromUrl({ url: labelUrl, name: 'label.nii.gz' })
    this.texBox = null
    if (!this.nv.loadDrawing(label)) throw new Error('the newer label map does not match the CT grid')
    const kept = this.edits.rebase()
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

  get intensityLimit(): ((index: number) => boolean) | undefined {
    return this.edits.intensityLimit
  }

  /** Limit every painting tool (brush, outline, sphere, grow; not the eraser) to voxels the test allows. */
  setIntensityLimit(allow: ((index: number) => boolean) | undefined): void {
    this.edits.setIntensityLimit(allow)
  }

  /** The box holding every voxel of an organ (conservative: grown by every edit since loading), or null. */
  organBox(value: number): Box | null {
    return this.edits.organBox(value)
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
    return this.edits.edit(box, write, limit)
  }

  /** Paint into the label during a stroke (shown at once, accepted as one edit by endStroke()). */
  paint(box: Box | null, write: (label: Uint8Array) => void): void {
    const inside = this.edits.paint(box, write)
    if (!inside) return
    this.texBox = unionBox(this.texBox, inside)
    this.nv.refreshDrawing(true)
  }

  /** Accept what paint() drew since the stroke began as one edit. */
  endStroke(): void {
    this.edits.endStroke()
  }

  /** The slices painted with the organ across `axis` since the last interpolation, and the box around the strokes. */
  keySlices(axis: number, value: number): { slices: number[]; box: Box | null } {
    return this.edits.keySlices(axis, value)
  }

  forgetKeySlices(axis: number, value: number): void {
    this.edits.forgetKeySlices(axis, value)
  }

  /** Outlines drawn over the displayed slice (members at a hotspot); [] removes them. */
  setOutlines(outlines: Outline[]): void {
    this.outlines.set(outlines)
  }

  /** The click tool's prompts drawn over the slices they lie on; [] removes them. */
  setMarkers(markers: Marker[]): void {
    this.outlines.setMarkers(markers)
  }

  afterDraw(): void {
    this.outlines?.draw()
  }

  /** Give the left button to a tool of ours (null: back to NiiVue's navigate / pen). */
  setPointerTool(tool: PointerTool | null): void {
    this.pointer = tool
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
    this.showSliceType()
  }

  // One set of orientation letters: the page's markers on a single view (ViewPanel's OrientationMarkers, which follow
  // the radiological switch), NiiVue's own per tile in the multiplanar view, where the page draws none.
  private showSliceType(): void {
    this.nv.opts.isOrientationTextVisible = this.view === 'multiplanar'
    this.nv.setSliceType(SLICE[this.view])
  }

  window(): { width: number; level: number } {
    return this.layers.window()
  }

  setWindow(width: number, level: number): void {
    if (this.layers.setWindow(width, level)) this.onWindow(width, level)
  }

  setLabelColours(colours: LabelColour[]): void {
    this.layers.setLabelColours(colours)
  }

  setLabelOpacity(opacity: number): void {
    this.layers.setLabelOpacity(opacity)
  }

  get hasHeatmap(): boolean {
    return this.layers.hasHeatmap
  }

  setHeatmap(visible: boolean, opacity: number): void {
    this.layers.setHeatmap(visible, opacity)
  }

  setTool(tool: Tool, active: number, brushSize: number, protectOthers: boolean): void {
    const p = this.edits.policy
    if (p.tool === tool && p.active === active && p.protectOthers === protectOthers && this.brushSize === brushSize &&
      this.nv.drawBitmap) return
    this.edits.policy = { tool, active, protectOthers }
    this.brushSize = brushSize
    this.applyTool()
  }

  private applyTool(): void {
    const { tool, active } = this.edits.policy
    this.nv.opts.penSize = this.brushSize
    if (tool === 'navigate' || tool === 'sphere' || tool === 'grow' || tool === 'click') {
      this.nv.setDrawingEnabled(false)
      return
    }
    this.nv.setDrawingEnabled(true)
    if (tool === 'eraser') this.nv.setPenValue(0, false)
    else this.nv.setPenValue(active, tool === 'fill')
  }

  undo(): boolean {
    return this.step(true)
  }

  redo(): boolean {
    return this.step(false)
  }

  private step(back: boolean): boolean {
    const box = this.edits.step(back)
    if (!box) return false
    this.showBox(box)
    this.onEdit()
    return true
  }

  /** Upload a box of the drawing (null: all of it) and redraw. */
  private showBox(box: Box | null): void {
    this.texBox = box
    this.nv.refreshDrawing(true)
  }

  get dirty(): boolean {
    return this.edits.dirty
  }

  get undoDepth(): [number, number] {
    return this.edits.depth
  }

  /** The newest edit on the undo stack, by identity (null: none). */
  get newestEdit(): object | null {
    return this.edits.newest
  }

  /** Whether an edit (a newestEdit) is still made: on the undo stack, not undone. */
  holdsEdit(edit: object): boolean {
    return this.edits.holds(edit)
  }

  /** Changed voxels against the loaded label, and per organ value how many voxels it gained or lost. */
  changes(): { voxels: number; byValue: Map<number, number> } {
    return this.edits.changes()
  }

  /** The viewer's voxel (RAS-ordered indices, as NiiVue holds the volume) under a mouse event, or null. */
  voxelAt(event: MouseEvent): number[] | null {
    return voxelAt(this.nv, this.canvas, event)
  }

  labelAt(voxel: number[]): number {
    const [nx, ny] = this.dims
    const bmp = this.nv.drawBitmap
    return bmp ? bmp[voxel[0] + voxel[1] * nx + voxel[2] * nx * ny] : 0
  }

  crosshairVoxel(): number[] {
    return crosshairVoxel(this.nv)
  }

  /** Centre all views on a voxel given in the file's own (x, y, z) indices (hotspot centroids are). */
  centreOnFileVoxel(ijk: number[]): void {
    if (!crosshairToFileVoxel(this.nv, ijk)) return
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
    const raw = await this.nv.volumes[0].saveToDisk('', this.bitmap())
    return gzip(raw)
  }

  destroy(): void {
    this.edits.close()
    this.outlines.svg.remove()
    for (const cleanup of this.cleanups.splice(0)) cleanup()
    const gl = (this.nv as unknown as { _gl: WebGL2RenderingContext | null })._gl
    gl?.getExtension('WEBGL_lose_context')?.loseContext()
  }
}
