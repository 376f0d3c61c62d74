// Local threshold: re-threshold the ensemble's mean probability of the active organ inside the selected hotspot's
// region (0.2 to 0.8), previewed live on the label; Apply keeps it as one undoable edit.
import { useState } from 'react'
import type { Members } from './useMembers'

export function LocalThreshold({ m }: { m: Members }) {
  const [t, setT] = useState(0.5)
  if (!m.crops) return null
  const previewing = m.shown.startsWith('p')
  return (
    <div className="threshold">
      <label>Local threshold of the mean {t.toFixed(2)}
        <input type="range" min={0.2} max={0.8} step={0.05} value={t} data-control="local-threshold"
          onChange={(e) => {
            const v = Number(e.target.value)
            setT(v)
            m.show(`p${v.toFixed(2)}`)
          }} />
      </label>
      <div className="buttons">
        <button className="primary" disabled={!previewing} onClick={m.keep} data-action="threshold-apply">
          Apply</button>
        <button disabled={!previewing} onClick={() => {
          m.cancel()
          setT(0.5)
        }} data-action="threshold-cancel">Cancel</button>
      </div>
    </div>
  )
}
