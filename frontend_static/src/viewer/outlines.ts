// Outlines drawn over the displayed slice: where each ensemble member (and their mean) puts the organ at a hotspot; and
// the click tool's prompts (points, scribbles, boxes) as markers on the slices they lie on. An SVG laid over NiiVue's
// canvas (in the canvas's pixels), redrawn after every scene draw (slice, view, zoom and resize all redraw the scene):
// for each outline, one path of the edges between voxels inside and outside it on the slice, mapped to the screen
// through NiiVue's own voxel -> canvas transform (three points give the slice's in-plane axes). Only the outline's
// box is visited.
import { type Niivue, SLICE_TYPE } from '@niivue/niivue'
import type { Box } from './edits'

export interface Outline {
  name: string
  colour: string // CSS colour
  dashed?: boolean
  box: Box // viewer voxels holding every voxel inside
  inside: (x: number, y: number, z: number) => boolean // viewer voxel indices
}

/** A prompt of the click tool drawn over its slice: a point, a scribble (its voxels in order) or a box (two opposite
 * corners on one slice); viewer voxel indices. */
export interface Marker {
  kind: 'point' | 'scribble' | 'box'
  voxels: number[][]
  positive: boolean
}

export const MARKER_COLOURS = { positive: '#39ff7a', negative: '#ff4040' }

const TILE = [SLICE_TYPE.SAGITTAL, SLICE_TYPE.CORONAL, SLICE_TYPE.AXIAL] // the view across each axis

const SVG = 'http://www.w3.org/2000/svg'

export class OutlineLayer {
  readonly svg: SVGSVGElement
  private outlines: Outline[] = []
  private markers: Marker[] = []

  constructor(private nv: Niivue, base: HTMLCanvasElement, private axis: () => number,
    private crosshair: () => number[]) {
    this.svg = document.createElementNS(SVG, 'svg')
    this.svg.setAttribute('class', 'outlines')
    this.svg.setAttribute('preserveAspectRatio', 'none')
    this.svg.dataset.outlineEdges = ''
    base.after(this.svg)
  }

  set(outlines: Outline[]): void {
    this.outlines = outlines
    this.draw()
  }

  setMarkers(markers: Marker[]): void {
    this.markers = markers
    this.draw()
  }

  /** Redraw on the displayed slice; the SVG's data-outline-edges says "name:edges,..." (tests). */
  draw(): void {
    const base = this.nv.canvas
    const svg = this.svg
    if (!base || !svg.isConnected) return
    svg.setAttribute('viewBox', `0 0 ${base.width} ${base.height}`)
    svg.replaceChildren()
    const counts: string[] = []
    if (this.outlines.length && this.nv.volumes.length) {
      const axis = this.axis()
      const s = this.crosshair()[axis]
      for (const o of this.outlines) {
        const { d, edges } = this.path(o, axis, s)
        counts.push(`${o.name}:${edges}`)
        if (!edges) continue
        const path = document.createElementNS(SVG, 'path')
        path.setAttribute('d', d)
        path.setAttribute('stroke', o.colour)
        path.setAttribute('fill', 'none')
        path.setAttribute('stroke-width', '1.5')
        path.setAttribute('vector-effect', 'non-scaling-stroke')
        if (o.dashed) path.setAttribute('stroke-dasharray', '4 3')
        path.dataset.outline = o.name
        svg.append(path)
      }
    }
    svg.dataset.outlineEdges = counts.join(',')
    svg.dataset.markers = String(this.drawMarkers())
  }

  /** The markers on the displayed slice (a box while it is drawn too); returns how many were drawn. */
  private drawMarkers(): number {
    if (!this.markers.length || !this.nv.volumes.length) return 0
    const axis = this.axis()
    const s = this.crosshair()[axis]
    const [u, v] = axis === 0 ? [1, 2] : axis === 1 ? [0, 2] : [0, 1]
    const screen = (a: number, b: number) => {
      const p = [0, 0, 0]
      p[axis] = s
      p[u] = a
      p[v] = b
      return this.nv.frac2canvasPosWithTile(this.nv.vox2frac(p), TILE[axis])?.pos
    }
    const p0 = screen(0, 0)
    const pu = screen(1, 0)
    const pv = screen(0, 1)
    if (!p0 || !pu || !pv) return 0
    const at = (a: number, b: number) => [p0[0] + a * (pu[0] - p0[0]) + b * (pv[0] - p0[0]),
      p0[1] + a * (pu[1] - p0[1]) + b * (pv[1] - p0[1])]
    const size = Math.max(4, 0.6 * Math.hypot(pu[0] - p0[0], pu[1] - p0[1]))
    let drawn = 0
    for (const m of this.markers) {
      const on = m.voxels.filter((w) => w[axis] === s)
      if (!on.length || (m.kind === 'box' && on.length < 2)) continue
      const colour = m.positive ? MARKER_COLOURS.positive : MARKER_COLOURS.negative
      let element: SVGElement
      if (m.kind === 'point') {
        const [x, y] = at(on[0][u], on[0][v])
        element = document.createElementNS(SVG, 'circle')
        element.setAttribute('cx', x.toFixed(1))
        element.setAttribute('cy', y.toFixed(1))
        element.setAttribute('r', size.toFixed(1))
        element.setAttribute('fill', colour)
        element.setAttribute('fill-opacity', '0.5')
      } else {
        const corners = m.kind === 'box' ? boxCorners(on[0], on[1], u, v) : on.map((w) => [w[u], w[v]])
        element = document.createElementNS(SVG, m.kind === 'box' ? 'polygon' : 'polyline')
        element.setAttribute('points', corners.map(([a, b]) => at(a, b).map((c) => c.toFixed(1)).join(',')).join(' '))
        element.setAttribute('fill', 'none')
        if (m.kind === 'box') element.setAttribute('stroke-dasharray', '4 3')
      }
      element.setAttribute('stroke', colour)
      element.setAttribute('stroke-width', '2')
      element.setAttribute('vector-effect', 'non-scaling-stroke')
      element.dataset.marker = `${m.kind}${m.positive ? '+' : '-'}`
      this.svg.append(element)
      drawn++
    }
    return drawn
  }

  /** One outline on slice `s` across `axis`: its path and the voxel edges in it. */
  private path(o: Outline, axis: number, s: number): { d: string; edges: number } {
    const lo = [o.box.x0, o.box.y0, o.box.z0]
    const hi = [o.box.x1, o.box.y1, o.box.z1]
    if (s < lo[axis] || s > hi[axis]) return { d: '', edges: 0 }
    const [u, v] = axis === 0 ? [1, 2] : axis === 1 ? [0, 2] : [0, 1]
    const vox = (a: number, b: number) => {
      const p = [0, 0, 0]
      p[axis] = s
      p[u] = a
      p[v] = b
      return p
    }
    const screen = (a: number, b: number) =>
      this.nv.frac2canvasPosWithTile(this.nv.vox2frac(vox(a, b)), TILE[axis])?.pos
    const p0 = screen(lo[u], lo[v])
    const pu = screen(lo[u] + 1, lo[v])
    const pv = screen(lo[u], lo[v] + 1)
    if (!p0 || !pu || !pv) return { d: '', edges: 0 }
    const at = (a: number, b: number) =>
      `${(p0[0] + (a - lo[u]) * (pu[0] - p0[0]) + (b - lo[v]) * (pv[0] - p0[0])).toFixed(1)} ` +
      `${(p0[1] + (a - lo[u]) * (pu[1] - p0[1]) + (b - lo[v]) * (pv[1] - p0[1])).toFixed(1)}`
    const inside = (a: number, b: number) => {
      if (a < lo[u] || a > hi[u] || b < lo[v] || b > hi[v]) return false
      const p = vox(a, b)
      return o.inside(p[0], p[1], p[2])
    }
    const parts: string[] = []
    for (let b = lo[v] - 1; b <= hi[v]; b++) {
      for (let a = lo[u] - 1; a <= hi[u]; a++) {
        const here = inside(a, b)
        if (here !== inside(a + 1, b)) parts.push(`M${at(a + 0.5, b - 0.5)}L${at(a + 0.5, b + 0.5)}`)
        if (here !== inside(a, b + 1)) parts.push(`M${at(a - 0.5, b + 0.5)}L${at(a + 0.5, b + 0.5)}`)
      }
    }
    return { d: parts.join(''), edges: parts.length }
  }
}

/** A box's outline on its slice (in-plane axes u, v): the voxels' outer edges, half a voxel out from the corners. */
function boxCorners(a: number[], b: number[], u: number, v: number): number[][] {
  const u0 = Math.min(a[u], b[u]) - 0.5
  const u1 = Math.max(a[u], b[u]) + 0.5
  const v0 = Math.min(a[v], b[v]) - 0.5
  const v1 = Math.max(a[v], b[v]) + 0.5
  return [[u0, v0], [u1, v0], [u1, v1], [u0, v1]]
}
