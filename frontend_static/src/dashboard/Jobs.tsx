// Jobs: the rounds' state, running jobs with live progress, failures with their message, recent jobs; admins start
// the next round here (POST /api/rounds/start/).
import { useCallback, useEffect, useState } from 'react'
import { dashboardApi, type JobRow, type JobsBoard, type RoundState, type StartRoundBody } from '../api'
import { DataTable, errorText, type Column } from './DataTable'

type Arch = StartRoundBody['archs'][number]
type Size = StartRoundBody['size']
const ARCHS: Arch[] = ['swin_unetr', 'nnunet', 'unet']
const SIZES: NonNullable<Size>[] = ['tiny', 'base']
const POLL_MS = 3000

const time = (iso: string | null) => (iso ? new Date(iso).toLocaleString() : '–')

const stepText = (r: RoundState, kind: string) => {
  const s = r.steps[kind]
  return s ? `${s.succeeded}/${s.total}` : null
}

const roundColumns: Column<RoundState>[] = [
  { key: 'number', label: 'round', value: (r) => r.number, numeric: true },
  { key: 'status', label: 'state', value: (r) => r.status },
  { key: 'converged', label: 'converged', value: (r) => r.converged },
  { key: 'train', label: 'trained', value: (r) => stepText(r, 'train') },
  { key: 'infer', label: 'inferred', value: (r) => stepText(r, 'infer') },
  // with GPU workers: each case's votes combined, its attention written, on the default queue
  { key: 'attend', label: 'attended', value: (r) => stepText(r, 'attend') },
  { key: 'rank', label: 'ranked', value: (r) => stepText(r, 'rank') },
  { key: 'created', label: 'started', value: (r) => r.created, render: (r) => time(r.created) },
  { key: 'finished', label: 'finished', value: (r) => r.finished, render: (r) => time(r.finished) },
  { key: 'error', label: 'error', value: (r) => r.error || null },
]

const jobColumns: Column<JobRow>[] = [
  { key: 'key', label: 'job', value: (r) => r.key },
  { key: 'status', label: 'status', value: (r) => r.status },
  { key: 'progress', label: 'progress', value: (r) => r.progress, render: (r) => (
    <span className="bar-cell">
      <progress max={1} value={r.progress} data-job={r.key} data-progress={r.progress} />
      {` ${Math.round(100 * r.progress)}%`}
    </span>
  ) },
  { key: 'message', label: 'message', value: (r) => r.message || null },
  { key: 'attempts', label: 'attempts', value: (r) => r.attempts, numeric: true },
  { key: 'started', label: 'started', value: (r) => r.started, render: (r) => time(r.started) },
  { key: 'finished', label: 'finished', value: (r) => r.finished, render: (r) => time(r.finished) },
]

const failedColumns: Column<JobRow>[] = [
  { key: 'key', label: 'job', value: (r) => r.key },
  { key: 'error', label: 'error', value: (r) => r.error, render: (r) => <code className="error">{r.error}</code> },
  { key: 'attempts', label: 'attempts', value: (r) => r.attempts, numeric: true },
  { key: 'finished', label: 'failed at', value: (r) => r.finished, render: (r) => time(r.finished) },
]

function StartRound({ onStarted, disabled }: { onStarted: () => void; disabled: boolean }) {
  const [archs, setArchs] = useState<Arch[]>(ARCHS)
  const [size, setSize] = useState<Size>(null)  // null: the server's default (base when a start is registered)
  const [steps, setSteps] = useState('')
  const [message, setMessage] = useState('')
  const [error, setError] = useState('')
  const submit = async () => {
    setMessage('')
    setError('')
    try {
      const round = await dashboardApi.startRound({ archs, size, steps: steps ? Number(steps) : null })
      setMessage(`round ${round.number} started (${round.status})`)
      onStarted()
    } catch (e) {
      setError(errorText(e))
    }
  }
  return (
    <form className="start-round card" data-form="start-round" onSubmit={(e) => { e.preventDefault(); void submit() }}>
      <strong>Start the next round</strong>
      {ARCHS.map((a) => (
        <label key={a} className="inline">
          <input type="checkbox" checked={archs.includes(a)} data-arch={a}
            onChange={(e) => setArchs(e.target.checked ? [...archs, a] : archs.filter((x) => x !== a))} /> {a}
        </label>
      ))}
      <select value={size ?? ''} onChange={(e) => setSize(SIZES.find((x) => x === e.target.value) ?? null)} name="size">
        <option value="">size: auto</option>
        {SIZES.map((x) => <option key={x} value={x}>{x}</option>)}
      </select>
      <input type="number" min={1} placeholder="steps (default)" value={steps} className="short wide"
        onChange={(e) => setSteps(e.target.value)} name="steps" aria-label="training steps" />
      <button type="submit" className="primary" data-action="start-round" disabled={disabled}
        title={disabled ? 'a round is training, inferring or ranking' : ''}>Start round</button>
      {message && <span className="flash" role="status" data-start-result>{message}</span>}
      {error && <span className="error" role="alert">{error}</span>}
    </form>
  )
}

export function Jobs() {
  const [board, setBoard] = useState<JobsBoard | null>(null)
  const [error, setError] = useState('')
  const load = useCallback(() => {
    dashboardApi.jobs().then((b) => { setBoard(b); setError('') }).catch((e) => setError(errorText(e)))
  }, [])
  useEffect(() => {
    load()
    const timer = window.setInterval(load, POLL_MS)
    return () => window.clearInterval(timer)
  }, [load])
  if (!board) return <p className="muted">{error || 'Loading jobs…'}</p>
  return (
    <div data-jobs-state="ready" data-active={String(board.active)}>
      {error && <p className="error" role="alert">{error}</p>}
      {board.can_start && <StartRound onStarted={load} disabled={board.active} />}
      <DataTable name="rounds-state" title="Rounds" columns={roundColumns} rows={board.rounds}
        rowKey={(r) => String(r.number)} empty="No round yet." />
      {board.round && (
        <p className="muted">Round {board.round.number}: {board.round.status}
          {board.queued ? `, ${board.queued} jobs queued` : ''}{board.round.models.length
            ? `; models ${board.round.models.join(', ')}` : ''}. Refreshes every {POLL_MS / 1000} s.</p>
      )}
      <DataTable name="running-jobs" title="Running" columns={jobColumns} rows={board.running}
        rowKey={(r) => r.key} empty="No job is running." />
      <DataTable name="failed-jobs" title="Failed" columns={failedColumns} rows={board.failed}
        rowKey={(r) => r.key} empty="No job failed." />
      <DataTable name="recent-jobs" title="Recent" columns={jobColumns} rows={board.recent}
        rowKey={(r) => r.key} empty="No job finished yet." />
    </div>
  )
}
