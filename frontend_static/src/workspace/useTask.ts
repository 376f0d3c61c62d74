// The task and its lease: lease the next task, load its label set, error tags and volumes into a new Viewer; the
// heartbeat; asking before leaving with unsaved edits; Submit / Confirm / Skip and the 409 reload.
import { useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState } from 'react'
import { ApiError, api, type ErrorTag, type Task } from '../api'
import { openViewer } from '../viewer/lifecycle'
import type { Viewer } from '../viewer/niivue'
import type { EditStats, HotspotRow, LoadState, OrganRow } from './types'

function heartbeatSeconds(): number {
  const override = Number(localStorage.getItem('atlas.heartbeatSeconds'))
  return override > 0 ? override : 60
}

const NO_EDITS: EditStats = { dirty: false, undo: 0, redo: 0, strokeMs: 0, strokeVoxels: 0, scanned: 0, uploads: '',
  toolMs: 0, redrawMs: 0 }

/** Called once the viewer exists, before the volumes load: the caller wires its callbacks. */
export type OnViewer = (viewer: Viewer) => void

export function useTask(canvasRef: { current: HTMLCanvasElement | null }, go: (to: string) => void,
  onViewer: OnViewer) {
  const viewerRef = useRef<Viewer | null>(null)
  const started = useRef(0) // when the case was shown (set once it has loaded)
  const [task, setTask] = useState<Task | null>(null)
  const [state, setState] = useState<LoadState>('loading')
  const [error, setError] = useState('')
  const [notice, setNotice] = useState('')
  const [webgl, setWebgl] = useState('')
  const [loadMs, setLoadMs] = useState(0)
  const [organs, setOrgans] = useState<OrganRow[]>([])
  const [tags, setTags] = useState<ErrorTag[]>([])
  const [baseRevision, setBaseRevision] = useState<number | null>(null)
  const [edits, setEdits] = useState<EditStats>(NO_EDITS)
  const [conflict, setConflict] = useState<number | null>(null)
  const [busy, setBusy] = useState(false)
  const [leaseLost, setLeaseLost] = useState('')
  const onViewerRef = useRef(onViewer)
  useLayoutEffect(() => {
    onViewerRef.current = onViewer
  })

  const hotspots: HotspotRow[] = useMemo(() => {
    if (!task) return []
    return task.organs.flatMap((o) => o.hotspots.map((h) => ({ organ: o.name, value: o.value,
      display_name: o.display_name, ml: h.ml,
      voxels: h.voxels, centroid: h.centroid, bbox: h.bbox }))).sort((a, b) => b.ml - a.ml || b.voxels - a.voxels)
  }, [task])

  useEffect(() => {
    return openViewer(canvasRef, viewerRef, async (session) => {
      const next = await api.next()
      if (session.cancelled()) return
      if (!next) {
        setState('empty')
        return
      }
      setTask(next)
      setBaseRevision(next.base_revision)
      const [labelSet, errorTags] = await Promise.all([api.labelSet(next.case.id), api.errorTags()])
      const rows: OrganRow[] = next.organs.map((o) => ({ name: o.name, value: o.value,
        display_name: o.display_name, color: o.color, size_ml: o.size_ml, visible: true }))
      for (const o of labelSet.organs) {
        if (!rows.some((r) => r.value === o.value)) rows.push({ ...o, size_ml: 0, visible: true })
      }
      setOrgans(rows)
      setTags(errorTags)
      const viewer = await session.create()
      if (!viewer) return
      setWebgl(viewer.webgl())
      viewer.onEdit = () => setEdits({ dirty: viewer.dirty, undo: viewer.undoDepth[0], redo: viewer.undoDepth[1],
        strokeMs: viewer.lastStrokeMs, strokeVoxels: viewer.lastStrokeVoxels, scanned: viewer.lastStrokeScanned,
        uploads: `${viewer.uploads.full}/${viewer.uploads.box}`, toolMs: viewer.lastToolMs,
        redrawMs: viewer.lastRedrawMs })
      onViewerRef.current(viewer)
      const times = await viewer.load(next.urls)
      if (session.cancelled()) return
      setLoadMs(Math.round(times.totalMs))
      viewer.onEdit()
      viewer.setLabelColours(rows)
      viewer.setLabelOpacity(0.6)
      viewer.setHeatmap(true, 0.5)
      viewer.onCrosshair(viewer.crosshairVoxel())
      started.current = performance.now()
      setState('ready')
    }, (message) => {
      setError(message)
      setState('error')
    })
  }, [canvasRef])

  useEffect(() => {
    if (state === 'ready') viewerRef.current?.setLabelColours(organs)
  }, [organs, state])

  // The lease: a heartbeat while the workspace is open.
  useEffect(() => {
    if (!task || state !== 'ready') return
    const timer = window.setInterval(() => {
      api.heartbeat(task.id).catch((e: Error) => setLeaseLost(e.message))
    }, heartbeatSeconds() * 1000)
    return () => window.clearInterval(timer)
  }, [task, state])

  // Leaving with unsaved edits asks first.
  useEffect(() => {
    const onBeforeUnload = (event: BeforeUnloadEvent) => {
      if (viewerRef.current?.dirty && state === 'ready') {
        event.preventDefault()
        event.returnValue = ''
      }
    }
    window.addEventListener('beforeunload', onBeforeUnload)
    return () => window.removeEventListener('beforeunload', onBeforeUnload)
  }, [state])

  const leave = useCallback((flash = '') => {
    if (flash) sessionStorage.setItem('atlas.flash', flash)
    go('/')
  }, [go])

  const seconds = () => (performance.now() - started.current) / 1000

  const onApiError = (e: unknown, closeDialog: () => void) => {
    if (e instanceof ApiError && e.status === 409 && typeof e.body.latest_revision === 'number') {
      setConflict(e.body.latest_revision)
      closeDialog()
    } else {
      setError((e as Error).message)
    }
  }

  /** Run one server action with the busy flag; on success leave with `flash(result)`. */
  const act = async <T,>(run: () => Promise<T>, flash: (result: T) => string, closeDialog: () => void) => {
    setBusy(true)
    setError('')
    try {
      const result = await run()
      setState('done')
      leave(flash(result))
    } catch (e) {
      onApiError(e, closeDialog)
    } finally {
      setBusy(false)
    }
  }

  const submit = (chosenTags: Record<string, string[]>, closeDialog: () => void) => {
    const viewer = viewerRef.current
    if (!viewer || !task) return
    const chosen = Object.fromEntries(Object.entries(chosenTags).filter(([, codes]) => codes.length > 0))
    void act(async () => api.submit(task.id, await viewer.labelNifti(), baseRevision, chosen, seconds()),
      (revision) => `Revision ${revision.number} of ${task.case.name} saved.`, closeDialog)
  }

  const confirmCase = (closeDialog: () => void) => {
    if (!task) return
    if (edits.dirty && !window.confirm('Confirm means "no change needed": your unsaved edits are dropped. Go on?')) {
      return
    }
    void act(() => api.confirm(task.id, baseRevision, seconds()),
      (revision) => `${task.case.name} confirmed (revision ${revision.number}).`, closeDialog)
  }

  const skip = (reason: string, closeDialog: () => void) => {
    if (!task || !reason.trim()) return
    void act(() => api.skip(task.id, reason.trim()), () => `${task.case.name} skipped.`, closeDialog)
  }

  const reloadKeepingEdits = async () => {
    const viewer = viewerRef.current
    if (!viewer || !task || conflict === null) return
    setBusy(true)
    try {
      const kept = await viewer.rebase(task.urls.label)
      setBaseRevision(conflict)
      setConflict(null)
      setNotice(`Reloaded the newer revision (id ${conflict}); your ${kept} edited voxels are kept on top of it. ` +
        'Check them and submit again.')
    } catch (e) {
      setError((e as Error).message)
    } finally {
      setBusy(false)
    }
  }

  return { viewerRef, task, state, error, notice, webgl, loadMs, organs, setOrgans, tags, baseRevision, edits,
    conflict, busy, leaseLost, hotspots, leave, submit, confirmCase, skip, reloadKeepingEdits }
}
