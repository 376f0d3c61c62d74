// What the revision changed per organ against the label it was made from: voxels added and removed, volumes before
// and after (mL). Choosing an organ shows only its diff in the viewer.
import type { ReviewDetail } from './reviewApi'

export function DiffPanel({ detail, organ, setOrgan, locked }: { detail: ReviewDetail; organ: string;
  setOrgan: (organ: string) => void; locked: boolean }) {
  const ref = detail.diff.reference
  return (
    <section data-section="diff">
      <h2>Changes</h2>
      <p className="muted">against {ref.number ? `revision ${ref.number}` : ref.source.replace('_', '-')}</p>
      <table className="diff" data-table="diff">
        <thead><tr><th>organ</th><th>+ vox</th><th>− vox</th><th>before mL</th><th>after mL</th><th>Δ mL</th></tr>
        </thead>
        <tbody>
          <tr className={organ === '' ? 'chosen' : ''} onClick={() => !locked && setOrgan('')} data-row="">
            <td colSpan={6}>all organs</td></tr>
          {detail.diff.organs.map((o) => (
            <tr key={o.organ} className={organ === o.organ ? 'chosen' : ''} data-row={o.organ} data-added={o.added}
              data-removed={o.removed} data-change-ml={o.change_ml} onClick={() => !locked && setOrgan(o.organ)}>
              <td><span className="swatch" style={{ background: o.color }} /> {o.display_name}</td>
              <td>{o.added}</td><td>{o.removed}</td><td>{o.before_ml.toFixed(1)}</td><td>{o.after_ml.toFixed(1)}</td>
              <td>{o.change_ml > 0 ? '+' : ''}{o.change_ml.toFixed(2)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  )
}
