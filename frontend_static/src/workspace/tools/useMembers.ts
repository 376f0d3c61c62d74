// The members at the selected hotspot: fetch the active organ's crop for the hotspot's box (padded), and edits that
// replace the label inside the hotspot's region with a member's version, the mean's, or the mean re-thresholded.
// A preview is an ordinary edit on top of the history that the next preview replaces; keeping it is one undoable
// edit.
import { useCallback, useEffect, useRef, useState } from 'react'
import { cropOffsetTerms } from '../../viewer/geometry'
import type { Outline, Viewer } from '../../viewer/niivue'
import { meanBound } from '../../viewer/ops/threshold'
import { fetchMembers, type MemberCrops } from '../membersApi'
import type { HotspotRow, ViewerRef } from '../types'

const PAD = 3 // voxels around the hotspot's box

/** Write the organ where `inside(c)` says so (c: the crop's offset) in the region; remove it elsewhere there. */
export function applyInRegion(viewer: Viewer, crops: MemberCrops, value: number,
  inside: (c: number) => boolean): number {
  const g = viewer.geometry
  if (!g) return 0
  const box = g.fileBoxToViewer(crops.box[0], crops.box[1])
  const [nx, ny] = g.dims
  const region = crops.region
  const term = cropOffsetTerms(g, crops.box[0], crops.shape, box)
  return viewer.edit(box, (label) => {
    for (let z = box.z0; z <= box.z1; z++) {
      const tz = term[2][z - box.z0]
      for (let y = box.y0; y <= box.y1; y++) {
        const tyz = tz + term[1][y - box.y0]
        const row = (z * ny + y) * nx
        for (let x = box.x0; x <= box.x1; x++) {
          const c = tyz + term[0][x - box.x0]
          if (region && !region[c]) continue
          const index = row + x
          if (inside(c)) label[index] = value
          else if (label[index] === value) label[index] = 0
        }
      }
    }
  }, false)
}

/** Outline colours by member order; the mean is dashed white; the snap's proposal red. */
export const OUTLINE_COLOURS = ['#ffd400', '#00e5ff', '#ff4fd8', '#7dff5a', '#ff8c1a']
export const SNAP_COLOUR = '#ff3030'

/** The snap's proposal at the hotspot (SnapEdge.tsx): its outline, the voxels it would change, what it was computed
 * for (`state`: the edit history's depth and the tools' settings, snapState()) and how long it took. `outline` is null
 * when there is none to draw, and `state` then ends with `:none:<why>` (snapState()). */
export interface SnapProposal {
  outline: Outline | null
  changes: number
  state: string
  ms: number
}

/** Where the members' tools (members, local threshold, snap) stand at the selected hotspot: 'none' (no hotspot
 * selected), 'other-organ' (the hotspot is another organ's than the active one: they work on the hotspot's organ),
 * 'loading' (its crop is on its way), 'error' (the crop could not be fetched) or 'ready'. */
export type MembersStatus = 'none' | 'other-organ' | 'loading' | 'error' | 'ready'

export function membersStatus(hotspot: HotspotRow | undefined, active: number, crops: MemberCrops | null,
  error: string): MembersStatus {
  if (!hotspot) return 'none'
  if (hotspot.value !== active) return 'other-organ'
  if (error) return 'error'
  return crops ? 'ready' : 'loading'
}

/** Each member's and the mean's organ (p > 0.5) in the crop, as outlines on the viewer's slices. */
export function memberOutlines(viewer: Viewer, crops: MemberCrops): Outline[] {
  const g = viewer.geometry
  if (!g) return []
  const [lo, hi] = crops.box
  const [w, h] = crops.shape
  const box = g.fileBoxToViewer(lo, hi)
  const offset = (x: number, y: number, z: number) => {
    const [i, j, k] = g.fileIndex(x, y, z)
    return i - lo[0] + w * (j - lo[1] + h * (k - lo[2]))
  }
  const maps = [...crops.members.map((m) => ({ name: m.name, p: m.probability })), { name: 'mean', p: crops.mean }]
  return maps.map(({ name, p }, n) => ({ name, box, colour: name === 'mean' ? '#ffffff' : OUTLINE_COLOURS[n % 5],
    dashed: name === 'mean', inside: (x: number, y: number, z: number) => p[offset(x, y, z)] > 127 }))
}

export function useMembers(viewerRef: ViewerRef, caseId: number | undefined, hotspot: HotspotRow | undefined,
  active: number) {
  const [crops, setCrops] = useState<MemberCrops | null>(null)
  const [error, setError] = useState('')
  const [outlines, setOutlines] = useState(true) // draw the members' outlines over the slices
  const [snap, setSnap] = useState<SnapProposal | null>(null) // the snap's proposal, drawn as one more outline
  const [shown, setShown] = useState('') // what the preview shows: '' (the label), a member's name, 'mean', 'p0.40', 'snap:1'
  const preview = useRef<number | null>(null) // undo depth right after the preview's edit (null: none on top)
  const threshold = useRef<object | null>(null) // the kept threshold's edit: the next drag replaces it while newest
  const key = hotspot && hotspot.value === active && caseId
    ? `${caseId}/${hotspot.organ}/${hotspot.centroid.join(',')}` : ''

  // another hotspot or organ: forget the last one's crop, proposal and preview at once (in this render, not after it)
  const [shownKey, setShownKey] = useState(key)
  if (shownKey !== key) {
    setShownKey(key)
    setCrops(null)
    setSnap(null)
    setShown('')
    setError('')
  }

  useEffect(() => {
    preview.current = null
    threshold.current = null
    if (!key || !hotspot || !caseId) return
    let cancelled = false
    const lo = hotspot.bbox[0].map((v) => v - PAD)
    const hi = hotspot.bbox[1].map((v) => v + PAD)
    fetchMembers(caseId, hotspot.organ, lo, hi, hotspot.centroid)
      .then((c) => !cancelled && setCrops(c))
      .catch((e: Error) => !cancelled && setError(e.message))
    return () => {
      cancelled = true
    }
  }, [key, hotspot, caseId]) // hotspot and caseId change only with key (the task is set once)

  useEffect(() => {
    const viewer = viewerRef.current
    if (!viewer) return
    const drawnSnap = crops && snap?.outline ? [snap.outline] : []
    viewer.setOutlines(crops && outlines ? [...memberOutlines(viewer, crops), ...drawnSnap] : [])
    if (localStorage.getItem('atlas.debug') === '1') (window as unknown as { atlasSnap?: SnapProposal | null })
      .atlasSnap = drawnSnap.length ? snap : null
    return () => viewer.setOutlines([])
  }, [viewerRef, crops, outlines, snap])

  /** Take back the preview when it is still the newest edit. */
  const dropPreview = useCallback(() => {
    const viewer = viewerRef.current
    if (viewer && preview.current !== null && viewer.undoDepth[0] === preview.current) viewer.undo()
    preview.current = null
  }, [viewerRef])

  /** Show `what` as the preview: the previous preview is taken back, then `run` makes one edit (or none). */
  const previewEdit = useCallback((what: string, run: (viewer: Viewer, crops: MemberCrops) => void) => {
    const viewer = viewerRef.current
    if (!viewer || !crops) return
    dropPreview()
    setShown(what)
    if (!what) return
    const before = viewer.undoDepth[0]
    run(viewer, crops)
    preview.current = viewer.undoDepth[0] > before ? viewer.undoDepth[0] : null
  }, [viewerRef, crops, dropPreview])

  const show = useCallback((what: string) => {
    if (!crops || !what) {
      previewEdit('', () => {})
      return
    }
    let inside: (c: number) => boolean
    if (what.startsWith('p')) {
      const viewer = viewerRef.current
      if (viewer && threshold.current && viewer.newestEdit === threshold.current) viewer.undo() // a new drag
      threshold.current = null
      const bound = meanBound(Number(what.slice(1))) // the server's rule: at 0.5, the pseudo-label's mask
      inside = (c) => crops.mean[c] > bound
    } else {
      const p = what === 'mean' ? crops.mean : crops.members.find((m) => m.name === what)?.probability
      if (!p) {
        previewEdit(what, () => {})
        return
      }
      inside = (c) => p[c] > 127
    }
    previewEdit(what, (viewer, c) => applyInRegion(viewer, c, active, inside))
  }, [crops, active, previewEdit, viewerRef])

  /** Keep the threshold's preview (a drag's end); the next drag replaces it while it is still the newest edit. */
  const keepThreshold = useCallback(() => {
    const viewer = viewerRef.current
    if (preview.current !== null && viewer && viewer.undoDepth[0] === preview.current) {
      threshold.current = viewer.newestEdit
    }
    preview.current = null
    setShown('')
  }, [viewerRef])

  /** Keep what the preview shows (already one edit in the history). */
  const keep = useCallback(() => {
    preview.current = null
    setShown('')
  }, [])

  /** One click: replace the region with `what` and keep it. */
  const accept = useCallback((what: string) => {
    show(what)
    keep()
  }, [show, keep])

  const status = membersStatus(hotspot, active, crops, error)
  return { hotspot, status, crops, error, shown, show, previewEdit, keep, keepThreshold, accept, outlines, setOutlines, snap, setSnap,
    cancel: () => { dropPreview(); setShown('') } }
}

export type Members = ReturnType<typeof useMembers>
