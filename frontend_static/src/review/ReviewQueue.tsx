// The review queue: revisions waiting for a lead's verdict in a chosen order, filtered by annotator and organ, with
// their quality flags; "Next to review" leases the first free one (two leads never get the same) and opens it.
import { useCallback, useEffect, useState } from 'react'
import type { Me } from '../api'
import { type ReviewFilter, type ReviewOrder, type WaitingRevision, reviewApi } from './reviewApi'

const ORDERS: [ReviewOrder, string][] = [['voxels', 'revised voxels'], ['flags', 'quality flags'],
  ['attention', "the case's attention"], ['age', 'age (oldest first)']]

export function ReviewQueue({ me, go }: { me: Me; go: (to: string) => void }) {
  const [filter, setFilter] = useState<ReviewFilter>({ order: 'voxels', annotator: '', organ: '' })
  const [rows, setRows] = useState<WaitingRevision[] | null>(null)
  const [error, setError] = useState('')
  const [message, setMessage] = useState(sessionStorage.getItem('atlas.reviewFlash') ?? '')

  const load = useCallback(() => {
    reviewApi.queue(filter).then(setRows).catch((e: Error) => setError(e.message))
  }, [filter])
  useEffect(() => {
    sessionStorage.removeItem('atlas.reviewFlash')
    load()
  }, [load])

  const next = async () => {
    setError('')
    try {
      const revision = await reviewApi.next(filter)
      if (revision) go(`/review/${revision.id}`)
      else setMessage('Nothing is waiting for review (with these filters).')
    } catch (e) {
      setError((e as Error).message)
    }
  }

  const authors = [...new Set((rows ?? []).map((r) => r.author))].sort()
  return (
    <div className="page review-queue" data-page="review-queue" data-state={rows ? 'ready' : 'loading'}
      data-count={rows?.length ?? ''}>
      <header className="bar">
        <h1>Atlas · review</h1>
        <span className="spacer" />
        <button onClick={() => go('/dashboard')} data-action="dashboard">Dashboard</button>
        <button onClick={() => go('/')} data-action="my-queue">My queue</button>
        <span className="muted">{me.username} ({me.role})</span>
      </header>
      {message && <p className="flash" role="status" data-flash>{message}</p>}
      {error && <p className="error" role="alert">{error}</p>}
      <div className="filters">
        <label>Order
          <select value={filter.order} data-filter="order"
            onChange={(e) => setFilter({ ...filter, order: e.target.value as ReviewOrder })}>
            {ORDERS.map(([value, label]) => <option key={value} value={value}>{label}</option>)}
          </select>
        </label>
        <label>Annotator
          <input value={filter.annotator} data-filter="annotator" placeholder={authors.join(', ')}
            onChange={(e) => setFilter({ ...filter, annotator: e.target.value.trim() })} />
        </label>
        <label>Organ
          <input value={filter.organ} data-filter="organ" placeholder="e.g. liver"
            onChange={(e) => setFilter({ ...filter, organ: e.target.value.trim() })} />
        </label>
        <button className="primary" onClick={() => void next()} data-action="next-review">Next to review</button>
      </div>
      {rows && rows.length === 0 && <p className="muted" data-empty>No revision is waiting for review.</p>}
      {rows && rows.length > 0 && (
        <table data-table="review-queue">
          <thead>
            <tr><th>case</th><th>revision</th><th>annotator</th><th>kind</th><th>revised voxels</th><th>flags</th>
              <th>attention (mL)</th><th>waiting since</th><th>seconds spent</th><th>reviewing</th><th /></tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r.id} data-row={r.id} data-case={r.case} data-author={r.author} data-flags={r.flags}>
                <td>{r.case}</td>
                <td>{r.number}</td>
                <td>{r.author}</td>
                <td>{r.kind}</td>
                <td>{r.revised_voxels}</td>
                <td className={r.flags ? 'error' : ''}>{r.flags}</td>
                <td>{r.attention_ml.toFixed(1)}</td>
                <td>{new Date(r.created).toLocaleString()}</td>
                <td>{Math.round(r.seconds_spent)}</td>
                <td>{r.reviewer ?? ''}</td>
                <td><button onClick={() => go(`/review/${r.id}`)} data-action="open">Open</button></td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  )
}
