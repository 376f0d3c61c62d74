// Pages by URL hash: #/ (my queue), #/work (the workspace, on the task `next` gives), #/dashboard and #/review[/<id>]
// (leads and admins), login when signed out. The dashboard (and its charting library) and review load when opened.
import { lazy, Suspense, useCallback, useEffect, useState } from 'react'
import { api, type Me } from './api'
import { Login } from './pages/Login'
import { Queue } from './pages/Queue'
import { Workspace } from './pages/Workspace'

const Dashboard = lazy(() => import('./pages/Dashboard'))
const Review = lazy(() => import('./pages/Review'))

function route(): string {
  return window.location.hash.replace(/^#/, '') || '/'
}

export function App() {
  const [me, setMe] = useState<Me | null>(null)
  const [path, setPath] = useState(route())
  const [error, setError] = useState('')

  useEffect(() => {
    api.me().then(setMe).catch((e: Error) => setError(e.message))
    const onHash = () => setPath(route())
    window.addEventListener('hashchange', onHash)
    return () => window.removeEventListener('hashchange', onHash)
  }, [])

  const go = useCallback((to: string) => {
    window.location.hash = to
    setPath(to)
  }, [])

  const logout = useCallback(() => {
    void (async () => {
      await api.logout().catch(() => null)
      setMe(await api.me())
      go('/')
    })().catch((e: Error) => setError(e.message))
  }, [go])

  if (error) return <div className="page error" role="alert">{error}</div>
  if (!me) return <div className="page" data-page="loading">Loading…</div>
  if (!me.authenticated) return <Login onLogin={(m) => setMe(m)} />
  if (!me.role) {
    return (
      <div className="page" data-page="no-role">
        <p>{me.username} has no role in Atlas (annotator, lead or admin). Ask an admin.</p>
        <button onClick={logout}>Sign out</button>
      </div>
    )
  }
  if (path.startsWith('/work')) return <Workspace me={me} go={go} />
  if (path.startsWith('/dashboard') || path.startsWith('/review')) {
    if (me.role !== 'lead' && me.role !== 'admin') {
      return (
        <div className="page forbidden" data-page="forbidden" role="alert">
          <p>The {path.startsWith('/review') ? 'review' : 'dashboard'} is for leads and admins; {me.username} is
            an {me.role}.</p>
          <button onClick={() => go('/')}>My queue</button>
        </div>
      )
    }
    if (path.startsWith('/review')) {
      return (
        <Suspense fallback={<div className="page" data-page="loading">Loading the review…</div>}>
          <Review me={me} path={path} go={go} />
        </Suspense>
      )
    }
    return (
      <Suspense fallback={<div className="page" data-page="loading">Loading the dashboard…</div>}>
        <Dashboard me={me} go={go} logout={logout} />
      </Suspense>
    )
  }
  return <Queue me={me} go={go} logout={logout} />
}
