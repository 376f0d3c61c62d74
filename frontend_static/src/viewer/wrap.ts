// NiiVue 0.69 internals wrapped on one instance for the adapter (niivue.ts).
//
// Large volumes (512 x 512 x 300 = 78.6 M voxels): NiiVue 0.69 re-uploads the whole drawing texture on every mouse
// move of a stroke, and re-blends every layer (plus a gradient texture for 3D rendering) whenever anything about a
// volume changes. The adapter keeps that slice-local or once-only by wrapping a few NiiVue methods on the instance
// (here, and layers.ts for the layers):
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
import type { NVImage, Niivue } from '@niivue/niivue'
import type { Box } from './edits'
import type { UploadStats } from './options'
import { fillBox, penBox, uploadBox } from './textures'

const DT_RGBA32 = 2304

/** What the wrappers read and write on the viewer. */
export interface WrapHost {
  canvas: HTMLCanvasElement
  texBox: Box | null
  uploads: UploadStats
  draws: number
  cleanups: (() => void)[]
  touch: (box: Box | null) => void // the pen or the outline changed these drawing voxels
  afterDraw: () => void // the scene was drawn (overlays follow it)
  window: () => { width: number; level: number }
  onWindow: (width: number, level: number) => void
}

/** The drawing's dims [nx, ny, nz] (RAS order, as NiiVue holds the bitmap). */
export function drawDims(nv: Niivue): number[] {
  const d = nv.back?.dims
  return d ? [d[1], d[2], d[3]] : [0, 0, 0]
}

/** Upload one box of the drawing bitmap into the drawing texture. False when it cannot (caller uploads all). */
function uploadDrawingBox(nv: Niivue, box: Box, uploads: UploadStats): boolean {
  const bmp = nv.drawBitmap
  const tex = nv.drawTexture
  const dims = drawDims(nv)
  if (!bmp || !tex || nv.opts.is2DSliceShader || bmp.length !== dims[0] * dims[1] * dims[2]) return false
  const voxels = uploadBox(nv.gl, tex, bmp, dims, box)
  if (voxels) {
    uploads.box++
    uploads.boxVoxels += voxels
  }
  return true
}

export function wrapNiivue(nv: Niivue, host: WrapHost): void {
    const inner = nv as unknown as {
      drawAddUndoBitmap: () => void
      drawPt: (x: number, y: number, z: number, value: number, bitmap?: Uint8Array | null) => void
      drawPenLine: (a: number[], b: number[], value: number) => void
      drawPenFilled: () => void
      drawPenFillPts: number[][]
      drawPenAxCorSag: number
      refreshDrawing: (isForceRedraw?: boolean, useClickToSegmentBitmap?: boolean) => void
      rgbaTex: (tex: WebGLTexture | null, unit: number, dims: number[], isInit?: boolean) => WebGLTexture | null
      r8Tex: (tex: WebGLTexture | null, unit: number, dims: number[], isInit?: boolean) => WebGLTexture | null
    }
    // Our EditHistory replaces NiiVue's undo snapshots (each one RLE-encodes the whole volume).
    inner.drawAddUndoBitmap = () => {}
    // The pen: record the box each point and line touched (pen size spreads in the slice's plane only).
    const touchPen = (a: number[], b: number[], axCorSag: number) =>
      host.touch(penBox(a, b, axCorSag, nv.opts.penSize ?? 1, drawDims(nv)))
    const drawPt = inner.drawPt.bind(nv)
    inner.drawPt = (x, y, z, value, bitmap = null) => {
      drawPt(x, y, z, value, bitmap)
      if (!bitmap || bitmap === nv.drawBitmap) touchPen([x, y, z], [x, y, z], inner.drawPenAxCorSag)
    }
    // NiiVue 0.69's pen line (new point A to previous point B) skips A itself, so a stroke's last voxel is lost
    // on mouse-up; paint A as well.
    const drawPenLine = inner.drawPenLine.bind(nv)
    inner.drawPenLine = (a, b, value) => {
      drawPenLine(a, b, value)
      touchPen(a, b, inner.drawPenAxCorSag)
      inner.drawPt(a[0], a[1], a[2], value)
    }
    // The filled outline fills inside the outline's box (padded by one voxel) on the outline's slice.
    const drawPenFilled = inner.drawPenFilled.bind(nv)
    inner.drawPenFilled = () => {
      host.touch(fillBox(inner.drawPenFillPts, inner.drawPenAxCorSag, drawDims(nv)))
      drawPenFilled()
    }
    // Upload only the touched box of the drawing texture when it is known, else the whole volume (NiiVue).
    const refreshDrawing = inner.refreshDrawing.bind(nv)
    inner.refreshDrawing = (isForceRedraw = true, useClickToSegmentBitmap = false) => {
      const box = host.texBox
      host.texBox = null
      if (box && !useClickToSegmentBitmap && uploadDrawingBox(nv, box, host.uploads)) {
        if (isForceRedraw) nv.drawScene()
        return
      }
      host.uploads.full++
      refreshDrawing(isForceRedraw, useClickToSegmentBitmap)
    }
    // WebGL 2 zero-initialises texture storage, so NiiVue's zero-filled uploads (314 MB for an RGBA texture of
    // 512 x 512 x 300) only cost time; and the gradient texture (units 6 and 8 at the volume's size, read only by
    // the 3D render) is computed on a 1 x 1 x nz texture: its passes then shade one fragment a slice.
    const gl = nv.gl
    const isGradient = (unit: number, dims: number[]) => {
      const back = nv.volumes[0]
      return (unit === gl.TEXTURE6 || unit === gl.TEXTURE8) && back?.hdr?.datatypeCode !== DT_RGBA32 &&
        dims.length > 3 && dims[1] * dims[2] * dims[3] > 8 && back?.hdr?.dims?.slice(1, 4).join() ===
        dims.slice(1, 4).join()
    }
    const rgbaTex = inner.rgbaTex.bind(nv)
    inner.rgbaTex = (tex, unit, dims) => rgbaTex(tex, unit, isGradient(unit, dims) ? [dims[0], 1, 1, dims[3]] : dims,
      false)
    const r8Tex = inner.r8Tex.bind(nv)
    inner.r8Tex = (tex, unit, dims) => r8Tex(tex, unit, dims, false)
    // One redraw per mouse move: NiiVue draws the whole scene several times while it handles one move (each a full
    // frame: 100 to 250 ms in software WebGL, whatever the volume's size). Draws asked for during a move are held
    // back and done once after the canvas's own listeners (document, bubble phase; a timer in case the event stops
    // propagating).
    const scene = nv as unknown as { drawScene: () => string | void }
    const drawScene = scene.drawScene.bind(nv)
    let holding = false
    let held = false
    scene.drawScene = () => {
      if (!holding) {
        host.draws++
        const result = drawScene()
        host.afterDraw()
        return result
      }
      held = true
    }
    const release = () => {
      holding = false
      if (held) {
        held = false
        host.draws++
        drawScene()
        host.afterDraw()
      }
    }
    const hold = () => {
      holding = true
      window.setTimeout(release, 0)
    }
    // Right-drag window / level: NiiVue re-blends the CT (refreshLayers) on every mouse move, and never reports the
    // new window (its onIntensityChange is for its other contrast modes). Its handler still sets the window on every
    // move; the re-blend happens at most once a frame, and the window is reported.
    const layers = nv as unknown as {
      refreshLayers: (volume: NVImage, layer: number) => void
      windowingHandler: (x: number, y: number, volIdx?: number) => void
    }
    const refreshLayers = layers.refreshLayers.bind(nv)
    const windowingHandler = layers.windowingHandler.bind(nv)
    let windowing = false
    let reblend = false
    let frame = 0
    layers.refreshLayers = (volume, layer) => {
      if (windowing && layer === 0) reblend = true
      else refreshLayers(volume, layer)
    }
    layers.windowingHandler = (x, y, volIdx = 0) => {
      windowing = true
      try {
        windowingHandler(x, y, volIdx)
      } finally {
        windowing = false
      }
      if (reblend && !frame) {
        frame = window.requestAnimationFrame(() => {
          frame = 0
          reblend = false
          if (nv.volumes[0]) refreshLayers(nv.volumes[0], 0)
          scene.drawScene()
        })
      }
      const w = host.window()
      host.onWindow(w.width, w.level)
    }
    const doc = host.canvas.ownerDocument
    doc.addEventListener('mousemove', hold, { capture: true })
    doc.addEventListener('mousemove', release)
    host.cleanups.push(() => {
      doc.removeEventListener('mousemove', hold, { capture: true })
      doc.removeEventListener('mousemove', release)
    })
}
