// Quality per round: pseudo-label Dice against the revisions, model validation Dice, the label-bias matrix (the
// paper's Figure 6a), voxels decided by the AI vs people, error tags by organ. The file-based figures (label bias,
// voxels) are cached on the server; "Refresh" brings them up to date.
import { useState } from 'react'
import { Bar, BarChart, CartesianGrid, Cell, Legend, Pie, PieChart, ResponsiveContainer, Tooltip, XAxis,
  YAxis } from 'recharts'
import { dashboardApi, type Matrix, type RoundQuality, type Validation } from '../api'
import { ChartFrame, DataTable, errorText, formatCell, PALETTE, type Column } from './DataTable'

const pct = (v: number | null | undefined) => (v === null || v === undefined ? '–' : `${(100 * v).toFixed(1)}%`)
const meanOf = (values: (number | null)[]) => {
  const kept = values.filter((v): v is number => v !== null)
  return kept.length ? kept.reduce((a, b) => a + b, 0) / kept.length : null
}

function heat(v: number | null): string {
  if (v === null) return 'transparent'
  const t = Math.max(0, Math.min(1, (v - 0.7) / 0.3))  // 0.7 or less -> red, 1.0 -> green
  return `hsl(${Math.round(120 * t)}, 55%, ${28 + 10 * t}%)`
}

type RoundRow = RoundQuality

const roundColumns: Column<RoundRow>[] = [
  { key: 'round', label: 'round', value: (r) => r.round, numeric: true },
  { key: 'status', label: 'status', value: (r) => r.status },
  { key: 'converged', label: 'converged', value: (r) => r.converged },
  { key: 'reviewed', label: 'cases revised or confirmed', value: (r) => r.pseudo_label_dice.cases, numeric: true },
  { key: 'pseudo_label_dice', label: 'pseudo-label Dice', value: (r) => r.pseudo_label_dice.mean, numeric: true },
  { key: 'validation', label: 'validation Dice (mean of models)', numeric: true,
    value: (r) => meanOf(r.validation.map((v) => v.mean)) },
  { key: 'ai_share', label: 'voxels by AI', value: (r) => r.voxels?.ai_share ?? null, render: (r) => pct(r.voxels?.ai_share) },
  { key: 'people_share', label: 'voxels by people', value: (r) => r.voxels?.people_share ?? null,
    render: (r) => pct(r.voxels?.people_share) },
  { key: 'error_tags', label: 'error tags', value: (r) => r.error_tags.total, numeric: true },
  { key: 'metrics_stale', label: 'file metrics stale', value: (r) => r.metrics.stale },
]

type VoxelRow = NonNullable<RoundQuality['voxels']> & { round: number }

const voxelColumns: Column<VoxelRow>[] = [
  { key: 'round', label: 'round', value: (r) => r.round, numeric: true },
  { key: 'cases', label: 'cases', value: (r) => r.cases, numeric: true },
  { key: 'cases_revised', label: 'revised', value: (r) => r.cases_revised, numeric: true },
  { key: 'cases_confirmed', label: 'confirmed', value: (r) => r.cases_confirmed, numeric: true },
  { key: 'labelled', label: 'labelled voxels', value: (r) => r.labelled, numeric: true },
  { key: 'decided_by_ai', label: 'decided by AI', value: (r) => r.decided_by_ai, numeric: true },
  { key: 'changed_by_people', label: 'changed by people', value: (r) => r.changed_by_people, numeric: true },
  { key: 'ai_share', label: 'AI share', value: (r) => r.ai_share, render: (r) => pct(r.ai_share) },
  { key: 'people_share', label: 'people share', value: (r) => r.people_share, render: (r) => pct(r.people_share) },
  { key: 'total', label: 'all CT voxels', value: (r) => r.total, numeric: true },
  { key: 'people_share_of_all', label: 'changed, of all CT voxels', value: (r) => r.people_share_of_all,
    render: (r) => pct(r.people_share_of_all) },
]

function PseudoLabelDice({ rounds }: { rounds: RoundQuality[] }) {
  const organs = [...new Set(rounds.flatMap((q) => Object.keys(q.pseudo_label_dice.organs)))]
  const order = rounds[0]?.organs ?? []
  organs.sort((a, b) => order.indexOf(a) - order.indexOf(b))
  const withData = rounds.filter((q) => q.pseudo_label_dice.cases > 0)
  const series = organs.map((organ) => {
    const row: Record<string, string | number | null> = { organ }
    for (const q of withData) row[`round ${q.round}`] = q.pseudo_label_dice.organs[organ]?.mean ?? null
    return row
  })
  type Row = { organ: string }
  const columns: Column<Row>[] = [{ key: 'organ', label: 'organ', value: (r) => r.organ }]
  for (const q of withData) {
    columns.push({ key: `round_${q.round}`, label: `round ${q.round}`, numeric: true,
      value: (r) => q.pseudo_label_dice.organs[r.organ]?.mean ?? null })
    columns.push({ key: `round_${q.round}_n`, label: 'cases', numeric: true,
      value: (r) => q.pseudo_label_dice.organs[r.organ]?.n ?? null })
  }
  return (
    <div className="grid two">
      <ChartFrame name="pseudo-label-dice" title="Pseudo-label Dice against the revisions, per organ" series={series}>
        <ResponsiveContainer>
          <BarChart data={series} margin={{ top: 8, right: 16, left: 0, bottom: 24 }}>
            <CartesianGrid strokeDasharray="3 3" stroke="#333" />
            <XAxis dataKey="organ" stroke="#aab" angle={-30} textAnchor="end" interval={0} height={50} />
            <YAxis domain={[0, 1]} stroke="#aab" />
            <Tooltip contentStyle={{ background: '#20242b', border: '1px solid #444' }} />
            <Legend verticalAlign="top" />
            {withData.map((q, i) => (
              <Bar key={q.round} dataKey={`round ${q.round}`} fill={PALETTE[i % PALETTE.length]} isAnimationActive={false} />
            ))}
          </BarChart>
        </ResponsiveContainer>
      </ChartFrame>
      <DataTable name="pseudo-label-dice" title="Pseudo-label Dice per organ and round" columns={columns}
        rows={organs.map((organ) => ({ organ }))} rowKey={(r) => r.organ}
        note="Each case's latest revision (or confirmation) in the round against the round's pseudo-label; an organ
          empty in both counts as 1." empty="No case was revised or confirmed yet." />
    </div>
  )
}

type ValidationRow = Validation & { round: number }

function ValidationDice({ rounds }: { rounds: RoundQuality[] }) {
  const rows: ValidationRow[] = rounds.flatMap((q) => q.validation.map((v) => ({ ...v, round: q.round })))
  const archs = [...new Set(rows.map((r) => r.arch))].sort()
  const series = rounds.filter((q) => q.validation.length).map((q) => {
    const row: Record<string, number | null> = { round: q.round }
    for (const v of q.validation) row[v.arch] = v.mean
    return row
  })
  const organs = [...new Set(rows.flatMap((r) => Object.keys(r.dice)))]
  const columns: Column<ValidationRow>[] = [
    { key: 'round', label: 'round', value: (r) => r.round, numeric: true },
    { key: 'arch', label: 'architecture', value: (r) => r.arch },
    { key: 'model', label: 'model', value: (r) => r.model },
    { key: 'cases', label: 'held-out cases', value: (r) => r.cases.length, numeric: true },
    { key: 'mean', label: 'Dice', value: (r) => r.mean, numeric: true },
    { key: 'parent_mean', label: 'parent Dice', value: (r) => r.parent_mean, numeric: true },
    ...organs.map((o) => ({ key: `dice_${o}`, label: o, numeric: true,
      value: (r: ValidationRow) => r.dice[o] ?? null })),
  ]
  return (
    <div className="grid two">
      <ChartFrame name="validation" title="Model validation Dice per round and architecture" series={series}
        note="M_k against the revised cases held out from its fine-tuning.">
        <ResponsiveContainer>
          <BarChart data={series} margin={{ top: 8, right: 16, left: 0, bottom: 0 }}>
            <CartesianGrid strokeDasharray="3 3" stroke="#333" />
            <XAxis dataKey="round" stroke="#aab" tickFormatter={(v) => `round ${v}`} />
            <YAxis domain={[0, 1]} stroke="#aab" />
            <Tooltip contentStyle={{ background: '#20242b', border: '1px solid #444' }} />
            <Legend verticalAlign="top" />
            {archs.map((a, i) => <Bar key={a} dataKey={a} fill={PALETTE[i % PALETTE.length]} isAnimationActive={false} />)}
          </BarChart>
        </ResponsiveContainer>
      </ChartFrame>
      <DataTable name="validation" title="Validation Dice (held-out revised cases)" columns={columns} rows={rows}
        rowKey={(r) => `${r.round}/${r.arch}`} empty="No round has validated its models yet (round 0 has no parent;
          later rounds need revised cases held out)." />
    </div>
  )
}

function LabelBias({ q }: { q: RoundQuality }) {
  const [organ, setOrgan] = useState('')
  const bias = q.label_bias
  if (!bias) return <p className="muted" data-table="label-bias" data-rows={0}>No label-bias matrix for round {q.round}:
    no case revised or confirmed, or its file metrics are not computed yet.</p>
  const matrix: Matrix = organ ? bias.organs[organ] ?? [] : bias.mean
  type Row = { source: string; values: (number | null)[] }
  const rows: Row[] = bias.sources.map((source, i) => ({ source, values: matrix[i] ?? [] }))
  const columns: Column<Row>[] = [
    { key: 'source', label: '', value: (r) => r.source },
    ...bias.sources.map((s, j) => ({ key: s, label: s, numeric: true, value: (r: Row) => r.values[j] ?? null,
      render: (r: Row) => (
        <span className="heat" style={{ background: heat(r.values[j] ?? null) }}>{formatCell(r.values[j] ?? null)}</span>
      ) })),
  ]
  return (
    <DataTable name="label-bias" title={`Label bias, round ${q.round}: pairwise Dice`} columns={columns} rows={rows}
      rowKey={(r) => r.source}
      note={`Between the architectures, their ensemble (the pseudo-label) and the annotators, over the ${bias.cases}
        cases revised or confirmed in the round (the paper's Figure 6a)${organ ? `, ${organ} only` : ', mean over organs'}.`}
      extra={(
        <select value={organ} onChange={(e) => setOrgan(e.target.value)} data-control="bias-organ">
          <option value="">mean over organs</option>
          {Object.keys(bias.organs).map((o) => <option key={o} value={o}>{o}</option>)}
        </select>
      )} />
  )
}

function VoxelShare({ q, rounds }: { q: RoundQuality; rounds: RoundQuality[] }) {
  const rows: VoxelRow[] = rounds.filter((r) => r.voxels).map((r) => ({ ...r.voxels!, round: r.round }))
  const v = q.voxels
  const series = v ? [{ name: 'decided by AI', voxels: v.decided_by_ai }, { name: 'changed by people',
    voxels: v.changed_by_people }] : []
  return (
    <div className="grid two">
      <ChartFrame name="voxel-share" title={`Voxels decided by AI vs people, round ${q.round}`} series={series}
        note={v ? `${pct(v.ai_share)} by the AI, ${pct(v.people_share)} changed by people, of the labelled voxels
          (the paper: 92.5% / 7.5%).` : 'Not computed yet.'}>
        <ResponsiveContainer>
          <PieChart>
            <Pie data={series} dataKey="voxels" nameKey="name" innerRadius="45%" outerRadius="80%"
              isAnimationActive={false}>
              {series.map((s, i) => <Cell key={s.name} fill={i === 0 ? '#4e9bd6' : '#d9534f'} />)}
            </Pie>
            <Tooltip contentStyle={{ background: '#20242b', border: '1px solid #444' }} />
            <Legend />
          </PieChart>
        </ResponsiveContainer>
      </ChartFrame>
      <DataTable name="voxel-share" title="Voxels per round" columns={voxelColumns} rows={rows}
        rowKey={(r) => String(r.round)} empty="Not computed yet: Refresh." />
    </div>
  )
}

function ErrorTags({ q }: { q: RoundQuality }) {
  const organs = Object.keys(q.error_tags.organs)
  const tags = q.error_tags.tags.filter((t) => organs.some((o) => q.error_tags.organs[o][t]))
  const series = organs.map((organ) => {
    const row: Record<string, string | number> = { organ }
    for (const t of tags) row[t] = q.error_tags.organs[organ][t] ?? 0
    return row
  })
  type Row = { organ: string }
  const columns: Column<Row>[] = [
    { key: 'organ', label: 'organ', value: (r) => r.organ },
    ...q.error_tags.tags.map((t) => ({ key: t, label: t.replace(/_/g, ' '), numeric: true,
      value: (r: Row) => q.error_tags.organs[r.organ][t] ?? 0 })),
  ]
  return (
    <div className="grid two">
      <ChartFrame name="error-tags" title={`Error tags by organ, round ${q.round}`} series={series}>
        <ResponsiveContainer>
          <BarChart data={series} margin={{ top: 8, right: 16, left: 0, bottom: 0 }}>
            <CartesianGrid strokeDasharray="3 3" stroke="#333" />
            <XAxis dataKey="organ" stroke="#aab" />
            <YAxis allowDecimals={false} stroke="#aab" />
            <Tooltip contentStyle={{ background: '#20242b', border: '1px solid #444' }} />
            <Legend verticalAlign="top" />
            {tags.map((t, i) => <Bar key={t} dataKey={t} stackId="a" fill={PALETTE[i % PALETTE.length]}
              isAnimationActive={false} />)}
          </BarChart>
        </ResponsiveContainer>
      </ChartFrame>
      <DataTable name="error-tags" title="Error tags (the paper's taxonomy)" columns={columns}
        rows={organs.map((organ) => ({ organ }))} rowKey={(r) => r.organ} empty="No error tag in this round." />
    </div>
  )
}

export function Quality({ rounds, reload }: { rounds: RoundQuality[]; reload: () => void }) {
  const [selected, setSelected] = useState<number | null>(null)
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState('')
  if (rounds.length === 0) return <p className="muted" data-empty>No round yet.</p>
  const q = rounds.find((r) => r.round === selected) ?? rounds[rounds.length - 1]
  const refresh = async () => {
    setBusy(true)
    setError('')
    try {
      const before = q.metrics.computed
      await dashboardApi.refreshQuality(q.round)
      // the refresh runs as a job on a worker: wait for its result (at most two minutes), then show it
      for (let i = 0; i < 120; i++) {
        const now = (await dashboardApi.quality()).rounds.find((r) => r.round === q.round)
        if (now && now.metrics.computed !== before) break
        await new Promise((resolve) => window.setTimeout(resolve, 1000))
      }
      reload()
    } catch (e) {
      setError(errorText(e))
    } finally {
      setBusy(false)
    }
  }
  return (
    <>
      <DataTable name="rounds-quality" title="Rounds" columns={roundColumns} rows={rounds}
        rowKey={(r) => String(r.round)} note="Converged: the round's top-priority case was confirmed with no change
          (the paper's stopping rule)." />
      <PseudoLabelDice rounds={rounds} />
      <ValidationDice rounds={rounds} />
      <div className="round-pick" data-selected-round={q.round}>
        <label className="inline">Round{' '}
          <select value={q.round} onChange={(e) => setSelected(Number(e.target.value))} data-control="quality-round">
            {rounds.map((r) => <option key={r.round} value={r.round}>{r.round}</option>)}
          </select>
        </label>
        <span className="muted" data-metrics-stale={String(q.metrics.stale)}>
          file metrics {q.metrics.computed ? `computed ${new Date(q.metrics.computed).toLocaleString()}` : 'not computed'}
          {q.metrics.stale ? ' · stale: revisions or predictions changed since' : ''}
        </span>
        <button type="button" onClick={() => void refresh()} disabled={busy} data-action="refresh-metrics">
          {busy ? 'Refreshing…' : 'Refresh'}</button>
        {error && <span className="error" role="alert">{error}</span>}
      </div>
      <LabelBias q={q} />
      <VoxelShare q={q} rounds={rounds} />
      <ErrorTags q={q} />
    </>
  )
}
