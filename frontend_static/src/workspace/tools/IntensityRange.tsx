// Intensity-aware painting: an HU range (organ presets) outside which the brush, the outline, the sphere brush and
// click-to-grow change nothing. The range is also click-to-grow's window.
import type { Viewer } from '../../viewer/niivue'
import type { Tools } from './useTools'

// Portal-venous CT, generous so that a boundary voxel's partial volume stays in; "soft tissue" for the others.
export const HU_PRESETS: Record<string, [number, number]> = {
  'soft tissue': [-100, 300],
  liver: [0, 250],
  spleen: [0, 250],
  kidney: [0, 350],
  pancreas: [-20, 250],
  stomach: [-50, 250],
  gallbladder: [-20, 80],
  vessels: [80, 500],
  fat: [-200, -30],
}

/** The preset for an organ name (kidney_left: kidney, aorta / postcava: vessels), else soft tissue. */
export function presetFor(organ: string): string {
  if (organ.startsWith('kidney')) return 'kidney'
  if (['aorta', 'postcava', 'inferior_vena_cava', 'portal_vein'].includes(organ)) return 'vessels'
  return organ in HU_PRESETS ? organ : 'soft tissue'
}

export function huAllow(viewer: Viewer, lo: number, hi: number): (index: number) => boolean {
  const hu = viewer.geometry!.hu
  return (i) => {
    const v = hu(i)
    return v >= lo && v <= hi
  }
}

export function IntensityControls({ t, organ }: { t: Tools; organ: string }) {
  const set = (lo: number, hi: number) => t.setHu((h) => ({ ...h, lo, hi }))
  return (
    <fieldset className="hu">
      <label className="check">
        <input type="checkbox" checked={t.hu.on} onChange={(e) => t.setHu((h) => ({ ...h, on: e.target.checked }))}
          data-control="hu-on" />
        paint only inside HU
      </label>
      <input type="number" value={t.hu.lo} step={10} aria-label="lowest HU" data-control="hu-lo"
        onChange={(e) => set(Number(e.target.value), t.hu.hi)} />
      {' – '}
      <input type="number" value={t.hu.hi} step={10} aria-label="highest HU" data-control="hu-hi"
        onChange={(e) => set(t.hu.lo, Number(e.target.value))} />
      <select value="" onChange={(e) => e.target.value && set(...HU_PRESETS[e.target.value])}
        data-control="hu-preset" aria-label="HU preset">
        <option value="">preset…</option>
        {Object.keys(HU_PRESETS).map((name) => <option key={name} value={name}>
          {name}{name === presetFor(organ) ? ' (this organ)' : ''}</option>)}
      </select>
    </fieldset>
  )
}
