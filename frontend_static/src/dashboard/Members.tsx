// Ensemble members: which models made the shown round (Atlas's networks trained or fine-tuned in it, shipped or
// carried checkpoints, registered models, imported predictions) and whether each was fine-tuned; and the registered
// models and imported predictions, which Atlas never fine-tunes, and the registered starts (GET /api/dashboard/members/,
// /api/dashboard/jobs/); every member with the source, licence and citation of its weights; the round's readiness.
import { useEffect, useState } from 'react'
import { dashboardApi, type MemberRow, type RoundMember, type RoundSummary } from '../api'
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

export function Members() {
  const [round, setRound] = useState<RoundSummary | null>(null)
  const [members, setMembers] = useState<MemberRow[] | null>(null)
  const [error, setError] = useState('')
  useEffect(() => {
    dashboardApi.jobs().then((b) => setRound(b.round ?? null)).catch((e) => setError(errorText(e)))
    dashboardApi.members().then((r) => setMembers(r.members)).catch((e) => setError(errorText(e)))
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
    </div>
  )
}
