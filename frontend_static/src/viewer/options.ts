// The viewer's vocabulary (views, window presets, label colours, load and upload figures) and the options NiiVue is
// created with. niivue.ts re-exports the types, so the rest of the app imports them from there.
import { DRAG_MODE, SHOW_RENDER, SLICE_TYPE } from '@niivue/niivue'

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

export const SLICE: Record<ViewName, SLICE_TYPE> = {
  axial: SLICE_TYPE.AXIAL,
  coronal: SLICE_TYPE.CORONAL,
  sagittal: SLICE_TYPE.SAGITTAL,
  multiplanar: SLICE_TYPE.MULTIPLANAR,
}

export const NIIVUE_OPTIONS = {
  backColor: [0, 0, 0, 1],
  crosshairColor: [0.2, 0.8, 1, 0.7],
  // NiiVue's default is one voxel wide, a band that hides the row and column under it on a coarse grid (9 pixels on
  // the demo's 96 x 96 slices): a thin line instead, 0.3% of the field of view, the same at any grid or zoom.
  crosshairWidthUnit: 'percent' as const,
  crosshairWidth: 0.3,
  show3Dcrosshair: false,
  isColorbar: false,
  dragAndDropEnabled: false,
  multiplanarShowRender: SHOW_RENDER.NEVER,
  dragMode: DRAG_MODE.windowing, // right-drag: window / level, as in ITK-SNAP and Slicer
  clipPlaneHotKey: '',
  cycleClipPlaneHotKey: '',
  viewModeHotKey: '',
  isNearestInterpolation: true,
  isRadiologicalConvention: true, // the patient's right on the screen's left, as PACS, Slicer and OHIF show it
  isOrientationTextVisible: false, // see Viewer.showSliceType
  loadingText: '',
  penSize: 1,
  maxDrawUndoBitmaps: 2,
}

export async function gzip(data: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([data as BlobPart]).stream().pipeThrough(new CompressionStream('gzip'))
  return new Uint8Array(await new Response(stream).arrayBuffer())
}
