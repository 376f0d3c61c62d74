// 3D clean-up of the active organ inside its box, each one click and one undoable edit: remove islands smaller
// than N mL, keep only the largest component, fill enclosed holes. Once a case is loaded, the page warms the
// clean-ups (and the snap) up for the JIT while it is idle (one small step per idle callback), so that the first
// click is as fast as the later ones.
import { useEffect } from 'react'
import { unionBox } from '../../viewer/edits'
import type { Viewer } from '../../viewer/niivue'
import { fillHoles, keepLargest, removeIslands, reserveScratch, warmUpSteps } from '../../viewer/ops/components'
import { snapWarmUpSteps } from '../../viewer/ops/snap'
import type { ViewerRef } from '../types'
import type { Tools } from './useTools'

const WARM_UP_ROUNDS = 8 // of each clean-up on the small synthetic volume
const SNAP_WARM_UP_ROUNDS = 6 // of the snap (viewer/ops/snap.ts), whose outline is computed on a hotspot's selection
let warmUp: (() => void)[] | null = null // the warm-up's steps not yet run (null: not started); once per page

interface Deadline {
  didTimeout: boolean
  timeRemaining: () => number
}
type Idle = (run: (deadline: Deadline) => void) => number
// an idle period, or a second at most (a busy or starved page still warms up, a step at a time); Safari has no
// requestIdleCallback: a timer stands in for it
const whenIdle: Idle = typeof requestIdleCallback === 'function' ? (run) => requestIdleCallback(run, { timeout: 1000 })
  : (run) => window.setTimeout(() => run({ didTimeout: false, timeRemaining: () => 50 }), 250)
const cancelIdle = (handle: number) => (typeof cancelIdleCallback === 'function' ? cancelIdleCallback(handle)
  : window.clearTimeout(handle))

/** Rows (y times z) of the largest box any organ of the case has, grown by one voxel (fill holes' box). */
function largestBoxRows(viewer: Viewer): number {
  let rows = 0
  for (let value = 1; value < 256; value++) {
    const box = viewer.organBox(value)
    if (box) rows = Math.max(rows, (box.y1 - box.y0 + 3) * (box.z1 - box.z0 + 3))
  }
  return rows
}

function warmUpOff(): boolean {
  try {
    return localStorage.getItem('atlas.warmup') === 'off'
  } catch {
    return false // storage refused (a private window): warm up
  }
}

/**
 * Run the warm-up's steps while the page is idle, once the viewer has a case: a step only when the idle period has
 * room for it (twice the longest step so far, or 40 of an idle period's 50 ms at most), or one step when no idle
 * period came for a second (a page kept busy, or a machine so loaded that idle callbacks come late). Each step is
 * measured as 'atlas:warmup'; 'atlas:warmup:done' marks the end. Returns the cancel function (the steps left run on
 * the next mount). localStorage atlas.warmup = 'off' turns it off (bench_tools.py --no-warmup measures without it).
 */
function warmUpWhenIdle(viewer: Viewer): () => void {
  if (warmUpOff()) return () => {}
  let handle = 0
  let waiting = 0
  let longest = 5
  const step = (deadline: Deadline) => {
    if (!viewer.geometry) {
      waiting = window.setTimeout(() => (handle = whenIdle(step)), 500) // the case is still loading
      return
    }
    if (warmUp === null) {
      warmUp = [...warmUpSteps(WARM_UP_ROUNDS), ...snapWarmUpSteps(SNAP_WARM_UP_ROUNDS)]
      reserveScratch(largestBoxRows(viewer))
    }
    let forced = deadline.didTimeout
    while (warmUp.length > 0 && (forced || deadline.timeRemaining() >= Math.min(2 * longest, 40))) {
      forced = false
      const t0 = performance.now()
      warmUp.shift()!()
      const t1 = performance.now()
      performance.measure('atlas:warmup', { start: t0, end: t1 })
      longest = Math.max(longest, t1 - t0)
    }
    if (warmUp.length > 0) handle = whenIdle(step)
    else performance.mark('atlas:warmup:done')
  }
  if (warmUp === null || warmUp.length > 0) handle = whenIdle(step)
  return () => {
    cancelIdle(handle)
    window.clearTimeout(waiting)
  }
}

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

export function CleanupControls({ t, viewerRef, ready }: { t: Tools; viewerRef: ViewerRef; ready: boolean }) {
  const run = (op: CleanupOp) => {
    const viewer = viewerRef.current
    if (viewer) cleanup(viewer, op, t.active, t.islandMl)
  }
  useEffect(() => {
    const viewer = viewerRef.current
    return ready && viewer ? warmUpWhenIdle(viewer) : undefined
  }, [viewerRef, ready])
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
