// The 3D sphere brush: each point of a stroke paints a ball of the radius in mm across slices (any slice
// thickness); the whole stroke is one undoable edit.
import type { PointerTool } from '../../viewer/geometry'
import type { Viewer } from '../../viewer/niivue'
import { ballBox, paintBall, type Painter } from '../../viewer/ops/paint'
import type { Tools } from './useTools'

export function sphereTool(viewer: Viewer, painter: () => Painter, radiusMm: number): PointerTool {
  let p: Painter | null = null
  let last = ''
  const dab = (voxel: number[]) => {
    const key = voxel.join()
    if (!p || key === last) return
    last = key
    const painter = p
    viewer.paint(ballBox(voxel, radiusMm, painter), (label) => paintBall(label, voxel, radiusMm, painter))
  }
  return {
    down: (voxel) => {
      p = painter()
      last = ''
      dab(voxel)
    },
    move: dab,
    up: () => {
      p = null
      viewer.endStroke()
    },
  }
}

export function SphereControls({ t }: { t: Tools }) {
  return (
    <label>Sphere radius {t.sphereMm} mm
      <input type="range" min={1} max={40} value={t.sphereMm} onChange={(e) => t.setSphereMm(Number(e.target.value))}
        data-control="sphere-mm" />
    </label>
  )
}
