// Queues: tasks by status, by annotator and by organ; leases; the ranked list and assignment from the page.
import { useCallback, useEffect, useState } from 'react'
import { Bar, BarChart, CartesianGrid, Legend, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts'
import { dashboardApi, type AnnotatorRow, type Lease, type OrganRow, type Overview, type RankedPage,
  type RankedTask } from '../api'
import { ChartFrame, DataTable, errorText, formatCell, PALETTE, type Column } from './DataTable'

const STATUS_COLOURS: Record<string, string> = { pending: '#8c8c8c', leased: '#e4a03a', revised: '#d9534f',
  confirmed: '#5cb85c', skipped: '#9b6fd0' }

type Named<T> = T & { name: string }

const annotatorColumns: Column<Named<AnnotatorRow>>[] = [
  { key: 'annotator', label: 'annotator', value: (r) => r.name },
  { key: 'assigned', label: 'assigned open', value: (r) => r.assigned, numeric: true },
  { key: 'leased', label: 'leased', value: (r) => r.leased, numeric: true },
  { key: 'revised', label: 'revised', value: (r) => r.revised, numeric: true },
  { key: 'confirmed', label: 'confirmed', value: (r) => r.confirmed, numeric: true },
  { key: 'skipped', label: 'skipped', value: (r) => r.skipped, numeric: true },
  { key: 'revised_all', label: 'revised (all rounds)', value: (r) => r.revised_all, numeric: true },
  { key: 'confirmed_all', label: 'confirmed (all rounds)', value: (r) => r.confirmed_all, numeric: true },
  { key: 'median_minutes', label: 'median min / case', value: (r) => r.median_minutes, numeric: true },
]

const organColumns: Column<Named<OrganRow>>[] = [
  { key: 'organ', label: 'organ', value: (r) => r.name },
  { key: 'attention_ml', label: 'attention (mL)', value: (r) => r.attention_ml, numeric: true },
  { key: 'cases', label: 'cases with attention', value: (r) => r.cases, numeric: true },
  { key: 'revised_cases', label: 'cases revised', value: (r) => r.revised_cases, numeric: true },
  { key: 'revised_voxels', label: 'voxels revised', value: (r) => r.revised_voxels, numeric: true },
  { key: 'tags', label: 'error tags', value: (r) => r.tags, numeric: true },
]

const time = (iso: string | null) => (iso ? new Date(iso).toLocaleString() : null)

const leaseColumns: Column<Lease>[] = [
  { key: 'task', label: 'task', value: (r) => r.task, numeric: true },
  { key: 'case', label: 'case', value: (r) => r.case },
  { key: 'holder', label: 'held by', value: (r) => r.holder },
  { key: 'leased_at', label: 'since', value: (r) => r.leased_at, render: (r) => time(r.leased_at) ?? '–' },
  { key: 'held_minutes', label: 'held (min)', value: (r) => r.held_minutes, numeric: true },
  { key: 'expires', label: 'expires', value: (r) => r.expires, render: (r) => time(r.expires) ?? '–' },
  { key: 'expired', label: 'expired', value: (r) => r.expired },
]

export function StatusChart({ overview }: { overview: Overview }) {
  const series = Object.entries(overview.tasks_by_status).map(([status, tasks]) => ({ status, tasks }))
  return (
    <ChartFrame name="tasks-by-status" title="Tasks by status" series={series} height={220}
      csv={{ header: ['status', 'tasks'], rows: series.map((s) => [s.status, s.tasks]) }}>
      <ResponsiveContainer>
        <BarChart data={series} margin={{ top: 8, right: 16, left: 0, bottom: 0 }}>
          <CartesianGrid strokeDasharray="3 3" stroke="#333" />
          <XAxis dataKey="status" stroke="#aab" />
          <YAxis allowDecimals={false} stroke="#aab" />
          <Tooltip contentStyle={{ background: '#20242b', border: '1px solid #444' }} />
          <Bar dataKey="tasks" isAnimationActive={false} fill={PALETTE[0]} />
        </BarChart>
      </ResponsiveContainer>
    </ChartFrame>
  )
}

export function AnnotatorChart({ overview }: { overview: Overview }) {
  const series = Object.entries(overview.by_annotator).map(([annotator, r]) => ({
    annotator, revised: r.revised, confirmed: r.confirmed, leased: r.leased, assigned: r.assigned }))
  return (
    <ChartFrame name="tasks-by-annotator" title="This round, by annotator" series={series} height={220}>
      <ResponsiveContainer>
        <BarChart data={series} margin={{ top: 8, right: 16, left: 0, bottom: 0 }}>
          <CartesianGrid strokeDasharray="3 3" stroke="#333" />
          <XAxis dataKey="annotator" stroke="#aab" />
          <YAxis allowDecimals={false} stroke="#aab" />
          <Tooltip contentStyle={{ background: '#20242b', border: '1px solid #444' }} />
          <Legend />
          {(['revised', 'confirmed', 'leased', 'assigned'] as const).map((k) => (
            <Bar key={k} dataKey={k} stackId="a" isAnimationActive={false}
              fill={k === 'assigned' ? '#4e9bd6' : STATUS_COLOURS[k]} />
          ))}
        </BarChart>
      </ResponsiveContainer>
    </ChartFrame>
  )
}

function RankedList({ annotators, onAssigned }: { annotators: string[]; onAssigned: () => void }) {
  const [page, setPage] = useState<RankedPage | null>(null)
  const [offset, setOffset] = useState(0)
  const [status, setStatus] = useState('')
  const [chosen, setChosen] = useState<Set<number>>(new Set())
  const [annotator, setAnnotator] = useState(annotators[0] ?? '')
  const [mode, setMode] = useState<'selected' | 'range'>('selected')
  const [from, setFrom] = useState('1')
  const [to, setTo] = useState('10')
  const [message, setMessage] = useState('')
  const [error, setError] = useState('')
  const limit = 50

  const load = useCallback(() => {
    dashboardApi.tasks(offset, limit, status).then(setPage).catch((e) => setError(errorText(e)))
  }, [offset, status])
  useEffect(load, [load])

  const toggle = (id: number) => setChosen((old) => {
    const next = new Set(old)
    if (next.has(id)) next.delete(id)
    else next.add(id)
    return next
  })

  const assign = async () => {
    setMessage('')
    setError('')
    try {
      const who = annotator === '' ? null : annotator
      const body = mode === 'selected' ? { annotator: who, task_ids: [...chosen] }
        : { annotator: who, rank_from: Number(from), rank_to: Number(to) }
      const { assigned } = await dashboardApi.assign(body)
      setMessage(`${assigned} task${assigned === 1 ? '' : 's'} ${who ? `assigned to ${who}` : 'unassigned'}`)
      setChosen(new Set())
      load()
      onAssigned()
    } catch (e) {
      setError(errorText(e))
    }
  }

  const columns: Column<RankedTask>[] = [
    { key: 'select', label: '', value: () => null, render: (r) => (
      <input type="checkbox" aria-label={`select ${r.case}`} checked={chosen.has(r.id)} onChange={() => toggle(r.id)}
        data-select-task={r.id} />) },
    { key: 'rank', label: 'rank', value: (r) => r.rank, numeric: true },
    { key: 'open_rank', label: 'open rank', value: (r) => r.open_rank, numeric: true,
      title: 'place among open (pending or skipped) tasks: the numbers a range assignment takes' },
    { key: 'case', label: 'case', value: (r) => r.case },
    { key: 'priority', label: 'attention (mL)', value: (r) => r.priority, numeric: true },
    { key: 'status', label: 'status', value: (r) => r.status },
    { key: 'assignee', label: 'assigned to', value: (r) => r.assignee },
    { key: 'lease_holder', label: 'leased by', value: (r) => r.lease_holder },
  ]
  const rows = page?.results ?? []
  return (
    <div className="ranked" data-ranked-count={page?.count ?? 0}>
      <DataTable name="ranked-tasks" title={`Ranked list${page?.round !== null && page ? ` (round ${page.round})` : ''}`}
        columns={columns} rows={rows} rowKey={(r) => String(r.id)} selected={(r) => chosen.has(r.id)}
        empty="No tasks." extra={(
          <label className="inline">status{' '}
            <select value={status} onChange={(e) => { setStatus(e.target.value); setOffset(0) }} data-control="status">
              <option value="">all</option>
              {['pending', 'leased', 'revised', 'confirmed', 'skipped'].map((s) => <option key={s}>{s}</option>)}
            </select>
          </label>
        )}
        note={page ? `${page.count} tasks, ${page.open} open; showing ${rows.length ? page.offset + 1 : 0}–` +
          `${page.offset + rows.length}` : null} />
      <div className="pager">
        <button type="button" disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - limit))}>‹ previous</button>
        <button type="button" disabled={!page || offset + limit >= page.count}
          onClick={() => setOffset(offset + limit)}>next ›</button>
      </div>
      <form className="assign" onSubmit={(e) => { e.preventDefault(); void assign() }} data-form="assign">
        <strong>Assign</strong>
        <label className="inline"><input type="radio" checked={mode === 'selected'} onChange={() => setMode('selected')}
          name="mode" data-mode="selected" /> the {chosen.size} selected</label>
        <label className="inline"><input type="radio" checked={mode === 'range'} onChange={() => setMode('range')}
          name="mode" data-mode="range" /> open ranks</label>
        <input type="number" min={1} value={from} onChange={(e) => setFrom(e.target.value)} aria-label="from open rank"
          name="rank_from" className="short" disabled={mode !== 'range'} />
        <span>to</span>
        <input type="number" min={1} value={to} onChange={(e) => setTo(e.target.value)} aria-label="to open rank"
          name="rank_to" className="short" disabled={mode !== 'range'} />
        <span>to</span>
        <select value={annotator} onChange={(e) => setAnnotator(e.target.value)} name="annotator">
          {annotators.map((a) => <option key={a} value={a}>{a}</option>)}
          <option value="">nobody (unassign)</option>
        </select>
        <button type="submit" className="primary" data-action="assign"
          disabled={mode === 'selected' && chosen.size === 0}>Assign</button>
        {message && <span className="flash" role="status" data-assign-result>{message}</span>}
        {error && <span className="error" role="alert">{error}</span>}
      </form>
    </div>
  )
}

export function Queues({ overview, reload }: { overview: Overview; reload: () => void }) {
  const annotators = Object.entries(overview.by_annotator).map(([name, r]) => ({ ...r, name }))
  const organs = Object.entries(overview.by_organ).map(([name, r]) => ({ ...r, name }))
  return (
    <>
      <div className="grid two">
        <StatusChart overview={overview} />
        <AnnotatorChart overview={overview} />
      </div>
      <DataTable name="by-annotator" title="By annotator" columns={annotatorColumns} rows={annotators}
        rowKey={(r) => r.name} note="Assigned, leased, revised, confirmed and skipped count this round; median minutes
          count every timed revision." />
      <div className="grid two">
        <DataTable name="by-organ" title="By organ" columns={organColumns} rows={organs} rowKey={(r) => r.name} />
        <DataTable name="leases" title="Leases" columns={leaseColumns} rows={overview.leases}
          rowKey={(r) => String(r.task)} empty="Nobody holds a lease." />
      </div>
      <RankedList annotators={overview.annotators} onAssigned={reload} />
      <p className="muted small">{formatCell(overview.remaining_tasks)} tasks left in this round.</p>
    </>
  )
}
