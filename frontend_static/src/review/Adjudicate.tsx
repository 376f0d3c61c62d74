// Adjudicating a double read: the two reads' agreement per organ (Dice, NSD), then take one read whole or choose
// the read per organ; the result is a new revision the lead accepts, the case's final label.
import { useState } from 'react'
import type { ReviewDetail } from './reviewApi'

export function Adjudicate({ detail, busy, run }: { detail: ReviewDetail; busy: boolean;
  run: (take: 1 | 2, organs: Record<string, 1 | 2>) => void }) {
  const pair = detail.double_read!
  const [take, setTake] = useState<1 | 2>(pair.read as 1 | 2)
  const [organs, setOrgans] = useState<Record<string, 1 | 2>>({})
  const names = [...new Set([...detail.diff.organs.map((o) => o.organ), ...pair.agreement.map((a) => a.organ)])]
  const readOf = (n: 1 | 2) => (n === pair.read ? `${detail.author} (this)` : pair.other?.author ?? 'not landed')
  return (
    <section data-section="adjudicate" data-other={pair.other?.id ?? ''}>
      <h2>Double read: read {pair.read} of 2</h2>
      {!pair.other && <p className="muted" data-waiting>The other read has not landed yet.</p>}
      {pair.agreement.length > 0 && (
        <table className="diff" data-table="agreement">
          <thead><tr><th>organ</th><th>Dice</th><th>NSD</th></tr></thead>
          <tbody>{pair.agreement.map((a) => <tr key={a.organ} data-row={a.organ}>
            <td>{a.organ}</td><td>{a.dice.toFixed(3)}</td><td>{a.nsd.toFixed(3)}</td></tr>)}</tbody>
        </table>
      )}
      <label>Take
        <select value={take} onChange={(e) => setTake(Number(e.target.value) as 1 | 2)} data-choose="take">
          <option value={1}>read 1: {readOf(1)}</option>
          <option value={2}>read 2: {readOf(2)}</option>
        </select></label>
      <h3>per organ</h3>
      {names.map((name) => (
        <label key={name}>{name}
          <select value={organs[name] ?? take} data-choose-organ={name}
            onChange={(e) => setOrgans({ ...organs, [name]: Number(e.target.value) as 1 | 2 })}>
            <option value={1}>read 1</option><option value={2}>read 2</option>
          </select></label>
      ))}
      <button className="primary" disabled={busy || !pair.other} onClick={() => run(take, organs)}
        data-action="adjudicate">Adjudicate</button>
    </section>
  )
}
