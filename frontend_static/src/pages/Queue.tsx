import { useEffect, useState } from 'react'
import { api, type Me, type QueueTask } from '../api'
import { ReadinessNote } from '../dashboard/Readiness'

export function Queue({ me, go, logout }: { me: Me; go: (to: string) => void; logout: () => void }) {
  const [tasks, setTasks] = useState<QueueTask[] | null>(null)
  const [message, setMessage] = useState(sessionStorage.getItem('atlas.flash') ?? '')
  const [error, setError] = useState('')

  useEffect(() => {
    sessionStorage.removeItem('atlas.flash')
    api.queue().then(setTasks).catch((e: Error) => setError(e.message))
  }, [])

  const next = () => {
    setMessage('')
    go('/work')
  }

  return (
    <div className="page queue" data-page="queue">
      <header className="bar">
        <h1>Atlas · my queue</h1>
        <span className="spacer" />
        {(me.role === 'lead' || me.role === 'admin') && (
          <>
            <button onClick={() => go('/review')} data-action="review">Review</button>
            <button onClick={() => go('/dashboard')} data-action="dashboard">Dashboard</button>
          </>
        )}
        <span className="muted">{me.username} ({me.role})</span>
        <button onClick={logout}>Sign out</button>
      </header>
      {message && <p className="flash" role="status" data-flash>{message}</p>}
      {error && <p className="error" role="alert">{error}</p>}
      <ReadinessNote />
      <p>
        <button className="primary" onClick={next} data-action="next-case">Next case</button>
        <span className="muted"> takes the case you hold, else your highest-priority assigned one, else the
          highest-priority open case.</span>
      </p>
      {tasks && tasks.length === 0 && <p className="muted" data-empty>No task is leased or assigned to you.</p>}
      {tasks && tasks.length > 0 && (
        <table className="tasks">
          <thead>
            <tr><th>case</th><th>round</th><th>priority (mL of attention)</th><th>status</th><th>lease until</th>
              <th>review comment</th></tr>
          </thead>
          <tbody>
            {tasks.map((t) => (
              <tr key={t.id} data-task={t.id} data-status={t.status}>
                <td>{t.case}</td>
                <td>{t.round}</td>
                <td>{t.priority.toFixed(1)}</td>
                <td>{t.status}</td>
                <td>{t.lease_expires ? new Date(t.lease_expires).toLocaleTimeString() : ''}</td>
                <td>{t.review_comment}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  )
}
