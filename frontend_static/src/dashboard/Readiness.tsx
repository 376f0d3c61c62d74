// Whether the shown round's members are fit to rank each organ (GET /api/readiness/, services.readiness): organs not
// ready are named with why, the ranking rule that follows, and the remedy. The queue page and the members panel show it.
import { useEffect, useState } from 'react'
import { api, type Readiness } from '../api'

export function ReadinessNote({ detail = false }: { detail?: boolean }) {
  const [readiness, setReadiness] = useState<Readiness | null>(null)
  useEffect(() => {
    api.readiness().then(setReadiness).catch(() => setReadiness(null))
  }, [])
  if (!readiness || !readiness.assessed) return null
  const notReady = readiness.organs.filter((o) => o.status === 'not ready')
  return (
    <div className={notReady.length ? 'readiness warn' : 'readiness'} data-readiness={notReady.map((o) => o.organ).join(' ')}
      role={notReady.length ? 'alert' : undefined}>
      {notReady.length > 0 ? (
        <p>
          <strong>Round {readiness.round}: the models are not ready for {notReady.map((o) => o.organ).join(', ')}.</strong>{' '}
          {readiness.rule}. {readiness.remedy && <span className="muted">Remedy: {readiness.remedy}.</span>}
        </p>
      ) : (
        <p className="muted">Round {readiness.round}: {readiness.rule}.</p>
      )}
      {detail && (
        <table className="tasks" data-readiness-table>
          <thead><tr><th>organ</th><th>status</th><th>held-out Dice</th><th>held-out cases</th>
            <th>attention / scan</th><th>why</th></tr></thead>
          <tbody>
            {readiness.organs.map((o) => (
              <tr key={o.organ} data-organ={o.organ} data-status={o.status}>
                <td>{o.organ}</td><td>{o.status}</td><td>{o.dice === null ? '–' : o.dice.toFixed(2)}</td>
                <td>{o.cases}</td>
                <td>{o.attention_share === null ? '–' : `${(100 * o.attention_share).toFixed(1)}%`}</td>
                <td>{o.reasons.join('; ')}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  )
}
