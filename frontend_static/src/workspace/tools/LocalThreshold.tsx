// Local threshold: re-threshold the ensemble's mean probability of the active organ inside the selected hotspot's
// region (0.2 to 0.8). Dragging previews it live on the label; letting go keeps it as one undoable edit (Ctrl+Z takes
// it back), as one click keeps a member or the snap; a new drag replaces it while nothing was edited after it.
import { useEffect, useRef, useState } from 'react'
import type { Members } from './useMembers'

export function LocalThreshold({ m }: { m: Members }) {
  const [t, setT] = useState(0.5)
  const slider = useRef<HTMLInputElement>(null)
  const keep = m.keepThreshold
  useEffect(() => {
    // the native change event comes once, when the drag ends (React's onChange fires on every move)
    const el = slider.current
    if (!el) return
    el.addEventListener('change', keep)
    return () => el.removeEventListener('change', keep)
  }, [keep, m.crops])
  if (!m.crops) return null
  return (
    <div className="threshold">
      <label title="drag to preview; letting go keeps it as one edit (Ctrl+Z takes it back)">
        Local threshold of the mean {t.toFixed(2)}
        <input ref={slider} type="range" min={0.2} max={0.8} step={0.05} value={t} data-control="local-threshold"
          onChange={(e) => {
            const v = Number(e.target.value)
            setT(v)
            m.show(`p${v.toFixed(2)}`)
          }} />
      </label>
    </div>
  )
}
