// The workspace's dialogs: Submit (error tags per changed organ), Skip (a reason) and the keyboard shortcuts.
import type { ErrorTag } from '../api'
import { MOUSE_HELP, SHORTCUTS } from '../shortcuts'
import type { OrganRow } from './types'

export function SubmitDialog({ organs, tags, chosen, setChosen, busy, upload, close }: { organs: OrganRow[]
  tags: ErrorTag[]; chosen: Record<string, string[]>
  setChosen: (f: (c: Record<string, string[]>) => Record<string, string[]>) => void; busy: boolean
  upload: () => void; close: () => void }) {
  return (
    <div className="modal" role="dialog" aria-label="Submit revision" data-dialog="submit">
      <div className="card">
        <h2>Submit revision</h2>
        {Object.keys(chosen).length === 0 && <p className="muted">No organ changed (an unchanged upload is
          stored as a revision all the same; use Confirm for "no change needed").</p>}
        {Object.keys(chosen).map((organ) => (
          <fieldset key={organ} data-tags-for={organ}>
            <legend>{organs.find((o) => o.name === organ)?.display_name ?? organ}: what was wrong?</legend>
            {tags.map((t) => (
              <label key={t.code} className="check" title={t.description}>
                <input type="checkbox" data-tag={t.code} checked={chosen[organ].includes(t.code)}
                  onChange={(e) => setChosen((c) => ({ ...c, [organ]: e.target.checked
                    ? [...c[organ], t.code] : c[organ].filter((x) => x !== t.code) }))} />
                {t.name}
              </label>
            ))}
          </fieldset>
        ))}
        <div className="buttons">
          <button className="primary" onClick={upload} disabled={busy} data-action="upload">
            {busy ? 'Uploading…' : 'Upload'}</button>
          <button onClick={close}>Cancel</button>
        </div>
      </div>
    </div>
  )
}

export function SkipDialog({ reason, setReason, busy, skip, close }: { reason: string
  setReason: (r: string) => void; busy: boolean; skip: () => void; close: () => void }) {
  return (
    <div className="modal" role="dialog" aria-label="Skip" data-dialog="skip">
      <div className="card">
        <h2>Skip this case</h2>
        <label>Reason
          <textarea value={reason} onChange={(e) => setReason(e.target.value)} data-control="skip-reason"
            autoFocus />
        </label>
        <div className="buttons">
          <button className="primary" onClick={skip} disabled={busy || !reason.trim()} data-action="skip-confirm">
            Skip</button>
          <button onClick={close}>Cancel</button>
        </div>
      </div>
    </div>
  )
}

export function HelpDialog({ close }: { close: () => void }) {
  return (
    <div className="modal" role="dialog" aria-label="Keyboard shortcuts" data-dialog="help" onClick={close}>
      <div className="card">
        <h2>Keyboard shortcuts</h2>
        <table className="shortcuts">
          <tbody>
            {SHORTCUTS.map((s) => (
              <tr key={s.action}><td>{s.keys.map((k) => <kbd key={k}>{k}</kbd>)}</td><td>{s.help}</td></tr>
            ))}
            {MOUSE_HELP.map(([k, h]) => <tr key={k}><td><kbd>{k}</kbd></td><td>{h}</td></tr>)}
          </tbody>
        </table>
      </div>
    </div>
  )
}
