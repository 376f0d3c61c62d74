// Click to correct (issue 25): with the Click tool, a left click on a slice is a positive point for the active organ,
// a shift-click or a right click a negative one; a drag is a scribble (shift: a negative one), a drag with Alt (or
// in box mode) a box on the slice. Each prompt asks the interactive engine for the organ's new mask around it
// (useClick.ts) and lands as one undoable edit. The panel shows the engine (a choice when there are several) with its
// version, licence and validation figures, the session's points, and the request's wait (and a busy engine's).
import type { PointerTool } from '../../viewer/geometry'
import type { Click, Prompt } from './useClick'

/** What a drag draws: a scribble or a box. */
export type ClickMode = 'scribble' | 'box'

/** The Click tool's pointer: press and release on one voxel is a point, a drag a scribble or a box (on the slice the
 * press began on); `draft` shows the drag as it goes (null: done). */
export function clickPointer(host: { mode: () => ClickMode; prompt: (p: Prompt) => void
  draft: (p: Prompt | null) => void }): PointerTool {
  let drag: { voxels: number[][]; axis: number; positive: boolean; box: boolean } | null = null
  const current = (d: NonNullable<typeof drag>): Prompt => {
    if (d.voxels.length === 1) return { kind: 'point', voxels: d.voxels, positive: d.positive }
    if (d.box) return { kind: 'box', voxels: [d.voxels[0], d.voxels[d.voxels.length - 1]], positive: true }
    return { kind: 'scribble', voxels: d.voxels, positive: d.positive }
  }
  return {
    down: (voxel, axis, keys) => {
      drag = { voxels: [voxel], axis, positive: !keys.shift, box: keys.alt || host.mode() === 'box' }
    },
    move: (voxel, axis) => {
      if (!drag || axis !== drag.axis || voxel[axis] !== drag.voxels[0][axis]) return
      const last = drag.voxels[drag.voxels.length - 1]
      if (voxel.every((v, k) => v === last[k])) return
      drag.voxels.push(voxel)
      host.draft(current(drag))
    },
    up: () => {
      const d = drag
      drag = null
      host.draft(null)
      if (d) host.prompt(current(d))
    },
    right: (voxel) => host.prompt({ kind: 'point', voxels: [voxel], positive: false }),
  }
}

const figure = (v: number | null | undefined) => (v === null || v === undefined ? '–' : v.toFixed(2))

export function ClickControls({ k, organName }: { k: Click; organName: string }) {
  const e = k.engine
  const v = e?.validation
  return (
    <div className="click-tool" data-click={k.state} data-click-queued={k.queued}
      data-click-points={`${k.positive}/${k.negative}`}
      data-click-scribbles={k.scribbles} data-click-changed={k.last?.changed ?? ''}
      data-click-ms={k.last ? k.last.ms.toFixed(1) : ''}
      data-click-engine={e ? `${e.kind}:${e.version}` : ''}>
      {k.engines && k.engines.engines.length > 1 ? (
        <label>Engine{' '}
          <select value={e?.kind ?? ''} onChange={(event) => k.setKind(event.target.value)} data-control="click-engine">
            {k.engines.engines.map((x) => <option key={x.kind} value={x.kind}>{x.name} ({x.version})</option>)}
          </select>
        </label>
      ) : e && <p className="muted">Engine: {e.name} ({e.version})</p>}
      {e && (
        <>
          <p className="muted" data-click-licence>Licence: {e.licence}</p>
          <p className="muted" data-click-validation title={v?.validated_on}>
            Dice {figure(v?.dice_0)} before; after 1 / 3 / 5 clicks {figure(v?.dice_1)} / {figure(v?.dice_3)}
            {' / '}{figure(v?.dice_5)} ({v?.cases ?? 0} samples, {v?.validated_on || 'not validated'})</p>
        </>
      )}
      <p className="muted">Click: add {organName} · Shift+click or right click: remove · drag: scribble ·
        Alt+drag: box</p>
      <div className="buttons">
        {(['scribble', 'box'] as const).map((m) => (
          <button key={m} className={k.mode === m ? 'on' : ''} onClick={() => k.setMode(m)}
            data-click-mode={m}>drag: {m}</button>
        ))}
      </div>
      <p className="muted">{organName}: {k.positive} positive, {k.negative} negative point{k.negative === 1 ? '' : 's'}
        {k.scribbles ? `, ${k.scribbles} scribble${k.scribbles === 1 ? '' : 's'}` : ''}{' '}
        <button onClick={k.clear} data-action="click-clear" title="forget this organ's points (the label stays)">
          New session</button></p>
      <ClickStatus k={k} />
    </div>
  )
}

function ClickStatus({ k }: { k: Click }) {
  const more = k.queued > 1 ? ` (${k.queued - 1} more click${k.queued > 2 ? 's' : ''} waiting)` : ''
  if (k.state === 'waiting') {
    return <p className="flash" role="status" data-click-wait>Waiting for the click engine… {k.waited.toFixed(1)} s
      {more}</p>
  }
  if (k.state === 'busy') return <p className="flash" role="status" data-click-busy>{k.message}{more}</p>
  if (k.state === 'error') return <p className="error" role="alert" data-click-error>Click: {k.message}</p>
  if (k.state === 'done' && k.last) {
    const s = k.last.seconds
    return <p className="muted" data-click-result>{k.last.changed} voxels changed ({k.last.proposed} proposed) ·
      engine {s.engine.toFixed(2)} s, waited {s.wait.toFixed(2)} s, round trip {(k.last.ms / 1000).toFixed(2)} s</p>
  }
  return null
}
