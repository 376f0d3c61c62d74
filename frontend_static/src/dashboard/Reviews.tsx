// Review: the leads' verdicts and the time a review takes, verdicts per annotator, what waits for review, and the
// double reads (the share of the round's cases read twice, set here, and the inter-annotator Dice / NSD per organ).
import { useCallback, useEffect, useState } from 'react'
import { request } from '../api'
import type { components } from '../api-schema'
import { DataTable, errorText, type Column } from './DataTable'

type Schemas = components['schemas']
type ReviewBoard = Schemas['ReviewBoard']
type LeadVerdicts = Schemas['LeadVerdicts']
type AnnotatorVerdicts = Schemas['AnnotatorVerdicts']
type OrganAgreement = Schemas['OrganAgreement']

const leadColumns: Column<LeadVerdicts>[] = [
  { key: 'lead', label: 'lead', value: (r) => r.lead },
  { key: 'reviews', label: 'verdicts', value: (r) => r.reviews, numeric: true },
  { key: 'accepted', label: 'accepted', value: (r) => r.accepted, numeric: true },
  { key: 'rejected', label: 'rejected', value: (r) => r.rejected, numeric: true },
  { key: 'edited', label: 'edited and accepted', value: (r) => r.edited, numeric: true },
  { key: 'adjudicated', label: 'double reads adjudicated', value: (r) => r.adjudicated, numeric: true },
  { key: 'median_seconds', label: 'median s / review', value: (r) => r.median_seconds, numeric: true },
  { key: 'mean_seconds', label: 'mean s / review', value: (r) => r.mean_seconds, numeric: true },
]

const annotatorColumns: Column<AnnotatorVerdicts>[] = [
  { key: 'annotator', label: 'annotator', value: (r) => r.annotator },
  { key: 'reviewed', label: 'revisions reviewed', value: (r) => r.reviewed, numeric: true },
  { key: 'accepted', label: 'accepted', value: (r) => r.accepted, numeric: true },
  { key: 'rejected', label: 'rejected', value: (r) => r.rejected, numeric: true },
  { key: 'edited', label: 'edited by a lead', value: (r) => r.edited, numeric: true },
  { key: 'adjudicated', label: 'double reads', value: (r) => r.adjudicated, numeric: true },
  { key: 'accepted_share', label: 'accepted share', value: (r) => r.accepted_share, numeric: true },
]

const agreementColumns: Column<OrganAgreement>[] = [
  { key: 'organ', label: 'organ', value: (r) => r.organ },
  { key: 'pairs', label: 'pairs', value: (r) => r.pairs, numeric: true },
  { key: 'dice', label: 'inter-annotator Dice', value: (r) => r.dice, numeric: true },
  { key: 'nsd', label: 'inter-annotator NSD', value: (r) => r.nsd, numeric: true },
]

export function Reviews({ round, go }: { round: number | null; go: (to: string) => void }) {
  const [board, setBoard] = useState<ReviewBoard | null>(null)
  const [share, setShare] = useState('')
  const [error, setError] = useState('')
  const [message, setMessage] = useState('')

  const load = useCallback(() => {
    request<ReviewBoard>('GET', '/api/dashboard/reviews/').then((b) => {
      setBoard(b)
      setShare(b.double_reads.share === null ? '' : String(b.double_reads.share * 100))
    }).catch((e) => setError(errorText(e)))
  }, [])
  useEffect(load, [load])

  const setDoubleReads = async () => {
    setError('')
    try {
      const pairs = await request<unknown[]>('POST', '/api/review/double-reads/',
        { round, share: Number(share) / 100 })
      setMessage(`${pairs.length} cases of round ${round} are read twice.`)
      load()
    } catch (e) {
      setError(errorText(e))
    }
  }

  if (!board) return <p className="muted">{error || 'Loading…'}</p>
  const d = board.double_reads
  return (
    <div data-reviews-waiting={board.waiting}>
      {error && <p className="error" role="alert">{error}</p>}
      <p>
        <b>{board.waiting}</b> revisions wait for review.{' '}
        <button type="button" onClick={() => go('/review')} data-action="open-review">Open the review queue</button>
      </p>
      <DataTable name="review-leads" title="Verdicts and review time per lead" columns={leadColumns}
        rows={board.leads} rowKey={(r) => r.lead} empty="No verdict yet." />
      <DataTable name="review-annotators" title="Verdicts per annotator" columns={annotatorColumns}
        rows={board.annotators} rowKey={(r) => r.annotator} empty="No revision reviewed yet." />
      <DataTable name="double-read-agreement" title="Double reads: inter-annotator agreement" columns={agreementColumns}
        rows={d.organs} rowKey={(r) => r.organ} empty="No double read has both reads in yet."
        note={`${d.pairs} double reads, ${d.measured} with both reads in, ${d.adjudicated} adjudicated.`}
        extra={round !== null && (
          <span className="double-read-share">
            <input type="number" min={0} max={100} step={1} value={share} onChange={(e) => setShare(e.target.value)}
              data-input="double-read-share" title="% of this round's cases read twice" />%
            <button type="button" onClick={() => void setDoubleReads()} data-action="set-double-reads">
              Set for round {round}
            </button>
          </span>
        )} />
      {message && <p className="flash" role="status">{message}</p>}
    </div>
  )
}
