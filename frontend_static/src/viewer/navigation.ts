// Where things are on the screen and in the volume: the voxel under the mouse, the crosshair's voxel, a file voxel
// (hotspot centroids) as the crosshair's position. Voxels are RAS-ordered indices, as NiiVue holds the volume.
import type { Niivue } from '@niivue/niivue'

/** The voxel under a mouse event on the canvas, or null outside every slice. */
export function voxelAt(nv: Niivue, canvas: HTMLCanvasElement, event: MouseEvent): number[] | null {
  const rect = canvas.getBoundingClientRect()
  const dpr = canvas.width / Math.max(1, rect.width)
  const frac = nv.canvasPos2frac([(event.clientX - rect.left) * dpr, (event.clientY - rect.top) * dpr])
  if (frac[0] < 0) return null
  return Array.from(nv.frac2vox(frac)).map((v) => Math.round(v))
}

export function crosshairVoxel(nv: Niivue): number[] {
  return Array.from(nv.frac2vox(nv.scene.crosshairPos)).map((v) => Math.round(v))
}

/** Put the crosshair on a voxel given in the file's own (x, y, z) indices; false without a volume. */
export function crosshairToFileVoxel(nv: Niivue, ijk: number[]): boolean {
  const back = nv.volumes[0]
  if (!back) return false
  const A = back.hdr!.affine
  const mm = [0, 1, 2].map((r) => A[r][0] * ijk[0] + A[r][1] * ijk[1] + A[r][2] * ijk[2] + A[r][3])
  nv.scene.crosshairPos = nv.mm2frac([mm[0], mm[1], mm[2]])
  return true
}
