// Read-backs for tests and benchmarks: what the GPU holds and how long a redraw takes. Not used by the page itself.
import type { Niivue } from '@niivue/niivue'
import { readLayer, syncGpu, textureMismatches } from './textures'

/** Milliseconds for one redraw of the scene, GPU included. */
export function timeRedraw(nv: Niivue): number {
  const t0 = performance.now()
  nv.drawScene()
  syncGpu(nv.gl)
  return performance.now() - t0
}

/** Voxels where the drawing texture differs from the drawing bitmap (-1 without a drawing); reads it all back. */
export function drawingMismatches(nv: Niivue, dims: number[]): number {
  const bmp = nv.drawBitmap
  const tex = nv.drawTexture
  return bmp && tex ? textureMismatches(nv.gl, tex, bmp, dims) : -1
}

/** The CT's colour at a voxel (RAS indices) as blended on the GPU, [r, g, b, a]; [] before a CT is loaded. */
export function blendedColour(nv: Niivue, dims: number[], voxel: number[]): number[] {
  const tex = (nv as unknown as { volumeTexture: WebGLTexture | null }).volumeTexture
  const [nx, ny] = dims
  if (!tex) return []
  const rgba = readLayer(nv.gl, tex, voxel[2], nx, ny)
  const i = (voxel[0] + voxel[1] * nx) * 4
  return Array.from(rgba.subarray(i, i + 4))
}

/** 'webgl2' when NiiVue renders through a WebGL2 context, else 'none'. */
export function webglKind(nv: Niivue): string {
  const gl = (nv as unknown as { _gl: unknown })._gl
  return typeof WebGL2RenderingContext !== 'undefined' && gl instanceof WebGL2RenderingContext ? 'webgl2' : 'none'
}
