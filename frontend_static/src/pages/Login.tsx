import { useState, type FormEvent } from 'react'
import { api, type Me } from '../api'

export function Login({ onLogin }: { onLogin: (me: Me) => void }) {
  const [username, setUsername] = useState('')
  const [password, setPassword] = useState('')
  const [error, setError] = useState('')
  const [busy, setBusy] = useState(false)

  const submit = async (event: FormEvent) => {
    event.preventDefault()
    setBusy(true)
    setError('')
    try {
      onLogin(await api.login(username, password))
    } catch (e) {
      setError((e as Error).message)
    } finally {
      setBusy(false)
    }
  }

  return (
    <div className="page login" data-page="login">
      <form onSubmit={(e) => void submit(e)} className="card">
        <h1>Atlas</h1>
        <p className="muted">Abdominal CT annotation</p>
        <label>
          Username
          <input name="username" autoComplete="username" value={username} autoFocus
            onChange={(e) => setUsername(e.target.value)} />
        </label>
        <label>
          Password
          <input name="password" type="password" autoComplete="current-password" value={password}
            onChange={(e) => setPassword(e.target.value)} />
        </label>
        {error && <p className="error" role="alert">{error}</p>}
        <button type="submit" disabled={busy || !username || !password}>Sign in</button>
      </form>
    </div>
  )
}
