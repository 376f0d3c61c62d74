// The annotator's workspace: CT + label + attention heatmap in NiiVue, organ and hotspot lists, tools, and
// Submit / Confirm / Skip. State worth asserting on is mirrored into data-* attributes of the root element.
import { useCallback, useEffect, useMemo, useRef, useState } from 'react'
import { ApiError, api, type ErrorTag, type Me, type Task } from '../api'
import { MOUSE_HELP, SHORTCUTS, shortcutAction } from '../shortcuts'
import type { Tool } from '../viewer/edits'
import { Viewer, WINDOW_PRESETS, type ViewName } from '../viewer/niivue'

interface OrganRow {
  name: string
  value: number
  display_name: string
  color: string
  size_ml: number
  visible: boolean
}

interface HotspotRow {
  organ: string
  value: number
  ml: number
  voxels: number
  centroid: number[]
}

type Dialog = null | 'submit' | 'skip' | 'help'

const VIEWS: ViewName[] = ['axial', 'coronal', 'sagittal', 'multiplanar']
const TOOLS: [Tool, string][] = [['navigate', 'Navigate'], ['brush', 'Brush'], ['eraser', 'Eraser'],
  ['fill', 'Filled outline']]

function heartbeatSeconds(): number {
  const override = Number(localStorage.getItem('atlas.heartbeatSeconds'))
  return override > 0 ? override : 60
}

export function Workspace({ me, go }: { me: Me; go: (to: string) => void }) {
  const canvasRef = useRef<HTMLCanvasElement>(null)
  const hoverRef = useRef<HTMLSpanElement>(null)
  const viewerRef = useRef<Viewer | null>(null)
  const started = useRef(performance.now())
  const [task, setTask] = useState<Task | null>(null)
  const [state, setState] = useState<'loading' | 'ready' | 'empty' | 'error' | 'done'>('loading')
  const [error, setError] = useState('')
  const [notice, setNotice] = useState('')
  const [webgl, setWebgl] = useState('')
  const [loadMs, setLoadMs] = useState(0)
  const [organs, setOrgans] = useState<OrganRow[]>([])
  const [tags, setTags] = useState<ErrorTag[]>([])
  const [baseRevision, setBaseRevision] = useState<number | null>(null)
  const [view, setView] = useState<ViewName>('axial')
  const [win, setWin] = useState({ width: 400, level: 40 })
  const [tool, setTool] = useState<Tool>('navigate')
  const [active, setActive] = useState(0)
  const [brush, setBrush] = useState(3)
  const [protect, setProtect] = useState(true)
  const [heatOn, setHeatOn] = useState(true)
  const [heatOpacity, setHeatOpacity] = useState(0.5)
  const [labelsOn, setLabelsOn] = useState(true)
  const [labelOpacity, setLabelOpacity] = useState(0.6)
  const [hotspot, setHotspot] = useState(-1)
  const [crosshair, setCrosshair] = useState<number[]>([])
  const [edits, setEdits] = useState({ dirty: false, undo: 0, redo: 0, strokeMs: 0, strokeVoxels: 0, scanned: 0,
    uploads: '' })
  const [dialog, setDialog] = useState<Dialog>(null)
  const [conflict, setConflict] = useState<number | null>(null)
  const [busy, setBusy] = useState(false)
  const [chosenTags, setChosenTags] = useState<Record<string, string[]>>({})
  const [reason, setReason] = useState('')
  const [leaseLost, setLeaseLost] = useState('')

  const hotspots: HotspotRow[] = useMemo(() => {
    if (!task) return []
    return task.organs.flatMap((o) => o.hotspots.map((h) => ({ organ: o.name, value: o.value, ml: h.ml,
      voxels: h.voxels, centroid: h.centroid }))).sort((a, b) => b.ml - a.ml || b.voxels - a.voxels)
  }, [task])

  // Load: lease the next task, its label set and the error tags, then the volumes.
  useEffect(() => {
    let cancelled = false
    const open = async () => {
      const next = await api.next()
      if (cancelled) return
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
      setActive(rows[0]?.value ?? 1)
      setTags(errorTags)
      const viewer = await Viewer.create(canvasRef.current!)
      if (cancelled) return
      viewerRef.current = viewer
      // tests and benchmarks reach the viewer when asked to (localStorage atlas.debug = 1)
      if (localStorage.getItem('atlas.debug') === '1') {
        (window as unknown as { atlasViewer?: Viewer }).atlasViewer = viewer
      }
      setWebgl(viewer.webgl())
      viewer.onWindow = (width, level) => setWin({ width: Math.round(width), level: Math.round(level) })
      viewer.onCrosshair = (v) => setCrosshair(v)
      viewer.onEdit = () => setEdits({ dirty: viewer.dirty, undo: viewer.undoDepth[0], redo: viewer.undoDepth[1],
        strokeMs: viewer.lastStrokeMs, strokeVoxels: viewer.lastStrokeVoxels, scanned: viewer.lastStrokeScanned,
        uploads: `${viewer.uploads.full}/${viewer.uploads.box}` })
      const times = await viewer.load(next.urls)
      if (cancelled) return
      setLoadMs(Math.round(times.totalMs))
      viewer.onEdit()
      viewer.setLabelColours(rows)
      viewer.setLabelOpacity(0.6)
      viewer.setHeatmap(true, 0.5)
      setCrosshair(viewer.crosshairVoxel())
      started.current = performance.now()
      setState('ready')
    }
    open().catch((e: Error) => {
      if (!cancelled) {
        setError(e.message)
        setState('error')
      }
    })
    return () => {
      cancelled = true
      viewerRef.current?.destroy()
      viewerRef.current = null
      delete (window as unknown as { atlasViewer?: Viewer }).atlasViewer
    }
  }, [])

  // Viewer settings follow the controls.
  useEffect(() => viewerRef.current?.setTool(tool, active, brush, protect), [tool, active, brush, protect, state])
  useEffect(() => viewerRef.current?.setView(view), [view, state])
  useEffect(() => viewerRef.current?.setHeatmap(heatOn, heatOpacity), [heatOn, heatOpacity, state])
  useEffect(() => viewerRef.current?.setLabelOpacity(labelsOn ? labelOpacity : 0), [labelsOn, labelOpacity, state])
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

  const backToQueue = () => {
    if (edits.dirty && !window.confirm('You have unsaved edits. Leave the case and lose them?')) return
    leave()
  }

  const gotoHotspot = useCallback((index: number) => {
    if (!hotspots.length) return
    const i = ((index % hotspots.length) + hotspots.length) % hotspots.length
    const h = hotspots[i]
    setHotspot(i)
    setActive(h.value)
    viewerRef.current?.centreOnFileVoxel(h.centroid)
    document.querySelector(`[data-hotspot-index='${i}']`)?.scrollIntoView({ block: 'nearest' })
  }, [hotspots])

  const seconds = () => (performance.now() - started.current) / 1000

  const onApiError = (e: unknown) => {
    if (e instanceof ApiError && e.status === 409 && typeof e.body.latest_revision === 'number') {
      setConflict(e.body.latest_revision)
      setDialog(null)
    } else {
      setError((e as Error).message)
    }
  }

  const submit = async () => {
    const viewer = viewerRef.current
    if (!viewer || !task) return
    setBusy(true)
    setError('')
    try {
      const file = await viewer.labelNifti()
      const chosen = Object.fromEntries(Object.entries(chosenTags).filter(([, codes]) => codes.length > 0))
      const revision = await api.submit(task.id, file, baseRevision, chosen, seconds())
      setState('done')
      leave(`Revision ${revision.number} of ${task.case.name} saved.`)
    } catch (e) {
      onApiError(e)
    } finally {
      setBusy(false)
    }
  }

  const confirmCase = async () => {
    if (!task) return
    if (edits.dirty && !window.confirm('Confirm means "no change needed": your unsaved edits are dropped. Go on?')) {
      return
    }
    setBusy(true)
    setError('')
    try {
      const revision = await api.confirm(task.id, baseRevision, seconds())
      setState('done')
      leave(`${task.case.name} confirmed (revision ${revision.number}).`)
    } catch (e) {
      onApiError(e)
    } finally {
      setBusy(false)
    }
  }

  const skip = async () => {
    if (!task || !reason.trim()) return
    setBusy(true)
    setError('')
    try {
      await api.skip(task.id, reason.trim())
      setState('done')
      leave(`${task.case.name} skipped.`)
    } catch (e) {
      onApiError(e)
    } finally {
      setBusy(false)
    }
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

  const openSubmit = () => {
    const viewer = viewerRef.current
    if (!viewer) return
    const byValue = viewer.changes().byValue
    const initial: Record<string, string[]> = {}
    for (const o of organs) if (byValue.has(o.value)) initial[o.name] = chosenTags[o.name] ?? []
    setChosenTags(initial)
    setDialog('submit')
  }

  // Keyboard shortcuts.
  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      const target = event.target as HTMLElement
      if (target && ['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName) && event.key !== 'Escape') return
      const action = shortcutAction(event)
      if (!action) return
      if (dialog && action !== 'help' && event.key !== 'Escape') return
      const viewer = viewerRef.current
      event.preventDefault()
      event.stopPropagation()
      const organIndex = organs.findIndex((o) => o.value === active)
      switch (action) {
        case 'navigate':
          if (dialog) setDialog(null)
          else setTool('navigate')
          break
        case 'brush':
        case 'eraser':
        case 'fill':
          setTool(action)
          break
        case 'brush-smaller':
          setBrush((b) => Math.max(1, b - 1))
          break
        case 'brush-larger':
          setBrush((b) => Math.min(50, b + 1))
          break
        case 'undo':
          viewer?.undo()
          break
        case 'redo':
          viewer?.redo()
          break
        case 'organ-previous':
          if (organs.length) setActive(organs[(organIndex - 1 + organs.length) % organs.length].value)
          break
        case 'organ-next':
          if (organs.length) setActive(organs[(organIndex + 1) % organs.length].value)
          break
        case 'hotspot-next':
          gotoHotspot(hotspot + 1)
          break
        case 'hotspot-previous':
          gotoHotspot(hotspot <= 0 ? hotspots.length - 1 : hotspot - 1)
          break
        case 'slice-up':
          viewer?.scroll(1)
          break
        case 'slice-down':
          viewer?.scroll(-1)
          break
        case 'view-axial':
        case 'view-coronal':
        case 'view-sagittal':
        case 'view-multiplanar':
          setView(action.slice(5) as ViewName)
          break
        case 'window-next': {
          const names = Object.keys(WINDOW_PRESETS)
          const current = names.findIndex((n) => WINDOW_PRESETS[n].width === win.width &&
            WINDOW_PRESETS[n].level === win.level)
          const p = WINDOW_PRESETS[names[(current + 1) % names.length]]
          viewer?.setWindow(p.width, p.level)
          break
        }
        case 'heatmap-toggle':
          setHeatOn((v) => !v)
          break
        case 'labels-toggle':
          setLabelsOn((v) => !v)
          break
        case 'help':
          setDialog((d) => (d === 'help' ? null : 'help'))
          break
      }
    }
    window.addEventListener('keydown', onKey, true)
    return () => window.removeEventListener('keydown', onKey, true)
  }, [organs, active, hotspot, hotspots, gotoHotspot, dialog, win])

  const onCanvasMove = (event: React.MouseEvent<HTMLCanvasElement>) => {
    const viewer = viewerRef.current
    const span = hoverRef.current
    if (!viewer || !span || state !== 'ready') return
    const voxel = viewer.voxelAt(event.nativeEvent)
    span.dataset.hoverVoxel = voxel ? voxel.join(',') : ''
    if (!voxel) {
      span.textContent = ''
      return
    }
    const value = viewer.labelAt(voxel)
    const organ = organs.find((o) => o.value === value)
    span.textContent = `voxel ${voxel.join(', ')} · ${organ ? organ.display_name : value === 0 ? 'background' : value}`
  }

  const activeOrgan = organs.find((o) => o.value === active)

  if (state === 'empty') {
    return (
      <div className="page" data-page="workspace" data-state="empty">
        <p>Nothing is left in your queue.</p>
        <button onClick={() => leave()}>Back to my queue</button>
      </div>
    )
  }

  return (
    <div className="workspace" data-page="workspace" data-state={state} data-task={task?.id ?? ''}
      data-case={task?.case.name ?? ''} data-webgl={webgl} data-load-ms={loadMs}
      data-base-revision={baseRevision ?? ''} data-view={view} data-tool={tool} data-active={active}
      data-brush={brush} data-protect={protect ? 'on' : 'off'} data-dirty={edits.dirty ? 'yes' : 'no'}
      data-undo={edits.undo} data-redo={edits.redo} data-last-stroke-ms={edits.strokeMs.toFixed(1)}
      data-stroke-voxels={edits.strokeVoxels} data-stroke-scanned={edits.scanned} data-drawing-uploads={edits.uploads}
      data-window={`${win.width}/${win.level}`}
      data-crosshair={crosshair.join(',')} data-heatmap={heatOn ? 'on' : 'off'} data-hotspot={hotspot}
      data-conflict={conflict ?? ''}>
      <header className="bar">
        <button onClick={backToQueue} data-action="back">← Queue</button>
        <h1>{task ? `${task.case.name}` : 'Loading…'}</h1>
        {task && <span className="muted">{task.case.dataset} · round {task.round} · priority
          {' '}{task.priority.toFixed(1)} mL · {task.case.shape.join('×')}</span>}
        <span className="spacer" />
        <span className="muted">{me.username}</span>
        <button onClick={() => setDialog('help')} title="Keyboard shortcuts (?)">?</button>
      </header>
      {task?.review_comment && <p className="flash">Lead's comment: {task.review_comment}</p>}
      {error && <p className="error" role="alert" data-error>{error}</p>}
      {notice && <p className="flash" role="status" data-notice>{notice}</p>}
      {leaseLost && <p className="error" role="alert">Lease: {leaseLost}</p>}
      {conflict !== null && (
        <div className="conflict" role="alert" data-conflict-banner>
          Another revision of this case (id {conflict}) landed after the one you started from. Your edits are still
          here.
          <button onClick={reloadKeepingEdits} disabled={busy} data-action="reload-keep">
            Reload the newer revision, keeping my edits</button>
        </div>
      )}
      <div className="main">
        <aside className="side">
          <section>
            <h2>View</h2>
            <div className="buttons">
              {VIEWS.map((v, i) => (
                <button key={v} className={v === view ? 'on' : ''} onClick={() => setView(v)}
                  data-view-button={v} title={`${v} (${i + 1})`}>{v}</button>
              ))}
            </div>
            <div className="buttons">
              {Object.entries(WINDOW_PRESETS).map(([name, p]) => (
                <button key={name} className={p.width === win.width && p.level === win.level ? 'on' : ''}
                  onClick={() => viewerRef.current?.setWindow(p.width, p.level)} data-window-preset={name}>
                  {name}</button>
              ))}
            </div>
            <p className="muted">W {win.width} / L {win.level} · right-drag to change</p>
          </section>
          <section>
            <h2>Tools</h2>
            <div className="buttons">
              {TOOLS.map(([t, label]) => (
                <button key={t} className={t === tool ? 'on' : ''} onClick={() => setTool(t)} data-tool-button={t}>
                  {label}</button>
              ))}
            </div>
            <label>Brush size {brush}
              <input type="range" min={1} max={30} value={brush} onChange={(e) => setBrush(Number(e.target.value))}
                data-control="brush" />
            </label>
            <label className="check">
              <input type="checkbox" checked={protect} onChange={(e) => setProtect(e.target.checked)}
                data-control="protect" />
              protect other organs (paint only over background and {activeOrgan?.display_name ?? 'the active organ'})
            </label>
            <div className="buttons">
              <button onClick={() => viewerRef.current?.undo()} disabled={!edits.undo} data-action="undo">Undo</button>
              <button onClick={() => viewerRef.current?.redo()} disabled={!edits.redo} data-action="redo">Redo</button>
            </div>
          </section>
          <section>
            <h2>Layers</h2>
            <label className="check">
              <input type="checkbox" checked={heatOn} onChange={(e) => setHeatOn(e.target.checked)}
                data-control="heatmap" />
              attention heatmap
            </label>
            <input type="range" min={0} max={1} step={0.05} value={heatOpacity} aria-label="heatmap opacity"
              onChange={(e) => setHeatOpacity(Number(e.target.value))} data-control="heatmap-opacity" />
            <label className="check">
              <input type="checkbox" checked={labelsOn} onChange={(e) => setLabelsOn(e.target.checked)}
                data-control="labels" />
              labels
            </label>
            <input type="range" min={0} max={1} step={0.05} value={labelOpacity} aria-label="label opacity"
              onChange={(e) => setLabelOpacity(Number(e.target.value))} data-control="label-opacity" />
          </section>
        </aside>
        <div className="viewer">
          <canvas ref={canvasRef} onMouseMove={onCanvasMove} onContextMenu={(e) => e.preventDefault()} />
          <div className="status"><span ref={hoverRef} data-hover-voxel="" /></div>
          {state === 'loading' && <div className="overlay">Loading the case…</div>}
        </div>
        <aside className="side">
          <section>
            <h2>Organs <span className="muted">(attention order)</span></h2>
            <ul className="organs">
              {organs.map((o) => (
                <li key={o.value} className={o.value === active ? 'active' : ''} data-organ={o.name}
                  data-value={o.value} aria-selected={o.value === active} onClick={() => setActive(o.value)}>
                  <span className="swatch" style={{ background: o.color }} />
                  <span className="name">{o.display_name}</span>
                  <span className="muted">{o.size_ml > 0 ? `${o.size_ml.toFixed(1)} mL` : ''}</span>
                  <input type="checkbox" checked={o.visible} title="visible" data-visibility={o.name}
                    onClick={(e) => e.stopPropagation()}
                    onChange={(e) => setOrgans((rows) => rows.map((r) => r.value === o.value
                      ? { ...r, visible: e.target.checked } : r))} />
                </li>
              ))}
            </ul>
          </section>
          <section>
            <h2>Hotspots <span className="muted">(n / p)</span></h2>
            {hotspots.length === 0 && <p className="muted">none</p>}
            <ol className="hotspots">
              {hotspots.map((h, i) => (
                <li key={i} className={i === hotspot ? 'active' : ''} onClick={() => gotoHotspot(i)}
                  data-hotspot-index={i} data-centroid={h.centroid.join(',')}>
                  {organs.find((o) => o.name === h.organ)?.display_name ?? h.organ} ·{' '}
                  {h.ml >= 0.05 ? `${h.ml.toFixed(1)} mL` : `${h.voxels} voxels`}</li>
              ))}
            </ol>
          </section>
          <section className="actions">
            <button className="primary" onClick={openSubmit} disabled={busy || state !== 'ready'}
              data-action="submit">Submit revision</button>
            <button onClick={confirmCase} disabled={busy || state !== 'ready'} data-action="confirm">
              Confirm (no change)</button>
            <button onClick={() => setDialog('skip')} disabled={busy || state !== 'ready'} data-action="skip">
              Skip…</button>
          </section>
        </aside>
      </div>
      {dialog === 'submit' && (
        <div className="modal" role="dialog" aria-label="Submit revision" data-dialog="submit">
          <div className="card">
            <h2>Submit revision</h2>
            {Object.keys(chosenTags).length === 0 && <p className="muted">No organ changed (an unchanged upload is
              stored as a revision all the same; use Confirm for "no change needed").</p>}
            {Object.keys(chosenTags).map((organ) => (
              <fieldset key={organ} data-tags-for={organ}>
                <legend>{organs.find((o) => o.name === organ)?.display_name ?? organ}: what was wrong?</legend>
                {tags.map((t) => (
                  <label key={t.code} className="check" title={t.description}>
                    <input type="checkbox" data-tag={t.code} checked={chosenTags[organ].includes(t.code)}
                      onChange={(e) => setChosenTags((c) => ({ ...c, [organ]: e.target.checked
                        ? [...c[organ], t.code] : c[organ].filter((x) => x !== t.code) }))} />
                    {t.name}
                  </label>
                ))}
              </fieldset>
            ))}
            <div className="buttons">
              <button className="primary" onClick={submit} disabled={busy} data-action="upload">
                {busy ? 'Uploading…' : 'Upload'}</button>
              <button onClick={() => setDialog(null)}>Cancel</button>
            </div>
          </div>
        </div>
      )}
      {dialog === 'skip' && (
        <div className="modal" role="dialog" aria-label="Skip" data-dialog="skip">
          <div className="card">
            <h2>Skip this case</h2>
            <label>Reason
              <textarea value={reason} onChange={(e) => setReason(e.target.value)} data-control="skip-reason"
                autoFocus />
            </label>
            <div className="buttons">
              <button className="primary" onClick={skip} disabled={busy || !reason.trim()} data-action="skip-confirm">
                Skip</button>
              <button onClick={() => setDialog(null)}>Cancel</button>
            </div>
          </div>
        </div>
      )}
      {dialog === 'help' && (
        <div className="modal" role="dialog" aria-label="Keyboard shortcuts" data-dialog="help"
          onClick={() => setDialog(null)}>
          <div className="card">
            <h2>Keyboard shortcuts</h2>
            <table className="shortcuts">
              <tbody>
                {SHORTCUTS.map((s) => (
                  <tr key={s.action}><td>{s.keys.map((k) => <kbd key={k}>{k}</kbd>)}</td><td>{s.help}</td></tr>
                ))}
                {MOUSE_HELP.map(([k, h]) => <tr key={k}><td><kbd>{k}</kbd></td><td>{h}</td></tr>)}
              </tbody>
            </table>
          </div>
        </div>
      )}
    </div>
  )
}
