// Members at a hotspot: for the active organ's selected hotspot, draw where each ensemble member and the mean put the
// organ (outlines over the slices, on by default), show a member's version in the hotspot's region as a preview, and
// accept one with one click (or m to cycle, a to accept); say when the members agree there, so that no member will
// fix a wrong label. The snap's proposal (SnapEdge.tsx) is one more outline, toggled with the members'. When the active
// organ is not the selected hotspot's, say so (the tools work on the hotspot's organ) rather than vanish.
import { OUTLINE_COLOURS, SNAP_COLOUR, type Members } from './useMembers'

export function MembersControls({ m }: { m: Members }) {
  if (m.status === 'other-organ' && m.hotspot) {
    return <p className="flash" data-members-unavailable="other-organ">The selected hotspot is
      {' '}{m.hotspot.display_name}'s: the members, the local threshold and the snap work on its organ. Select
      {' '}{m.hotspot.display_name} (or a hotspot of the active organ) to use them.</p>
  }
  if (m.error) return <p className="muted" data-members-error>members: {m.error}</p>
  if (!m.crops) return null
  const names = [...m.crops.members.map((x) => x.name), 'mean']
  return (
    <div className="members" data-members={m.crops.members.map((x) => x.name).join(',')}>
      <h3>Members at this hotspot</h3>
      {m.crops.members_agree && (
        <p className="flash" data-members-agree>The members agree here (Dice ≥ 0.9 in the hotspot): if the label is
          still wrong, no member will fix it; correct it by hand (brush, click to grow, interpolation).</p>
      )}
      <label data-control-label="outlines">
        <input type="checkbox" checked={m.outlines} onChange={(e) => m.setOutlines(e.target.checked)}
          data-control="member-outlines" /> outlines{' '}
        {names.map((name, n) => (
          <span key={name} className="outline-key" data-outline-colour={name} style={{ color: name === 'mean' ? '#fff'
            : OUTLINE_COLOURS[n % 5] }}>{name === 'mean' ? '┄' : '━'} {name} </span>
        ))}
        <span className="outline-key" data-outline-colour="snap" style={{ color: SNAP_COLOUR }}
          title="where Snap edge to CT would put the edge (current reach and protection)">━ snap </span>
      </label>
      <div className="buttons">
        <button className={m.shown === '' ? 'on' : ''} onClick={() => m.cancel()} data-member-show="">label</button>
        {names.map((name) => (
          <button key={name} className={m.shown === name ? 'on' : ''} onClick={() => m.show(name)}
            data-member-show={name}>{name}</button>
        ))}
      </div>
      <div className="buttons">
        {names.map((name) => (
          <button key={name} onClick={() => m.accept(name)} data-member-accept={name}
            title={`replace the organ in this hotspot by ${name}'s version (one edit)`}>use {name}</button>
        ))}
        {m.shown && !m.shown.startsWith('p') && !m.shown.startsWith('snap:') && <button className="primary" onClick={m.keep}
          data-action="member-keep">keep {m.shown} (a)</button>}
      </div>
    </div>
  )
}
