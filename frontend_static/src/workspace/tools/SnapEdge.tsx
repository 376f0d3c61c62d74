// Snap edge to CT: inside the selected hotspot's region, move the active organ's edge by up to `reach` voxels (1 to
// 3) to where the CT says it lies (viewer/ops/snap.ts), previewed on the label; Apply keeps it as one undoable edit.
// It honours "protect other organs" (another organ's voxels neither taken nor given) and the HU range when set.
// Its proposal is also drawn as one more outline at the hotspot ("snap", with the members'), recomputed after each
// edit there; "Apply snap" keeps it as one undoable edit (the same edit as the preview + Apply).
import { useEffect } from 'react'
import type { Box } from '../../viewer/edits'
import type { Outline, Viewer } from '../../viewer/niivue'
import { cropOffsetTerms } from '../../viewer/geometry'
import { SNAP_MARGIN, snapEdge } from '../../viewer/ops/snap'
import type { MemberCrops } from '../membersApi'
import type { ViewerRef } from '../types'
import { type Members, type MembersStatus, SNAP_COLOUR } from './useMembers'
import type { Tools } from './useTools'

/** The snap's box (the crop grown by SNAP_MARGIN, clipped), the crop's box in viewer voxels, and the organ after
 * snapping the label `label` there (1 / 0 over the box, x fastest), next to the organ before. Reads only. */
export function computeSnap(viewer: Viewer, label: Uint8Array, crops: MemberCrops, value: number, reach: number,
  protect: boolean): { box: Box; inner: Box; organ: Uint8Array; snapped: Uint8Array } | null {
  const g = viewer.geometry
  if (!g) return null
  const inner = g.fileBoxToViewer(crops.box[0], crops.box[1])
  const [nx, ny, nz] = g.dims
  const [mx, my, mz] = SNAP_MARGIN
  const box: Box = { x0: Math.max(0, inner.x0 - mx), x1: Math.min(nx - 1, inner.x1 + mx),
    y0: Math.max(0, inner.y0 - my), y1: Math.min(ny - 1, inner.y1 + my),
    z0: Math.max(0, inner.z0 - mz), z1: Math.min(nz - 1, inner.z1 + mz) }
  const w = box.x1 - box.x0 + 1
  const h = box.y1 - box.y0 + 1
  const d = box.z1 - box.z0 + 1
  const shape = [w, h, d]
  const term = cropOffsetTerms(g, crops.box[0], crops.shape, inner)
  const allow = viewer.intensityLimit
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
  return { box, inner, organ, snapped }
}

/** Snap the organ `value`'s edge in the crop's region as one edit. Returns the voxels changed. */
export function snapEdit(viewer: Viewer, crops: MemberCrops, value: number, reach: number, protect: boolean): number {
  const g = viewer.geometry
  if (!g) return 0
  const [nx, ny] = g.dims
  const inner = g.fileBoxToViewer(crops.box[0], crops.box[1])
  const [mx, my, mz] = SNAP_MARGIN
  const outer: Box = { x0: inner.x0 - mx, x1: inner.x1 + mx, y0: inner.y0 - my, y1: inner.y1 + my,
    z0: inner.z0 - mz, z1: inner.z1 + mz } // clipped by edit(), as computeSnap clips it
  return viewer.edit(outer, (label) => {
    const r = computeSnap(viewer, label, crops, value, reach, protect)
    if (!r) return
    const { box, organ, snapped } = r
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

/** The snap's proposal as an outline over the slices: the organ after snapping, inside the crop's box. */
export function snapOutline(viewer: Viewer, crops: MemberCrops, value: number, reach: number,
  protect: boolean): { outline: Outline; changes: number; ms: number } | null {
  const t0 = performance.now()
  const r = computeSnap(viewer, viewer.label(), crops, value, reach, protect)
  if (!r) return null
  const { box, inner, organ, snapped } = r
  let changes = 0
  for (let i = 0; i < organ.length; i++) if (organ[i] !== snapped[i]) changes++
  const w = box.x1 - box.x0 + 1
  const h = box.y1 - box.y0 + 1
  const ms = performance.now() - t0
  performance.measure('atlas:snap-outline', { start: t0, end: t0 + ms })
  return { changes, ms, outline: { name: 'snap', colour: SNAP_COLOUR, box: inner,
    inside: (x, y, z) => snapped[((z - box.z0) * h + (y - box.y0)) * w + (x - box.x0)] === 1 } }
}

/** Preview the snap at `reach` (replacing any other preview at this hotspot). */
export function previewSnap(m: Members, t: Tools, reach = t.snapReach): void {
  m.previewEdit(`snap:${reach}`, (viewer, crops) => snapEdit(viewer, crops, t.active, reach, t.protect))
}

/** Apply the snap as one undoable edit: the same edit as the preview + Apply (or keep the snap's preview). */
export function applySnap(m: Members, t: Tools): void {
  if (!m.shown.startsWith('snap:')) previewSnap(m, t)
  m.keep()
}

/** Why there is no proposal to draw: the members' tools are not ready at the hotspot (MembersStatus), a preview is
 * on the label (it shows the snap there, or a member), the viewer has no volume, or computing it failed. */
export type SnapNone = Exclude<MembersStatus, 'none' | 'ready'> | 'preview' | 'no-volume' | 'failed'

/**
 * What the snap's proposal answers to, as the page's `.snap` element's data-snap-state:
 * `undo:redo:reach:protect:organ` (the edit history's depth, reach 1 to 3, protection 1 / 0, the active organ's
 * value) once the proposal for exactly those is drawn, with `:none:<why>` after it when there is none for them
 * (so that nothing waits for a proposal that will not come).
 */
export function snapState(undo: number, redo: number, reach: number, protect: boolean, organ: number,
  none?: SnapNone): string {
  return `${undo}:${redo}:${reach}:${protect ? 1 : 0}:${organ}${none ? `:none:${none}` : ''}`
}

const NO_PROPOSAL = { outline: null, changes: 0, ms: 0 }

/**
 * The snap's proposal, drawn as one more outline at the hotspot (0 clicks to look at): computed when the crops have
 * loaded and again after each edit or settings change (reach, protection, HU range, organ), after the browser has
 * painted. Hidden while a preview is on the label (the preview shows it there). Each of those ends in a state
 * (snapState), a proposal or why there is none.
 */
function useSnapProposal(m: Members, t: Tools, viewerRef: ViewerRef, undo: number, redo: number): void {
  const { crops, shown, setSnap } = m
  const { active, protect, snapReach, hu } = t
  useEffect(() => {
    if (!crops) {
      setSnap(null) // the element says why from the members' status
      return
    }
    if (shown) {
      setSnap({ ...NO_PROPOSAL, state: snapState(undo, redo, snapReach, protect, active, 'preview') })
      return
    }
    // a timer: after the parent's effects (the HU range reaches the viewer there) and after the paint
    const timer = window.setTimeout(() => {
      const viewer = viewerRef.current
      let none: SnapNone = 'no-volume'
      let r: ReturnType<typeof snapOutline> = null
      try {
        r = viewer ? snapOutline(viewer, crops, active, snapReach, protect) : null
      } catch (e) {
        none = 'failed'
        console.error('the snap proposal failed:', e)
      }
      setSnap(r ? { ...r, state: snapState(undo, redo, snapReach, protect, active) }
        : { ...NO_PROPOSAL, state: snapState(undo, redo, snapReach, protect, active, none) })
    }, 0)
    return () => window.clearTimeout(timer)
  }, [crops, shown, setSnap, viewerRef, active, protect, snapReach, hu, undo, redo])
}

const NONE_TEXT: Record<SnapNone, string> = {
  'other-organ': '', // MembersControls says it
  loading: 'loading the members at this hotspot…',
  error: '', // MembersControls says it
  preview: '',
  'no-volume': 'no proposal: the case is not loaded',
  failed: 'no proposal: computing it failed (see the browser console)',
}

export function SnapEdgeControls({ m, t, viewerRef, undo, redo }: { m: Members; t: Tools; viewerRef: ViewerRef
  undo: number; redo: number }) {
  useSnapProposal(m, t, viewerRef, undo, redo)
  if (m.status === 'none') return null // the snap works at a selected hotspot
  if (m.status !== 'ready' || !m.crops) {
    // no crop for the active organ here: the state says why, for exactly these settings
    const why = m.status === 'ready' ? 'loading' : m.status
    return (
      <div className="snap" data-snap-state={snapState(undo, redo, t.snapReach, t.protect, t.active, why)}
        data-snap-changes="" data-snap-ms="">
        {NONE_TEXT[why] && <p className="muted">{NONE_TEXT[why]}</p>}
      </div>
    )
  }
  const previewing = m.shown.startsWith('snap:')
  const proposal = m.snap
  const none = proposal && !proposal.outline ? proposal.state.split(':none:')[1] as SnapNone : undefined
  return (
    <div className="snap" data-snap-state={proposal?.state ?? ''}
      data-snap-changes={proposal?.outline ? proposal.changes : ''}
      data-snap-ms={proposal?.outline ? proposal.ms.toFixed(1) : ''}>
      {none && NONE_TEXT[none] && <p className="muted" data-snap-none={none}>{NONE_TEXT[none]}</p>}
      <div className="buttons">
        <button className="primary" disabled={!previewing && !proposal?.changes} onClick={() => applySnap(m, t)}
          data-action="snap-use" title="keep the snap's outline (red) as one edit">
          Apply snap{proposal?.outline && !previewing ? ` (${proposal.changes} voxels)` : ''}</button>
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
