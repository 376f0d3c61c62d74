// 3D clean-up of the active organ inside its box, each one click and one undoable edit: remove islands smaller
// than N mL, keep only the largest component, fill enclosed holes.
import { unionBox } from '../../viewer/edits'
import type { Viewer } from '../../viewer/niivue'
import { fillHoles, keepLargest, removeIslands } from '../../viewer/ops/components'
import type { Tools } from './useTools'

export type CleanupOp = 'islands' | 'largest' | 'holes'

export function cleanup(viewer: Viewer, op: CleanupOp, value: number, islandMl: number): number {
  const g = viewer.geometry
  const box = viewer.organBox(value)
  if (!g || !box) return 0
  if (op === 'holes') {
    const grown = { x0: box.x0 - 1, x1: box.x1 + 1, y0: box.y0 - 1, y1: box.y1 + 1, z0: box.z0 - 1, z1: box.z1 + 1 }
    const inside = unionBox(box, { ...grown, x0: Math.max(0, grown.x0), y0: Math.max(0, grown.y0),
      z0: Math.max(0, grown.z0), x1: Math.min(g.dims[0] - 1, grown.x1), y1: Math.min(g.dims[1] - 1, grown.y1),
      z1: Math.min(g.dims[2] - 1, grown.z1) })!
    return viewer.edit(inside, (label) => fillHoles(label, inside, g.dims, value), false)
  }
  const minVoxels = Math.round(islandMl / g.voxelMl)
  return viewer.edit(box, (label) => (op === 'largest' ? keepLargest(label, box, g.dims, value)
    : removeIslands(label, box, g.dims, value, minVoxels)), false)
}

export function CleanupControls({ t, viewer }: { t: Tools; viewer: Viewer | null }) {
  const run = (op: CleanupOp) => viewer && cleanup(viewer, op, t.active, t.islandMl)
  return (
    <div className="cleanup">
      <div className="buttons">
        <button onClick={() => run('islands')} data-action="remove-islands"
          title="remove the active organ's pieces smaller than this">Remove islands &lt;</button>
        <input type="number" min={0} step={0.1} value={t.islandMl} aria-label="smallest island kept (mL)"
          onChange={(e) => t.setIslandMl(Number(e.target.value))} data-control="island-ml" /> mL
      </div>
      <div className="buttons">
        <button onClick={() => run('largest')} data-action="keep-largest">Keep largest</button>
        <button onClick={() => run('holes')} data-action="fill-holes">Fill holes</button>
      </div>
    </div>
  )
}
