// Voxel boxes of NiiVue's drawing tools and WebGL 2 work on 3D textures, for the adapter in niivue.ts: box-local
// uploads of the drawing texture, layers read back for tests, and waiting for the GPU.
import { type Box, clipBox } from './edits'

function box(lo: number[], hi: number[], dims: number[]): Box | null {
  return clipBox({ x0: lo[0], x1: hi[0], y0: lo[1], y1: hi[1], z0: lo[2], z1: hi[2] }, dims)
}

/** A pen line from a to b (or a point): voxels clamped into the volume, as NiiVue's pen does, spread by the pen. */
export function penBox(a: number[], b: number[], axCorSag: number, penSize: number, dims: number[]): Box | null {
  const c = (v: number, axis: number) => Math.min(Math.max(Math.round(v), 0), dims[axis] - 1)
  const half = Math.floor(penSize / 2)
  // in-plane axes: axial x, y; coronal x, z; sagittal y, z (NiiVue draws only the centre for other views)
  const spread = [axCorSag === 0 || axCorSag === 1, axCorSag === 0 || axCorSag === 2, axCorSag === 1 ||
    axCorSag === 2].map((on) => (on ? half : 0))
  const lo = [0, 1, 2].map((k) => Math.min(c(a[k], k), c(b[k], k)) - spread[k])
  const hi = [0, 1, 2].map((k) => Math.max(c(a[k], k), c(b[k], k)) + spread[k])
  return box(lo, hi, dims)
}

/** NiiVue's filled outline writes only inside the outline's in-plane box, padded by one, on its first slice. */
export function fillBox(points: number[][], axCorSag: number, dims: number[]): Box | null {
  if (points.length < 2) return null
  const [h, v] = axCorSag === 1 ? [0, 2] : axCorSag === 2 ? [1, 2] : [0, 1]
  const off = 3 - h - v
  const lo = [0, 0, 0]
  const hi = [0, 0, 0]
  lo[h] = Math.min(...points.map((p) => p[h])) - 1
  hi[h] = Math.max(...points.map((p) => p[h])) + 1
  lo[v] = Math.min(...points.map((p) => p[v])) - 1
  hi[v] = Math.max(...points.map((p) => p[v])) + 1
  lo[off] = hi[off] = points[0][off]
  return box(lo, hi, dims)
}

/**
 * Upload one box of an r8 bitmap (dims [nx, ny, nz]) into the 3D texture on texture unit 7 (NiiVue's drawing).
 * Returns the voxels uploaded (0 for an empty box).
 */
export function uploadBox(gl: WebGL2RenderingContext, tex: WebGLTexture, bmp: Uint8Array, dims: number[],
  area: Box): number {
  const [nx, ny] = dims
  const b = clipBox(area, dims)
  if (!b) return 0
  const w = b.x1 - b.x0 + 1
  const h = b.y1 - b.y0 + 1
  const d = b.z1 - b.z0 + 1
  let data: Uint8Array
  if (w === nx && h === ny) {
    data = bmp.subarray(b.z0 * nx * ny, (b.z1 + 1) * nx * ny)
  } else {
    data = new Uint8Array(w * h * d)
    let o = 0
    for (let z = b.z0; z <= b.z1; z++) {
      for (let y = b.y0; y <= b.y1; y++) {
        const row = (z * ny + y) * nx
        data.set(bmp.subarray(row + b.x0, row + b.x1 + 1), o)
        o += w
      }
    }
  }
  gl.activeTexture(gl.TEXTURE7)
  gl.bindTexture(gl.TEXTURE_3D, tex)
  gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1)
  gl.texSubImage3D(gl.TEXTURE_3D, 0, b.x0, b.y0, b.z0, w, h, d, gl.RED, gl.UNSIGNED_BYTE, data)
  return w * h * d
}

/** Wait until the GPU has done all work queued so far (Chrome's gl.finish() is only a flush; readPixels waits). */
export function syncGpu(gl: WebGL2RenderingContext): void {
  gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, new Uint8Array(4))
}

/** One z layer of a 3D texture read back through a framebuffer, as RGBA bytes (nx * ny * 4). */
export function readLayer(gl: WebGL2RenderingContext, texture: WebGLTexture, z: number, nx: number,
  ny: number): Uint8Array {
  const fb = gl.createFramebuffer()
  const previous = gl.getParameter(gl.FRAMEBUFFER_BINDING) as WebGLFramebuffer | null
  gl.bindFramebuffer(gl.FRAMEBUFFER, fb)
  gl.framebufferTextureLayer(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, texture, 0, z)
  const rgba = new Uint8Array(nx * ny * 4)
  gl.readPixels(0, 0, nx, ny, gl.RGBA, gl.UNSIGNED_BYTE, rgba)
  gl.bindFramebuffer(gl.FRAMEBUFFER, previous)
  gl.deleteFramebuffer(fb)
  return rgba
}

/** Voxels where an r8 bitmap (dims [nx, ny, nz]) and the 3D texture holding it differ, read back layer by layer. */
export function textureMismatches(gl: WebGL2RenderingContext, tex: WebGLTexture, bmp: Uint8Array,
  dims: number[]): number {
  const [nx, ny, nz] = dims
  let mismatches = 0
  for (let z = 0; z < nz; z++) {
    const rgba = readLayer(gl, tex, z, nx, ny)
    for (let i = 0; i < nx * ny; i++) if (rgba[i * 4] !== bmp[z * nx * ny + i]) mismatches++
  }
  return mismatches
}

function rgb(hex: string): [number, number, number] {
  const m = /^#?([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})/i.exec(hex)
  return m ? [parseInt(m[1], 16), parseInt(m[2], 16), parseInt(m[3], 16)] : [255, 0, 0]
}

/** NiiVue's colour table for the drawing: one entry per value 0..max, value 0 and hidden organs transparent. */
export function colourTable(colours: { value: number; color: string; visible: boolean }[]) {
  const max = Math.max(1, ...colours.map((c) => c.value))
  const table = { R: [] as number[], G: [] as number[], B: [] as number[], A: [] as number[], I: [] as number[] }
  for (let value = 0; value <= max; value++) {
    const c = colours.find((x) => x.value === value)
    const [r, g, b] = c ? rgb(c.color) : [255, 255, 255]
    table.R.push(r)
    table.G.push(g)
    table.B.push(b)
    table.A.push(value === 0 || (c && !c.visible) ? 0 : 255)
    table.I.push(value)
  }
  return table
}
