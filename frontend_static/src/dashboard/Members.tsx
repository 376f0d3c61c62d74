// Ensemble members: which models made the shown round (Atlas's networks trained or fine-tuned in it, shipped or
// carried checkpoints, registered models, imported predictions) and whether each was fine-tuned; and the registered
// models and imported predictions, which Atlas never fine-tunes, and the registered starts (GET /api/dashboard/members/,
// /api/dashboard/jobs/); every member with the source, licence and citation of its weights; the round's readiness;
// and the workspace's interactive engines, the click model first: its version and its validation figure, Dice after
// 1, 3 and 5 simulated clicks (issue 25), with the click model the shown round trained or kept.
import { useEffect, useState } from 'react'
import { type ClickEngine, dashboardApi, type MemberRow, type RoundMember, type RoundSummary } from '../api'
import { DataTable, errorText, type Column } from './DataTable'
import { ReadinessNote } from './Readiness'

const roundColumns: Column<RoundMember>[] = [
  { key: 'name', label: 'member', value: (m) => m.name },
  { key: 'kind', label: 'kind', value: (m) => m.kind },
  { key: 'source', label: 'source', value: (m) => m.source },
  { key: 'fine_tuned', label: 'fine-tuned in this round', value: (m) => m.fine_tuned },
  { key: 'organs', label: 'organs', value: (m) => m.organs.join(' ') },
  { key: 'weights_source', label: 'weights from', value: (m) => m.provenance.source },
  { key: 'licence', label: 'licence', value: (m) => m.provenance.licence },
  { key: 'citation', label: 'citation', value: (m) => m.provenance.citation },
]

const memberColumns: Column<MemberRow>[] = [
  { key: 'name', label: 'member', value: (m) => m.name },
  { key: 'kind', label: 'kind', value: (m) => m.kind },
  { key: 'source', label: 'source', value: (m) => m.source },
  { key: 'registered', label: 'joins new rounds', value: (m) => m.registered },
  { key: 'fine_tuned', label: 'fine-tuned', value: (m) => m.fine_tuned, title: 'never: Atlas only runs it' },
  { key: 'label_set', label: 'label set', value: (m) => m.label_set || null },
  { key: 'location', label: 'location', value: (m) => m.location || null },
  { key: 'rounds', label: 'rounds', value: (m) => m.rounds.join(' ') || null },
  { key: 'organs', label: 'organs', value: (m) => m.organs.join(' ') },
  { key: 'weights_source', label: 'weights from', value: (m) => m.provenance.source },
  { key: 'licence', label: 'licence', value: (m) => m.provenance.licence },
  { key: 'citation', label: 'citation', value: (m) => m.provenance.citation },
]

const clickColumns: Column<ClickEngine>[] = [
  { key: 'name', label: 'engine', value: (e) => e.name },
  { key: 'kind', label: 'kind', value: (e) => e.kind },
  { key: 'version', label: 'version', value: (e) => e.version },
  { key: 'parent', label: 'fine-tuned from', value: (e) => e.parent },
  { key: 'fine_tuned', label: 'fine-tuned', value: (e) => e.fine_tuned },
  { key: 'dice_0', label: 'Dice, no click', value: (e) => e.validation.dice_0, numeric: true,
    title: 'the starting labels of the validation samples' },
  { key: 'dice_1', label: 'after 1 click', value: (e) => e.validation.dice_1, numeric: true },
  { key: 'dice_3', label: 'after 3', value: (e) => e.validation.dice_3, numeric: true },
  { key: 'dice_5', label: 'after 5', value: (e) => e.validation.dice_5, numeric: true },
  { key: 'cases', label: 'samples', value: (e) => e.validation.cases, numeric: true,
    title: '(case, organ) pairs clicked on' },
  { key: 'validated_on', label: 'validated on', value: (e) => e.validation.validated_on || null },
  { key: 'licence', label: 'licence', value: (e) => e.licence },
]

const dice = (v: number | null) => (v === null ? '–' : v.toFixed(3))

/** The click model the round trained (or kept), in one line. */
function roundClickModel(round: RoundSummary) {
  const c = round.click_model
  if (!c) return <span data-round-click-model="">Round {round.number} made no click model.</span>
  const v = c.validation
  return (
    <span data-round-click-model={c.version}>Round {round.number}'s click model: {c.version}
      {c.fine_tuned ? ` (fine-tuned from ${c.parent ?? 'the shipped model'})` : ' (kept, not fine-tuned)'}; Dice after
      1 / 3 / 5 clicks {dice(v.dice_1)} / {dice(v.dice_3)} / {dice(v.dice_5)} (from {dice(v.dice_0)}, {v.cases} samples,
      {' '}{v.validated_on}).</span>
  )
}

export function Members() {
  const [round, setRound] = useState<RoundSummary | null>(null)
  const [members, setMembers] = useState<MemberRow[] | null>(null)
  const [engines, setEngines] = useState<ClickEngine[]>([])
  const [error, setError] = useState('')
  useEffect(() => {
    dashboardApi.jobs().then((b) => setRound(b.round ?? null)).catch((e) => setError(errorText(e)))
    dashboardApi.members().then((r) => {
      setMembers(r.members)
      setEngines(r.interactive)
    }).catch((e) => setError(errorText(e)))
  }, [])
  if (members === null) return <p className="muted">{error || 'Loading members…'}</p>
  const tuned = round ? round.members.filter((m) => m.fine_tuned).map((m) => m.name) : []
  return (
    <div data-members-state="ready">
      {error && <p className="error" role="alert">{error}</p>}
      <ReadinessNote detail />
      {round && (
        <DataTable name="round-members" title={`Round ${round.number}'s members`} columns={roundColumns}
          rows={round.members} rowKey={(m) => m.name} empty="No member yet."
          note={<span data-fine-tuned={tuned.join(' ')}>Fine-tuned in this round: {tuned.join(', ') || 'none'}.</span>} />
      )}
      <DataTable name="registered-members"
        title="Registered models, imported predictions (never fine-tuned) and starts (published weights round 0 fine-tunes)"
        columns={memberColumns} rows={members} rowKey={(m) => m.name}
        empty="None: register_member adds a model Atlas runs; import_predictions adds another tool's labels." />
      <DataTable name="click-models" title="Click to correct: the workspace's interactive engines (the default first)"
        columns={clickColumns} rows={engines} rowKey={(e) => e.kind} empty="No interactive engine."
        note={round ? roundClickModel(round) : 'Dice after 1, 3 and 5 simulated clicks on held-out cases.'} />
    </div>
  )
}
