// The review view: a revision in the viewer with the diff against the label it was made from (per organ: voxels
// added and removed, volumes in mL), its error tags, seconds spent and quality flags; Accept, Reject with a comment
// (back to its annotator or another), Edit and accept (the lead's edits become a new revision, child of this one),
// and for a double read the adjudication of the two reads. State worth asserting on is mirrored into data-*.
import { useEffect, useRef, useState } from 'react'
import type { Me } from '../api'
import type { Tool } from '../viewer/edits'
import { Adjudicate } from './Adjudicate'
import { DiffPanel } from './DiffPanel'
import { type ReviewDetail, reviewApi } from './reviewApi'
import { type Shown, useReviewViewer } from './useReviewViewer'

export function ReviewView({ me, id, go }: { me: Me; id: number; go: (to: string) => void }) {
  const canvasRef = useRef<HTMLCanvasElement>(null)
  const hoverRef = useRef<HTMLSpanElement>(null)
  const started = useRef(0) // when this revision was opened (the review's time)
  const [detail, setDetail] = useState<ReviewDetail | null>(null)
  const [shown, setShown] = useState<Shown>('revision')
  const [organ, setOrgan] = useState('')
  const [error, setError] = useState('')
  const [busy, setBusy] = useState(false)
  const [rejecting, setRejecting] = useState(false)
  const [comment, setComment] = useState('')
  const [reassign, setReassign] = useState('')
  const [tool, setTool] = useState<Tool>('navigate')
  const [chosen, setActive] = useState(0)
  const v = useReviewViewer(canvasRef, detail, shown, organ)
  const active = chosen || (v.labelSet?.organs[0]?.value ?? 0) // the label set's first organ until one is chosen

  useEffect(() => {
    reviewApi.detail(id).then(setDetail).catch((e: Error) => setError(e.message))
  }, [id])

  useEffect(() => {
    started.current = performance.now()
  }, [id])

  useEffect(() => {
    if (v.state === 'ready') v.viewerRef.current?.setTool(tool, active, 1, true)
  }, [v.state, v.viewerRef, tool, active])

  const seconds = () => (performance.now() - started.current) / 1000
  const done = (text: string) => {
    sessionStorage.setItem('atlas.reviewFlash', text)
    go('/review')
  }
  const act = async (run: () => Promise<unknown>, text: string) => {
    setBusy(true)
    setError('')
    try {
      await run()
      done(text)
    } catch (e) {
      setError((e as Error).message)
    } finally {
      setBusy(false)
    }
  }
  const leave = () => {
    if (v.dirty && !window.confirm('You have unsaved edits. Leave and lose them?')) return
    go('/review')
  }

  const reviewed = detail?.review ?? null
  const double = detail?.double_read ?? null
  const label = detail ? `${detail.case} revision ${detail.number}` : ''
  const accept = () => void act(() => reviewApi.verdict(id, 'accepted', '', seconds(), null), `${label} accepted.`)
  const reject = () => void act(() => reviewApi.verdict(id, 'rejected', comment.trim(), seconds(), reassign || null),
    `${label} rejected: back to ${reassign || detail?.author}.`)
  const editAccept = () => void act(async () => {
    const viewer = v.viewerRef.current
    if (!viewer) throw new Error('the viewer is not ready')
    await reviewApi.editAccept(id, await viewer.labelNifti(), comment.trim(), seconds())
  }, `${label}: your edits were saved as a new revision and accepted.`)

  const onCanvasMove = (event: React.MouseEvent<HTMLCanvasElement>) => {
    const viewer = v.viewerRef.current
    const span = hoverRef.current
    if (!viewer || !span || v.state !== 'ready') return
    const voxel = viewer.voxelAt(event.nativeEvent)
    span.dataset.hoverVoxel = voxel ? voxel.join(',') : ''
    const value = voxel ? viewer.labelAt(voxel) : 0
    const name = v.labelSet?.organs.find((o) => o.value === value)?.display_name
    span.textContent = voxel ? `voxel ${voxel.join(', ')} · ${name ?? (value ? value : 'background')}` : ''
  }

  const canDecide = !!detail && !reviewed && !busy && v.state === 'ready'
  return (
    <div className="workspace review" data-page="review" data-state={v.state} data-revision={id}
      data-case={detail?.case ?? ''} data-shown={shown} data-organ={organ} data-dirty={v.dirty ? 'yes' : 'no'}
      data-tool={tool} data-active={active} data-reviewed={reviewed?.decision ?? ''}
      data-double-read={double ? double.read : ''}>
      <header className="bar">
        <button onClick={leave} data-action="back">← Review queue</button>
        <h1>{detail ? label : 'Loading…'}</h1>
        {detail && <span className="muted">by {detail.author} · round {detail.round} · {detail.kind} ·
          {' '}{Math.round(detail.seconds_spent)} s spent · attention {detail.attention_ml.toFixed(1)} mL</span>}
        <span className="spacer" />
        <span className="muted">{me.username}</span>
      </header>
      {error && <p className="error" role="alert" data-error>{error}</p>}
      {v.error && <p className="error" role="alert">{v.error}</p>}
      {reviewed && <p className="flash" data-verdict>Reviewed: {reviewed.decision} by {reviewed.reviewer}
        {reviewed.comment ? ` (“${reviewed.comment}”)` : ''}</p>}
      <div className="main">
        <aside className="side">
          <section>
            <h2>Label shown</h2>
            <div className="buttons">
              <button className={shown === 'revision' ? 'on' : ''} disabled={v.dirty}
                onClick={() => setShown('revision')} data-show="revision">This revision</button>
              <button className={shown === 'parent' ? 'on' : ''} disabled={v.dirty}
                onClick={() => setShown('parent')} data-show="parent">
                {detail?.diff.reference.number ? `Revision ${detail.diff.reference.number}` :
                  (detail?.diff.reference.source ?? 'parent').replace('_', '-')}</button>
            </div>
            <label className="check"><input type="checkbox" checked={v.overlay} onChange={v.toggleOverlay}
              data-toggle="diff" /> diff overlay</label>
            <div className="legend"><span className="added">■ added</span><span className="removed">■ removed</span></div>
          </section>
          {detail && <DiffPanel detail={detail} organ={organ} setOrgan={setOrgan} locked={v.dirty} />}
          {detail && detail.error_tags.length > 0 && (
            <section data-section="tags">
              <h2>Error tags</h2>
              <ul className="flags">{detail.error_tags.map((t) => <li key={`${t.organ}-${t.tag}`} data-tag={t.tag}>
                {t.organ}: {t.tag}</li>)}</ul>
            </section>
          )}
          <section data-section="flags" data-count={detail?.flag_rows.length ?? ''}>
            <h2>Quality flags</h2>
            {detail && detail.flag_rows.length === 0 && <p className="muted">none</p>}
            <ul className="flags">{detail?.flag_rows.map((f) => <li key={f.id} data-flag={f.kind}
              data-organ={f.organ}><b>{f.organ}</b> · {f.kind}: {f.reason}</li>)}</ul>
          </section>
        </aside>
        <div className="viewer">
          {/* a fresh canvas for each load: the last viewer's WebGL context is lost with it */}
          <div className="canvas-box">
            <canvas key={`${shown}:${organ}`} ref={canvasRef} onMouseMove={onCanvasMove}
              onContextMenu={(e) => e.preventDefault()} />
          </div>
          <div className="status"><span ref={hoverRef} data-hover-voxel="" /></div>
          {v.state === 'loading' && <div className="overlay">Loading the case…</div>}
        </div>
        <aside className="side">
          {!double && (
            <section data-section="edit">
              <h2>Edit</h2>
              <div className="buttons">
                {(['navigate', 'brush', 'eraser'] as Tool[]).map((t) => (
                  <button key={t} className={tool === t ? 'on' : ''} onClick={() => setTool(t)}
                    disabled={!!reviewed || shown !== 'revision'} data-tool={t}>{t}</button>
                ))}
              </div>
              <select value={active} onChange={(e) => setActive(Number(e.target.value))} data-choose="organ">
                {v.labelSet?.organs.map((o) => <option key={o.value} value={o.value}>{o.display_name}</option>)}
              </select>
            </section>
          )}
          <section className="actions" data-section="verdict">
            <h2>Verdict</h2>
            <label>Comment
              <textarea rows={3} value={comment} onChange={(e) => setComment(e.target.value)} data-input="comment"
                placeholder="what is wrong (needed to reject)" /></label>
            {!double && <button className="primary" onClick={accept} disabled={!canDecide || v.dirty}
              data-action="accept">Accept</button>}
            {!double && <button onClick={editAccept} disabled={!canDecide || !v.dirty || shown !== 'revision'}
              data-action="edit-accept">Edit and accept</button>}
            {!rejecting && <button onClick={() => setRejecting(true)} disabled={!canDecide}
              data-action="reject">Reject…</button>}
            {rejecting && (
              <div data-section="reject">
                <label>Send back to
                  <select value={reassign} onChange={(e) => setReassign(e.target.value)} data-choose="reassign">
                    <option value="">{detail?.author} (the annotator)</option>
                    {detail?.annotators.filter((a) => a !== detail.author).map((a) => <option key={a}>{a}</option>)}
                  </select></label>
                <button onClick={reject} disabled={!canDecide || !comment.trim()} data-action="confirm-reject">
                  Reject with this comment</button>
              </div>
            )}
          </section>
          {double && detail && <Adjudicate detail={detail} busy={busy || !!reviewed}
            run={(take, organs) => void act(() => reviewApi.adjudicate(id, take, organs, comment.trim(), seconds()),
              `${detail.case}: the double read was adjudicated.`)} />}
        </aside>
      </div>
    </div>
  )
}
