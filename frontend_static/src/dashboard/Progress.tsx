// Progress and time: cases revised and confirmed per day and per annotator, median minutes per case, time left.
import { Bar, BarChart, CartesianGrid, Legend, Line, LineChart, ResponsiveContainer, Tooltip, XAxis,
  YAxis } from 'recharts'
import type { Overview, Pace } from '../api'
import { ChartFrame, DataTable, formatCell, PALETTE, type Column } from './DataTable'

type PaceRow = Pace & { id: string; pace: string }

const paceColumns: Column<PaceRow>[] = [
  { key: 'pace', label: 'at the pace of', value: (r) => r.pace },
  { key: 'minutes_per_case', label: 'min / case', value: (r) => r.minutes_per_case, numeric: true },
  { key: 'hours', label: 'hours left', value: (r) => r.hours, numeric: true },
  { key: 'working_days', label: 'working days left', value: (r) => r.working_days, numeric: true },
  { key: 'hours_per_day', label: 'hours a day', value: (r) => r.hours_per_day, numeric: true },
]

type DayRow = Overview['per_day_by_annotator'][number]

const dayColumns: Column<DayRow>[] = [
  { key: 'day', label: 'day', value: (r) => r.day },
  { key: 'annotator', label: 'annotator', value: (r) => r.annotator },
  { key: 'revised', label: 'revised', value: (r) => r.revised, numeric: true },
  { key: 'confirmed', label: 'confirmed', value: (r) => r.confirmed, numeric: true },
]

export function Progress({ overview }: { overview: Overview }) {
  const perDay = overview.throughput_per_day
  const annotators = [...new Set(overview.per_day_by_annotator.map((r) => r.annotator))].sort()
  const days = [...new Set(overview.per_day_by_annotator.map((r) => r.day))].sort()
  const byAnnotator = days.map((day) => {
    const row: Record<string, string | number> = { day }
    for (const a of annotators) {
      const hit = overview.per_day_by_annotator.find((r) => r.day === day && r.annotator === a)
      row[a] = hit ? hit.revised + hit.confirmed : 0
    }
    return row
  })
  const pace: PaceRow[] = [
    { id: 'current', pace: overview.pace === 'measured' ? `measured (median of ${overview.timed_revisions} timed cases)`
      : 'default (no timed case yet)', ...overview.time_left },
    { id: 'paper', pace: 'the paper\'s estimate', ...overview.time_left_at_default_pace },
  ]
  return (
    <>
      <div className="cards">
        <div className="card stat" data-stat="median-minutes" data-value={overview.median_minutes_per_case}>
          <span className="big">{formatCell(overview.median_minutes_per_case, 1)}</span>
          <span className="muted">median minutes per case ({overview.pace})</span>
        </div>
        <div className="card stat" data-stat="remaining" data-value={overview.remaining_tasks}>
          <span className="big">{formatCell(overview.remaining_tasks)}</span>
          <span className="muted">cases left this round</span>
        </div>
        <div className="card stat" data-stat="working-days" data-value={overview.time_left.working_days}>
          <span className="big">{formatCell(overview.time_left.working_days, 1)}</span>
          <span className="muted">working days left at that pace ({overview.time_left.hours_per_day} h days)</span>
        </div>
      </div>
      <div className="grid two">
        <ChartFrame name="per-day" title="Cases per day (last 30 days)" series={perDay}
          csv={{ header: ['day', 'revised', 'confirmed'], rows: perDay.map((d) => [d.day, d.revised, d.confirmed]) }}>
          <ResponsiveContainer>
            <BarChart data={perDay} margin={{ top: 8, right: 16, left: 0, bottom: 0 }}>
              <CartesianGrid strokeDasharray="3 3" stroke="#333" />
              <XAxis dataKey="day" stroke="#aab" />
              <YAxis allowDecimals={false} stroke="#aab" />
              <Tooltip contentStyle={{ background: '#20242b', border: '1px solid #444' }} />
              <Legend />
              <Bar dataKey="revised" stackId="a" fill="#d9534f" isAnimationActive={false} />
              <Bar dataKey="confirmed" stackId="a" fill="#5cb85c" isAnimationActive={false} />
            </BarChart>
          </ResponsiveContainer>
        </ChartFrame>
        <ChartFrame name="per-annotator-day" title="Cases per day and annotator (revised + confirmed)"
          series={byAnnotator}>
          <ResponsiveContainer>
            <LineChart data={byAnnotator} margin={{ top: 8, right: 16, left: 0, bottom: 0 }}>
              <CartesianGrid strokeDasharray="3 3" stroke="#333" />
              <XAxis dataKey="day" stroke="#aab" />
              <YAxis allowDecimals={false} stroke="#aab" />
              <Tooltip contentStyle={{ background: '#20242b', border: '1px solid #444' }} />
              <Legend />
              {annotators.map((a, i) => (
                <Line key={a} dataKey={a} stroke={PALETTE[i % PALETTE.length]} isAnimationActive={false} />
              ))}
            </LineChart>
          </ResponsiveContainer>
        </ChartFrame>
      </div>
      <div className="grid two">
        <DataTable name="per-day-by-annotator" title="Per day and annotator" columns={dayColumns}
          rows={overview.per_day_by_annotator} rowKey={(r) => `${r.day}/${r.annotator}`} />
        <DataTable name="time-left" title="Time left" columns={paceColumns} rows={pace} rowKey={(r) => r.id}
          note="The paper's estimate: 15 minutes a case, 8-hour days (ATLAS_MINUTES_PER_CASE, ATLAS_HOURS_PER_DAY)." />
      </div>
    </>
  )
}
