// The lead dashboard (#/dashboard): queues, progress and time, the attention curve, quality per round, review, the
// ensemble's members, jobs.
// Leads and admins only (the API refuses anyone else too). Every table has a CSV button; charts are Recharts, and
// each chart and table mirrors its data in data-* attributes for the browser tests.
import { useCallback, useEffect, useState } from 'react'
import { dashboardApi, type AttentionCurve as Curve, type Me, type Overview, type RoundQuality } from '../api'
import { Audit } from '../dashboard/Audit'
import { AttentionCurve } from '../dashboard/AttentionCurve'
import { errorText } from '../dashboard/DataTable'
import { Jobs } from '../dashboard/Jobs'
import { Members } from '../dashboard/Members'
import { Progress } from '../dashboard/Progress'
import { Quality } from '../dashboard/Quality'
import { Queues } from '../dashboard/Queues'
import { Reviews } from '../dashboard/Reviews'
import '../dashboard/dashboard.css'

const REFRESH_MS = 30_000

const SECTIONS = [
  ['queues', 'Queues'], ['progress', 'Progress'], ['attention', 'Attention'], ['quality', 'Quality'],
  ['reviews', 'Review'], ['audit', 'Audit'], ['members', 'Members'], ['jobs', 'Jobs'],
] as const

export default function Dashboard({ me, go, logout }: { me: Me; go: (to: string) => void; logout: () => void }) {
  const [overview, setOverview] = useState<Overview | null>(null)
  const [curves, setCurves] = useState<Curve[] | null>(null)
  const [quality, setQuality] = useState<RoundQuality[] | null>(null)
  const [error, setError] = useState('')

  const loadOverview = useCallback(() => {
    dashboardApi.overview().then(setOverview).catch((e) => setError(errorText(e)))
  }, [])
  const loadRounds = useCallback(() => {
    dashboardApi.attention().then((r) => setCurves(r.rounds)).catch((e) => setError(errorText(e)))
    dashboardApi.quality().then((r) => setQuality(r.rounds)).catch((e) => setError(errorText(e)))
  }, [])
  const loadAll = useCallback(() => {
    loadOverview()
    loadRounds()
  }, [loadOverview, loadRounds])

  useEffect(() => {
    loadAll()
    const timer = window.setInterval(loadOverview, REFRESH_MS)
    return () => window.clearInterval(timer)
  }, [loadAll, loadOverview])

  const ready = overview !== null && curves !== null && quality !== null
  const round = overview?.round
  return (
    <div className="page dashboard" data-page="dashboard" data-state={ready ? 'ready' : 'loading'}>
      <header className="bar">
        <h1>Atlas · dashboard</h1>
        {round && (
          <span className="pill" data-round={round.number} data-round-status={round.status}
            data-converged={String(round.converged)}>
            round {round.number}: {round.status}
            {round.converged === true ? ' · converged' : round.converged === false ? ' · not converged' : ''}
          </span>
        )}
        <nav className="sections">
          {SECTIONS.map(([id, label]) => <a key={id} href={`#/dashboard`} onClick={(e) => {
            e.preventDefault()
            document.getElementById(`dash-${id}`)?.scrollIntoView({ behavior: 'smooth' })
          }}>{label}</a>)}
        </nav>
        <span className="spacer" />
        <button type="button" onClick={loadAll} data-action="reload">Reload</button>
        <button type="button" onClick={() => go('/review')} data-action="review">Review</button>
        <button type="button" onClick={() => go('/')} data-action="my-queue">My queue</button>
        <span className="muted">{me.username} ({me.role})</span>
        <button type="button" onClick={logout}>Sign out</button>
      </header>
      {error && <p className="error" role="alert">{error}</p>}
      <section id="dash-queues" className="dash-section" data-section="queues"
        data-state={overview ? 'ready' : 'loading'}>
        <h2>Queues</h2>
        {overview ? <Queues overview={overview} reload={loadOverview} /> : <p className="muted">Loading…</p>}
      </section>
      <section id="dash-progress" className="dash-section" data-section="progress"
        data-state={overview ? 'ready' : 'loading'}>
        <h2>Progress and time</h2>
        {overview ? <Progress overview={overview} /> : <p className="muted">Loading…</p>}
      </section>
      <section id="dash-attention" className="dash-section" data-section="attention"
        data-state={curves && quality ? 'ready' : 'loading'}>
        <h2>The attention curve</h2>
        {curves && quality ? <AttentionCurve curves={curves} quality={quality} /> : <p className="muted">Loading…</p>}
      </section>
      <section id="dash-quality" className="dash-section" data-section="quality"
        data-state={quality ? 'ready' : 'loading'}>
        <h2>Quality per round</h2>
        {quality ? <Quality rounds={quality} reload={loadRounds} /> : <p className="muted">Loading…</p>}
      </section>
      <section id="dash-reviews" className="dash-section" data-section="reviews">
        <h2>Review and double reads</h2>
        <Reviews round={round && round.status === 'annotating' ? round.number : null} go={go} />
      </section>
      <section id="dash-audit" className="dash-section" data-section="audit">
        <h2>How good is the unrevised part? (audit)</h2>
        <Audit round={round ? round.number : null} />
      </section>
      <section id="dash-members" className="dash-section" data-section="members">
        <h2>Ensemble members</h2>
        <Members />
      </section>
      <section id="dash-jobs" className="dash-section" data-section="jobs">
        <h2>Jobs</h2>
        <Jobs />
      </section>
    </div>
  )
}
