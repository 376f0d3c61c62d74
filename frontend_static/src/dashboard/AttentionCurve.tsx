// The attention curve (the paper's Figure 3a): every case's attention size, largest first, one line per round;
// revised cases marked. The curve falling round after round is the loop working.
import { useState } from 'react'
import { CartesianGrid, ComposedChart, Legend, Line, ResponsiveContainer, Scatter, Tooltip, XAxis,
  YAxis } from 'recharts'
import type { AttentionCurve as Curve, RoundQuality } from '../api'
import { ChartFrame, DataTable, PALETTE, type Column } from './DataTable'

type Summary = RoundQuality['attention'] & { round: number; converged: boolean | null }

const summaryColumns: Column<Summary>[] = [
  { key: 'round', label: 'round', value: (r) => r.round, numeric: true },
  { key: 'cases', label: 'cases', value: (r) => r.cases, numeric: true },
  { key: 'total_ml', label: 'total (mL)', value: (r) => r.total_ml, numeric: true },
  { key: 'max_ml', label: 'largest (mL)', value: (r) => r.max_ml, numeric: true },
  { key: 'p90_ml', label: '90th percentile', value: (r) => r.p90_ml, numeric: true },
  { key: 'median_ml', label: 'median', value: (r) => r.median_ml, numeric: true },
  { key: 'mean_ml', label: 'mean', value: (r) => r.mean_ml, numeric: true },
  { key: 'zero_cases', label: 'cases with none', value: (r) => r.zero_cases, numeric: true },
  { key: 'converged', label: 'converged', value: (r) => r.converged },
]

export function AttentionCurve({ curves, quality }: { curves: Curve[]; quality: RoundQuality[] }) {
  const [log, setLog] = useState(false)
  const series = curves.map((c) => ({
    round: c.round,
    sizes: c.cases.map((p) => p.size_ml),
    revised: c.cases.filter((p) => p.revised).map((p) => p.rank),
    confirmed: c.cases.filter((p) => p.confirmed).map((p) => p.rank),
  }))
  const positive = (v: number) => (log ? Math.max(v, 0.01) : v)
  const rows = curves.flatMap((c) => c.cases.map((p) => [c.round, p.rank, p.case, p.size_ml, p.revised, p.confirmed]))
  const summaries: Summary[] = quality.map((q) => ({ ...q.attention, round: q.round, converged: q.converged }))
  return (
    <>
      <ChartFrame name="attention-curve" title="Attention size per case, largest first, one line per round"
        series={series} height={340}
        csv={{ header: ['round', 'rank', 'case', 'size_ml', 'revised', 'confirmed'], rows }}
        note={(
          <>Crosses mark the cases revised in that round, circles the ones confirmed. <label className="inline">
            <input type="checkbox" checked={log} onChange={(e) => setLog(e.target.checked)} data-control="log" /> log
            scale</label></>
        )}>
        <ResponsiveContainer>
          <ComposedChart margin={{ top: 8, right: 24, left: 8, bottom: 16 }}>
            <CartesianGrid strokeDasharray="3 3" stroke="#333" />
            <XAxis type="number" dataKey="rank" domain={[1, 'dataMax']} allowDecimals={false} stroke="#aab"
              label={{ value: 'cases, by attention size', position: 'insideBottom', offset: -8, fill: '#aab' }} />
            <YAxis type="number" dataKey="size" scale={log ? 'log' : 'auto'} domain={log ? ['auto', 'auto'] : [0, 'auto']}
              stroke="#aab" label={{ value: 'attention (mL)', angle: -90, position: 'insideLeft', fill: '#aab' }} />
            <Tooltip contentStyle={{ background: '#20242b', border: '1px solid #444' }} />
            <Legend verticalAlign="top" />
            {curves.map((c, i) => (
              <Line key={`line${c.round}`} name={`round ${c.round}`} data={c.cases.map((p) => ({
                rank: p.rank, size: positive(p.size_ml), case: p.case }))} dataKey="size" dot={false}
              stroke={PALETTE[i % PALETTE.length]} strokeWidth={2} isAnimationActive={false} />
            ))}
            {curves.map((c, i) => (
              <Scatter key={`rev${c.round}`} name={`revised, round ${c.round}`} legendType="cross"
                data={c.cases.filter((p) => p.revised).map((p) => ({ rank: p.rank, size: positive(p.size_ml),
                  case: p.case }))} dataKey="size" shape="cross" fill={PALETTE[i % PALETTE.length]}
                isAnimationActive={false} />
            ))}
            {curves.map((c, i) => (
              <Scatter key={`conf${c.round}`} name={`confirmed, round ${c.round}`} legendType="circle"
                data={c.cases.filter((p) => p.confirmed).map((p) => ({ rank: p.rank, size: positive(p.size_ml),
                  case: p.case }))} dataKey="size" shape="circle" fill={PALETTE[i % PALETTE.length]}
                isAnimationActive={false} />
            ))}
          </ComposedChart>
        </ResponsiveContainer>
      </ChartFrame>
      <DataTable name="attention-summary" title="Attention per round (mL per case)" columns={summaryColumns}
        rows={summaries} rowKey={(r) => String(r.round)} />
    </>
  )
}
