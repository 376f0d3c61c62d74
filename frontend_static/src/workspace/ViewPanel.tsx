// View buttons, window presets and the display convention (radiological by default).
import { WINDOW_PRESETS, type ViewName } from '../viewer/niivue'
import type { ViewerRef } from './types'
import type { ViewerControls } from './useViewerControls'

const VIEWS: ViewName[] = ['axial', 'coronal', 'sagittal', 'multiplanar']

export function ViewPanel({ c, viewerRef }: { c: ViewerControls; viewerRef: ViewerRef }) {
  return (
    <section>
      <h2>View</h2>
      <div className="buttons">
        {VIEWS.map((v, i) => (
          <button key={v} className={v === c.view ? 'on' : ''} onClick={() => c.setView(v)}
            data-view-button={v} title={`${v} (${i + 1})`}>{v}</button>
        ))}
      </div>
      <div className="buttons">
        {Object.entries(WINDOW_PRESETS).map(([name, p]) => (
          <button key={name} className={p.width === c.win.width && p.level === c.win.level ? 'on' : ''}
            onClick={() => viewerRef.current?.setWindow(p.width, p.level)} data-window-preset={name}>
            {name}</button>
        ))}
      </div>
      <p className="muted">W {c.win.width} / L {c.win.level} · right-drag to change</p>
      <label className="check" title="radiological: the patient's right on the screen's left, as in PACS (r)">
        <input type="checkbox" checked={c.radiological} onChange={(e) => c.setRadiological(e.target.checked)}
          data-control="radiological" />
        radiological display (patient's right on the left)
      </label>
    </section>
  )
}

/** Orientation letters at the viewer's edges (axial and coronal: R / L swap with the convention). */
export function OrientationMarkers({ view, radiological }: { view: ViewName; radiological: boolean }) {
  if (view === 'multiplanar') return null
  const [left, right] = view === 'sagittal' ? ['A', 'P'] : radiological ? ['R', 'L'] : ['L', 'R']
  const [top, bottom] = view === 'axial' ? ['A', 'P'] : ['S', 'I']
  return (
    <div className="orient" aria-hidden>
      <span className="orient-left" data-orient-left={left}>{left}</span>
      <span className="orient-right" data-orient-right={right}>{right}</span>
      <span className="orient-top">{top}</span>
      <span className="orient-bottom">{bottom}</span>
    </div>
  )
}
