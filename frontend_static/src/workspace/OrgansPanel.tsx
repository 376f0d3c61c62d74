// The organ list (attention order; a click makes an organ the pen's value) and the hotspot list.
import type { HotspotRow, OrganRow } from './types'

export function OrgansPanel({ organs, active, setActive, setOrgans }: { organs: OrganRow[]; active: number
  setActive: (value: number) => void; setOrgans: (f: (rows: OrganRow[]) => OrganRow[]) => void }) {
  return (
    <section>
      <h2>Organs <span className="muted">(attention order)</span></h2>
      <ul className="organs">
        {organs.map((o) => (
          <li key={o.value} className={o.value === active ? 'active' : ''} data-organ={o.name}
            data-value={o.value} aria-selected={o.value === active} onClick={() => setActive(o.value)}>
            <span className="swatch" style={{ background: o.color }} />
            <span className="name">{o.display_name}</span>
            <span className="muted">{o.size_ml > 0 ? `${o.size_ml.toFixed(1)} mL` : ''}</span>
            <input type="checkbox" checked={o.visible} title="visible" data-visibility={o.name}
              onClick={(e) => e.stopPropagation()}
              onChange={(e) => setOrgans((rows) => rows.map((r) => r.value === o.value
                ? { ...r, visible: e.target.checked } : r))} />
          </li>
        ))}
      </ul>
    </section>
  )
}

export function HotspotsPanel({ hotspots, hotspot, organs, goto }: { hotspots: HotspotRow[]; hotspot: number
  organs: OrganRow[]; goto: (index: number) => void }) {
  return (
    <section>
      <h2>Hotspots <span className="muted">(n / p)</span></h2>
      {hotspots.length === 0 && <p className="muted">none</p>}
      <ol className="hotspots">
        {hotspots.map((h, i) => (
          <li key={i} className={i === hotspot ? 'active' : ''} onClick={() => goto(i)}
            data-hotspot-index={i} data-hotspot-organ={h.value} data-centroid={h.centroid.join(',')}>
            {organs.find((o) => o.name === h.organ)?.display_name ?? h.organ} ·{' '}
            {h.ml >= 0.05 ? `${h.ml.toFixed(1)} mL` : `${h.voxels} voxels`}</li>
        ))}
      </ol>
    </section>
  )
}
