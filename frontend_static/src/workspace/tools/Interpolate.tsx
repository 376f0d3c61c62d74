// Slice interpolation: paint the active organ (brush or outline) on two or more non-adjacent slices of one view,
// then fill the slices between them with the shape-based interpolation of the painted slices, as one edit.
import type { Viewer } from '../../viewer/niivue'
import { interpolateSlices } from '../../viewer/ops/interpolate'
import type { ViewerRef } from '../types'
import type { Tools } from './useTools'

/** Returns the voxels added, or a reason why nothing could be interpolated. */
export function interpolate(viewer: Viewer, value: number): number | string {
  const g = viewer.geometry
  const axis = viewer.axis()
  const { slices, box } = viewer.keySlices(axis, value)
  if (!g || !box || slices.length < 2) return 'paint the organ on two or more slices of this view first'
  const pad = 2
  const frame = { axis, box: { x0: box.x0 - pad, x1: box.x1 + pad, y0: box.y0 - pad, y1: box.y1 + pad,
    z0: box.z0 - pad, z1: box.z1 + pad } }
  for (const [k, key] of (['x', 'y', 'z'] as const).entries()) {
    frame.box[`${key}0`] = Math.max(0, frame.box[`${key}0`])
    frame.box[`${key}1`] = Math.min(g.dims[k] - 1, frame.box[`${key}1`])
  }
  const key = (['x', 'y', 'z'] as const)[axis]
  const span = { ...frame.box, [`${key}0`]: slices[0], [`${key}1`]: slices[slices.length - 1] }
  const added = viewer.edit(span, (label) => {
    interpolateSlices(label, g.dims, value, frame, slices)
  })
  viewer.forgetKeySlices(axis, value)
  return added
}

export function InterpolateControls({ t, viewerRef, say }: { t: Tools; viewerRef: ViewerRef
  say: (message: string) => void }) {
  const run = () => {
    const viewer = viewerRef.current
    if (!viewer) return
    const result = interpolate(viewer, t.active)
    say(typeof result === 'string' ? result : `interpolated: ${result} voxels added`)
  }
  return (
    <div className="buttons">
      <button onClick={run} data-action="interpolate" title="fill the slices between painted slices (i)">
        Interpolate slices</button>
    </div>
  )
}
