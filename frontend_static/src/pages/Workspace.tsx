// The annotator's workspace: CT + label + attention heatmap in NiiVue, organ and hotspot lists, tools, and
// Submit / Confirm / Skip. State worth asserting on is mirrored into data-* attributes of the root element.
// The parts live in ../workspace/: the task and lease (useTask), display controls (useViewerControls), the tools
// (tools/, one file per tool), the keyboard (useShortcuts), panels and dialogs.
import { useCallback, useEffect, useLayoutEffect, useRef, useState } from 'react'
import type { Me } from '../api'
import type { Viewer } from '../viewer/niivue'
import { HelpDialog, SkipDialog, SubmitDialog } from '../workspace/Dialogs'
import { FlagsPanel } from '../workspace/FlagsPanel'
import { LayersPanel } from '../workspace/LayersPanel'
import { HotspotsPanel, OrgansPanel } from '../workspace/OrgansPanel'
import { interpolate } from '../workspace/tools/Interpolate'
import { ToolsPanel } from '../workspace/tools/ToolsPanel'
import { useClick } from '../workspace/tools/useClick'
import { useMembers } from '../workspace/tools/useMembers'
import { useTools } from '../workspace/tools/useTools'
import type { Dialog } from '../workspace/types'
import { useShortcuts } from '../workspace/useShortcuts'
import { useTask } from '../workspace/useTask'
import { useViewerControls } from '../workspace/useViewerControls'
import { OrientationMarkers, ViewPanel } from '../workspace/ViewPanel'

export function Workspace({ me, go }: { me: Me; go: (to: string) => void }) {
  const canvasRef = useRef<HTMLCanvasElement>(null)
  const hoverRef = useRef<HTMLSpanElement>(null)
  const wire = useRef<(viewer: Viewer) => void>(() => {})
  const onViewer = useCallback((viewer: Viewer) => wire.current(viewer), [])
  const w = useTask(canvasRef, go, onViewer)
  const c = useViewerControls(w.viewerRef, w.state)
  const t = useTools(w.viewerRef, w.state === 'ready')
  const { setWin, setCrosshair } = c
  const [viewer, setViewer] = useState<Viewer | null>(null) // the click tool's: its session follows the edit history
  useLayoutEffect(() => {
    wire.current = (viewer) => {
      viewer.onWindow = (width, level) => setWin({ width: Math.round(width), level: Math.round(level) })
      viewer.onCrosshair = (v) => setCrosshair(v)
      setViewer(viewer)
    }
  }, [setWin, setCrosshair])
  const [hotspot, setHotspot] = useState(-1)
  const [dialog, setDialog] = useState<Dialog>(null)
  const [chosenTags, setChosenTags] = useState<Record<string, string[]>>({})
  const [reason, setReason] = useState('')
  const [toolMessage, setToolMessage] = useState('')
  const { viewerRef, task, state, organs, hotspots, edits, busy } = w
  const { setActive } = t
  const m = useMembers(viewerRef, task?.case.id, hotspots[hotspot], t.active)
  const activeOrgan = organs.find((o) => o.value === t.active)
  const k = useClick(viewer, task?.case.id, t, activeOrgan, state === 'ready', edits.undo, edits.redo)

  // the first organ (largest attention) is the pen's value when the case opens
  useEffect(() => {
    if (organs.length) setActive((a) => (a === 0 ? organs[0].value : a))
  }, [organs, setActive])

  const gotoHotspot = useCallback((index: number) => {
    if (!hotspots.length) return
    const i = ((index % hotspots.length) + hotspots.length) % hotspots.length
    const h = hotspots[i]
    setHotspot(i)
    setActive(h.value)
    viewerRef.current?.centreOnFileVoxel(h.centroid)
    document.querySelector(`[data-hotspot-index='${i}']`)?.scrollIntoView({ block: 'nearest' })
  }, [hotspots, viewerRef, setActive])

  const runInterpolate = useCallback(() => {
    const viewer = viewerRef.current
    if (!viewer) return
    const result = interpolate(viewer, t.active)
    setToolMessage(typeof result === 'string' ? result : `interpolated: ${result} voxels added`)
  }, [viewerRef, t.active])

  useShortcuts({ viewerRef, organs, tools: t, controls: c, dialog, setDialog, hotspot, hotspotCount: hotspots.length,
    gotoHotspot, interpolate: runInterpolate, members: m })

  const backToQueue = () => {
    if (edits.dirty && !window.confirm('You have unsaved edits. Leave the case and lose them?')) return
    w.leave()
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

  const close = () => setDialog(null)

  if (state === 'empty') {
    return (
      <div className="page" data-page="workspace" data-state="empty">
        <p>Nothing is left in your queue.</p>
        <button onClick={() => w.leave()}>Back to my queue</button>
      </div>
    )
  }

  return (
    <div className="workspace" data-page="workspace" data-state={state} data-task={task?.id ?? ''}
      data-case={task?.case.name ?? ''} data-webgl={w.webgl} data-load-ms={w.loadMs}
      data-base-revision={w.baseRevision ?? ''} data-view={c.view} data-tool={t.tool} data-active={t.active}
      data-brush={t.brush} data-protect={t.protect ? 'on' : 'off'} data-dirty={edits.dirty ? 'yes' : 'no'}
      data-undo={edits.undo} data-redo={edits.redo} data-last-stroke-ms={edits.strokeMs.toFixed(1)}
      data-stroke-voxels={edits.strokeVoxels} data-stroke-scanned={edits.scanned}
      data-drawing-uploads={edits.uploads} data-tool-ms={edits.toolMs.toFixed(1)}
      data-redraw-ms={edits.redrawMs.toFixed(1)} data-window={`${c.win.width}/${c.win.level}`}
      data-display={c.radiological ? 'radiological' : 'neurological'}
      data-crosshair={c.crosshair.join(',')} data-heatmap={c.heatOn ? 'on' : 'off'} data-hotspot={hotspot}
      data-conflict={w.conflict ?? ''}>
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
      {w.error && <p className="error" role="alert" data-error>{w.error}</p>}
      {w.notice && <p className="flash" role="status" data-notice>{w.notice}</p>}
      {w.leaseLost && <p className="error" role="alert">Lease: {w.leaseLost}</p>}
      {w.conflict !== null && (
        <div className="conflict" role="alert" data-conflict-banner>
          Another revision of this case (id {w.conflict}) landed after the one you started from. Your edits are still
          here.
          <button onClick={() => void w.reloadKeepingEdits()} disabled={busy} data-action="reload-keep">
            Reload the newer revision, keeping my edits</button>
        </div>
      )}
      <div className="main">
        <aside className="side">
          <ViewPanel c={c} viewerRef={viewerRef} />
          <ToolsPanel t={t} m={m} k={k} viewerRef={viewerRef} ready={state === 'ready'} organ={activeOrgan}
            undo={edits.undo} redo={edits.redo} say={setToolMessage} />
          {toolMessage && <p className="muted" data-tool-message>{toolMessage}</p>}
          <LayersPanel c={c} />
        </aside>
        <div className="viewer">
          <div className="canvas-box">
            <canvas ref={canvasRef} onMouseMove={onCanvasMove} onContextMenu={(e) => e.preventDefault()} />
          </div>
          {state === 'ready' && <OrientationMarkers view={c.view} radiological={c.radiological} />}
          <div className="status"><span ref={hoverRef} data-hover-voxel="" /></div>
          {state === 'loading' && <div className="overlay">Loading the case…</div>}
        </div>
        <aside className="side">
          <OrgansPanel organs={organs} active={t.active} setActive={setActive} setOrgans={w.setOrgans} />
          <HotspotsPanel hotspots={hotspots} hotspot={hotspot} organs={organs} goto={gotoHotspot} />
          <FlagsPanel taskId={task?.id} viewerRef={viewerRef} />
          <section className="actions">
            <button className="primary" onClick={openSubmit} disabled={busy || state !== 'ready'}
              data-action="submit">Submit revision</button>
            <button onClick={() => w.confirmCase(close)} disabled={busy || state !== 'ready'} data-action="confirm">
              Confirm (no change)</button>
            <button onClick={() => setDialog('skip')} disabled={busy || state !== 'ready'} data-action="skip">
              Skip…</button>
          </section>
        </aside>
      </div>
      {dialog === 'submit' && <SubmitDialog organs={organs} tags={w.tags} chosen={chosenTags}
        setChosen={setChosenTags} busy={busy} upload={() => w.submit(chosenTags, close)} close={close} />}
      {dialog === 'skip' && <SkipDialog reason={reason} setReason={setReason} busy={busy}
        skip={() => w.skip(reason, close)} close={close} />}
      {dialog === 'help' && <HelpDialog close={close} />}
    </div>
  )
}
