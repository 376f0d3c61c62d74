// Click-to-grow: a click seeds a region growing through face-connected voxels inside the HU window, within a radius
// in mm of the seed, in the slice (2D) or in 3D; one click is one undoable edit.
import type { PointerTool } from '../../viewer/geometry'
import type { Viewer } from '../../viewer/niivue'
import { grow, growBox, type Painter } from '../../viewer/ops/paint'
import type { Tools } from './useTools'

export function growTool(viewer: Viewer, painter: () => Painter, radiusMm: number, threeD: boolean, lo: number,
  hi: number): PointerTool {
  return {
    down: (seed, axis) => {
      const p = painter()
      const huBox = viewer.geometry!.huBox
      viewer.edit(growBox(seed, radiusMm, threeD, axis, p), (label) => {
        grow(label, seed, radiusMm, lo, hi, threeD, axis, huBox, p)
      })
    },
  }
}

export function GrowControls({ t }: { t: Tools }) {
  return (
    <>
      <label>Grow radius {t.grow.radiusMm} mm
        <input type="range" min={2} max={100} value={t.grow.radiusMm} data-control="grow-mm"
          onChange={(e) => t.setGrow((g) => ({ ...g, radiusMm: Number(e.target.value) }))} />
      </label>
      <label className="check">
        <input type="checkbox" checked={t.grow.threeD} data-control="grow-3d"
          onChange={(e) => t.setGrow((g) => ({ ...g, threeD: e.target.checked }))} />
        grow in 3D (else in the slice); window: the HU range below
      </label>
    </>
  )
}
