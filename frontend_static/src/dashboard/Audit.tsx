// How good is the part nobody revised (issue 26): per round the audit sample's headline figures; for the shown round
// the estimates with their 95% intervals and sample sizes (unrevised and auto-accepted parts, overall and per organ),
// the stopping rules, the auto-accept rule, and which member is right where (GET /api/dashboard/audit/).
// The export's dataset card (quality.json, DATASET.md) carries the same figures.
import { useEffect, useState } from 'react'
import { auditApi, type AuditBoard, type AuditEstimate, type AuditKeyEstimates, type AuditRoundRow } from '../api'
import { DataTable, errorText, type Column } from './DataTable'

const pct = (v: number | null | undefined) => (v === null || v === undefined ? '–' : `${(100 * v).toFixed(1)}%`)
const num = (v: number | null | undefined) => (v === null || v === undefined ? '–' : v.toFixed(3))

function interval(e: AuditEstimate | null | undefined, show: (v: number | null | undefined) => string): string {
  if (!e || e.estimate === null) return '–'
  const rater = e.rater_low === null ? '' : ` [${show(e.rater_low)} to ${show(e.rater_high)}]`
  return `${show(e.estimate)}${rater} (${show(e.low)} to ${show(e.high)})`
}

const STOPPED: Record<string, string> = {
  top_case: 'top case confirmed unchanged', audit: 'audit: upper end below the target', '': 'not stopped',
}

const roundColumns: Column<AuditRoundRow>[] = [
  { key: 'round', label: 'round', value: (r) => r.round, numeric: true },
  { key: 'status', label: 'status', value: (r) => r.status },
  { key: 'stopped_by', label: 'stopped by', value: (r) => STOPPED[r.stopped_by] ?? r.stopped_by },
  { key: 'frame', label: 'unrevised cases', value: (r) => r.frame, numeric: true },
  { key: 'drawn', label: 'audit drawn', value: (r) => r.drawn, numeric: true },
  { key: 'read', label: 'audit read', value: (r) => r.read, numeric: true },
  { key: 'auto_accepted', label: 'auto-accepted', value: (r) => r.auto_accepted, numeric: true },
  { key: 'needs', label: 'needing correction (95%)', value: (r) => interval(r.needs_correction, pct) },
  { key: 'dice', label: 'mean Dice (95%)', value: (r) => interval(r.dice, num) },
]

type EstimateRow = { key: string; e: AuditKeyEstimates }
const estimateColumns: Column<EstimateRow>[] = [
  { key: 'key', label: 'organ', value: (r) => r.key },
  { key: 'needs', label: 'needing correction (95%)', value: (r) => interval(r.e.needs_correction, pct) },
  {
    key: 'cases', label: 'cases needing correction', value: (r) => {
      const c = r.e.cases_needing_correction
      return c.estimate === null ? '–' : `${c.estimate} (${c.low} to ${c.high}) of ${c.frame}`
    },
  },
  { key: 'dice', label: 'mean Dice (95%)', value: (r) => interval(r.e.dice, num) },
  { key: 'nsd', label: 'mean NSD (95%)', value: (r) => interval(r.e.nsd, num) },
  { key: 'n', label: 'read', value: (r) => r.e.needs_correction.n, numeric: true },
]

type MemberRow = { organ: string; member: string; dice: number | null; nsd: number | null; cases: number; used: number }
const memberColumns: Column<MemberRow>[] = [
  { key: 'organ', label: 'organ', value: (r) => r.organ },
  { key: 'member', label: 'member', value: (r) => r.member },
  { key: 'dice', label: 'Dice vs human', value: (r) => r.dice, numeric: true },
  { key: 'nsd', label: 'NSD vs human', value: (r) => r.nsd, numeric: true },
  { key: 'cases', label: 'cases', value: (r) => r.cases, numeric: true },
  { key: 'used', label: 'best at hotspots', value: (r) => r.used, numeric: true,
    title: 'hotspots where the human label agrees best with this member (the page does not log which one was used)' },
]

function rowsOf(estimates: Record<string, AuditKeyEstimates> | null | undefined): EstimateRow[] {
  return estimates ? Object.entries(estimates).map(([key, e]) => ({ key, e })) : []
}

export function Audit({ round }: { round: number | null }) {
  const [board, setBoard] = useState<AuditBoard | null>(null)
  const [error, setError] = useState('')
  useEffect(() => {
    auditApi.board(round ?? undefined).then(setBoard).catch((e) => setError(errorText(e)))
  }, [round])
  if (board === null) return <p className="muted">{error || 'Loading the audit…'}</p>
  const a = board.audit
  const stop = board.stopping
  const members: MemberRow[] = board.members
    ? Object.entries(board.members.organs).flatMap(([organ, per]) =>
      Object.entries(per).map(([member, f]) => ({ organ, member, ...f })))
    : []
  const overall = a?.unrevised.overall
  return (
    <div data-audit-state="ready" data-audit-drawn={a?.drawn ?? 0} data-audit-read={a?.read ?? 0}
      data-needs-correction={overall?.needs_correction.estimate ?? ''} data-stopped-by={stop?.stopped_by ?? ''}>
      {error && <p className="error" role="alert">{error}</p>}
      <DataTable name="audit-rounds" title="Audit per round" columns={roundColumns} rows={board.rounds}
        rowKey={(r) => String(r.round)} empty="No round yet." />
      {stop && (
        <p className="muted" data-audit-stop={String(stop.audit_holds)}>
          Round {board.round}: {stop.stopped_by ? `stopped by ${STOPPED[stop.stopped_by] ?? stop.stopped_by}` : 'not stopped'}
          {stop.audit_target !== null && <> · audit rule: upper end {pct(stop.audit_upper)} against the target
            {' '}{pct(stop.audit_target)} ({stop.audit_holds ? 'holds' : 'does not hold yet'})</>}
          {board.auto_accept?.rule ? <> · auto-accepted: {board.auto_accept.cases} cases</> : null}
        </p>
      )}
      {a ? (
        <>
          <DataTable name="audit-unrevised" title={`Round ${a.round}: the unrevised part (${a.frame} cases)`}
            columns={estimateColumns} rows={rowsOf(a.unrevised)} rowKey={(r) => r.key}
            note={<>Audit sample of {a.drawn} cases (seed {a.seed}, {a.strata.length} attention strata), {a.read} read,
              {' '}{a.double_read} twice. A case needs a correction when an organ changes by more than
              {' '}{a.thresholds.ml ?? '–'} mL or its Dice falls below {a.thresholds.dice ?? '–'}. 95% intervals:
              Wilson for shares, stratified bootstrap for means; with double reads, [the range the rater's own noise
              leaves open] and an interval spanning both ends.</>} />
          <DataTable name="audit-auto-accepted"
            title={`Round ${a.round}: the auto-accepted part (${a.auto_accepted.cases} cases, ${a.auto_accepted.read} read)`}
            columns={estimateColumns} rows={rowsOf(a.auto_accepted.estimates)} rowKey={(r) => r.key}
            empty="No auto-accepted case in the audit's frame." />
          <DataTable name="audit-strata" title="Sample sizes per attention stratum" columns={[
            { key: 'stratum', label: 'stratum (0: least attention)', value: (s) => s.stratum, numeric: true },
            { key: 'frame', label: 'cases', value: (s) => s.frame, numeric: true },
            { key: 'drawn', label: 'drawn', value: (s) => s.drawn, numeric: true },
            { key: 'read', label: 'read', value: (s) => s.read, numeric: true },
            { key: 'auto_accepted', label: 'auto-accepted', value: (s) => s.auto_accepted, numeric: true },
          ]} rows={a.strata} rowKey={(s) => String(s.stratum)} />
        </>
      ) : <p className="muted" data-audit-none>No audit sample in this round: POST /api/audit/ or
        {' '}<code>manage.py audit_round --audit-size N</code> draws one.</p>}
      <DataTable name="audit-members" title="Which member is right where (accepted and audited cases)"
        columns={memberColumns} rows={members} rowKey={(r) => `${r.organ}:${r.member}`}
        empty="No accepted or audited revision yet (the figures come with the round's file metrics: Refresh)."
        note={<>Weighted combination: {board.weighted_combination}.</>} />
    </div>
  )
}
