// Snap edge to CT: inside the selected hotspot's region, move the active organ's edge by up to `reach` voxels (1 to
// 3) to where the CT says it lies (viewer/ops/snap.ts), previewed on the label; Apply keeps it as one undoable edit.
// It honours "protect other organs" (another organ's voxels neither taken nor given) and the HU range when set.
import type { Box } from '../../viewer/edits'
import type { Viewer } from '../../viewer/niivue'
import { SNAP_MARGIN, snapEdge } from '../../viewer/ops/snap'
import type { MemberCrops } from '../membersApi'
import type { Members } from './useMembers'
import type { Tools } from './useTools'

/** Snap the organ `value`'s edge in the crop's region as one edit. Returns the voxels changed. */
export function snapEdit(viewer: Viewer, crops: MemberCrops, value: number, reach: number, protect: boolean): number {
  const g = viewer.geometry
  if (!g) return 0
  const [lo, hi] = crops.box
  const [cw, ch] = crops.shape
  const inner = g.fileBoxToViewer(lo, hi)
  const [nx, ny, nz] = g.dims
  const [mx, my, mz] = SNAP_MARGIN
  const box: Box = { x0: Math.max(0, inner.x0 - mx), x1: Math.min(nx - 1, inner.x1 + mx),
    y0: Math.max(0, inner.y0 - my), y1: Math.min(ny - 1, inner.y1 + my),
    z0: Math.max(0, inner.z0 - mz), z1: Math.min(nz - 1, inner.z1 + mz) }
  const w = box.x1 - box.x0 + 1
  const h = box.y1 - box.y0 + 1
  const d = box.z1 - box.z0 + 1
  const shape = [w, h, d]
  // the crop offset of a viewer voxel: one term per axis (the file axes are a permutation, maybe flipped)
  const strides = [1, cw, cw * ch]
  const term = [0, 1, 2].map((a) => {
    const { f, flip } = g.axes[a]
    const v0 = [inner.x0, inner.y0, inner.z0][a]
    const v1 = [inner.x1, inner.y1, inner.z1][a]
    return Int32Array.from({ length: v1 - v0 + 1 }, (_, k) => {
      const v = v0 + k
      return ((flip ? g.fileDims[f] - 1 - v : v) - lo[f]) * strides[f]
    })
  })
  const allow = viewer.intensityLimit
  return viewer.edit(box, (label) => {
    const n = w * h * d
    const organ = new Uint8Array(n)
    const region = new Uint8Array(n)
    const locked = protect || allow ? new Uint8Array(n) : null
    for (let z = box.z0, o = 0; z <= box.z1; z++) {
      for (let y = box.y0; y <= box.y1; y++) {
        const row = (z * ny + y) * nx
        for (let x = box.x0; x <= box.x1; x++, o++) {
          const v = label[row + x]
          organ[o] = v === value ? 1 : 0
          if (locked && ((protect && v !== 0 && v !== value) || (allow && !allow(row + x)))) locked[o] = 1
          if (x < inner.x0 || x > inner.x1 || y < inner.y0 || y > inner.y1 || z < inner.z0 || z > inner.z1) continue
          const c = term[2][z - inner.z0] + term[1][y - inner.y0] + term[0][x - inner.x0]
          region[o] = !crops.region || crops.region[c] ? 1 : 0
        }
      }
    }
    const snapped = snapEdge({ shape, organ, ct: g.huBox(box), region, locked, reach }).organ
    for (let z = box.z0, o = 0; z <= box.z1; z++) {
      for (let y = box.y0; y <= box.y1; y++) {
        const row = (z * ny + y) * nx
        for (let x = box.x0; x <= box.x1; x++, o++) {
          if (snapped[o] !== organ[o]) label[row + x] = snapped[o] ? value : 0
        }
      }
    }
  })
}

/** Preview the snap at `reach` (replacing any other preview at this hotspot). */
export function previewSnap(m: Members, t: Tools, reach = t.snapReach): void {
  m.previewEdit(`snap:${reach}`, (viewer, crops) => snapEdit(viewer, crops, t.active, reach, t.protect))
}

export function SnapEdgeControls({ m, t }: { m: Members; t: Tools }) {
  if (!m.crops) return null
  const previewing = m.shown.startsWith('snap:')
  return (
    <div className="snap">
      <div className="buttons">
        <button onClick={() => previewSnap(m, t)} className={previewing ? 'on' : ''} data-action="snap-edge"
          title="move the organ's edge in this hotspot to where the CT shows it (preview; k)">Snap edge to CT</button>
        <label>reach
          <select value={t.snapReach} data-control="snap-reach" aria-label="snap reach (voxels)" onChange={(e) => {
            const reach = Number(e.target.value)
            t.setSnapReach(reach)
            if (previewing) previewSnap(m, t, reach)
          }}>
            {[1, 2, 3].map((r) => <option key={r} value={r}>{r} voxel{r > 1 ? 's' : ''}</option>)}
          </select>
        </label>
      </div>
      <div className="buttons">
        <button className="primary" disabled={!previewing} onClick={m.keep} data-action="snap-apply">Apply</button>
        <button disabled={!previewing} onClick={m.cancel} data-action="snap-cancel">Cancel</button>
      </div>
    </div>
  )
}
