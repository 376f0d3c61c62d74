// The volume's geometry for tools that compute their edits: voxel spacing, the CT's HU at a viewer voxel, file voxel
// indices (the server's) to the viewer's, and each organ's box. Viewer voxels are RAS-ordered (NiiVue's drawing
// bitmap: x fastest, then y, then z); the CT's voxels stay in the file's order, reached through NiiVue's img2RAS steps.
import type { NVImage } from '@niivue/niivue'
import type { Box } from './edits'

export interface VolumeGeometry {
  dims: number[] // [nx, ny, nz], viewer order
  spacing: number[] // mm along the viewer's x, y, z
  voxelMl: number
  hu: (index: number) => number // the CT at a flat viewer index, in HU
  /** A box of file voxel indices ([[i0, j0, k0], [i1, j1, k1]], inclusive) as a viewer box. */
  fileBoxToViewer: (lo: number[], hi: number[]) => Box
  /** File voxel indices (i, j, k) of a viewer voxel. */
  fileIndex: (x: number, y: number, z: number) => [number, number, number]
  /** Per viewer axis: the file axis along it and whether it runs backwards; and the file's dims. */
  axes: { f: number; flip: boolean }[]
  fileDims: number[]
  /** The CT's HU over a box of viewer voxels, x fastest (no per-voxel division: per-axis raw offsets). */
  huBox: (box: Box) => Float32Array
}

/** Where the file axes lie in the viewer's (a VolumeGeometry is one). */
export interface AxisMap {
  axes: { f: number; flip: boolean }[] // per viewer axis: the file axis along it, and whether it runs backwards
  fileDims: number[]
}

/**
 * The crop offset of a viewer voxel inside `box` (the crop's box on the viewer's grid) as a sum of one term per axis:
 * terms[2][z - box.z0] + terms[1][y - box.y0] + terms[0][x - box.x0], for a crop starting at file voxel `lo` with
 * `shape` (file order, x fastest).
 */
export function cropOffsetTerms(g: AxisMap, lo: readonly number[], shape: readonly number[], box: Box): Int32Array[] {
  const strides = [1, shape[0], shape[0] * shape[1]]
  return [0, 1, 2].map((a) => {
    const { f, flip } = g.axes[a]
    const v0 = [box.x0, box.y0, box.z0][a]
    const v1 = [box.x1, box.y1, box.z1][a]
    return Int32Array.from({ length: v1 - v0 + 1 }, (_, k) => {
      const v = v0 + k
      return ((flip ? g.fileDims[f] - 1 - v : v) - lo[f]) * strides[f]
    })
  })
}

/** The keys held when a tool's press began. */
export interface PointerKeys {
  shift: boolean
  alt: boolean
}

/** A tool that takes the left button: down (a voxel, the view's slice axis, the keys held), drags, up. With `right`, a
 * right click (pressed and released without a drag: a right drag stays NiiVue's window / level) is the tool's too. */
export interface PointerTool {
  down: (voxel: number[], axis: number, keys: PointerKeys) => void
  move?: (voxel: number[], axis: number) => void
  up?: () => void
  right?: (voxel: number[], axis: number) => void
}

const CLICK_SLOP = 4 // CSS pixels a right click may move and still be a click

export function geometryOf(ct: NVImage): VolumeGeometry {
  const hdr = ct.hdr!
  const d = ct.dimsRAS!
  const dims = [d[1], d[2], d[3]]
  const p = ct.pixDimsRAS ?? [1, 1, 1, 1]
  const spacing = [Math.abs(p[1]) || 1, Math.abs(p[2]) || 1, Math.abs(p[3]) || 1]
  const img = ct.img as ArrayLike<number>
  const step = ct.img2RASstep as number[]
  const start = ct.img2RASstart as number[]
  const slope = Number.isFinite(hdr.scl_slope) && hdr.scl_slope !== 0 ? hdr.scl_slope : 1
  const inter = Number.isFinite(hdr.scl_inter) ? hdr.scl_inter : 0
  const [nx, ny] = dims
  const nxy = nx * ny
  const hu = (i: number) => {
    const z = Math.floor(i / nxy)
    const r = i - z * nxy
    const y = Math.floor(r / nx)
    const x = r - y * nx
    return img[start[0] + x * step[0] + y * step[1] + z * step[2]] * slope + inter
  }
  // which file axis runs along each viewer axis, and whether it is reversed (from NiiVue's raw-index steps)
  const fd = [hdr.dims[1], hdr.dims[2], hdr.dims[3]]
  const strides = [1, fd[0], fd[0] * fd[1]]
  const axisOf = step.map((s, a) => {
    const f = strides.findIndex((t, k) => Math.abs(s) === t && fd[k] === dims[a])
    return { f: f < 0 ? a : f, flip: s < 0 }
  })
  const toViewer = (ijk: number[], a: number) => {
    const { f, flip } = axisOf[a]
    return flip ? fd[f] - 1 - ijk[f] : ijk[f]
  }
  const fileBoxToViewer = (lo: number[], hi: number[]): Box => {
    const v = [0, 1, 2].map((a) => [toViewer(lo, a), toViewer(hi, a)].sort((m, n) => m - n))
    return { x0: v[0][0], x1: v[0][1], y0: v[1][0], y1: v[1][1], z0: v[2][0], z1: v[2][1] }
  }
  const fileIndex = (x: number, y: number, z: number): [number, number, number] => {
    const out: [number, number, number] = [0, 0, 0]
    ;[x, y, z].forEach((v, a) => {
      const { f, flip } = axisOf[a]
      out[f] = flip ? fd[f] - 1 - v : v
    })
    return out
  }
  const huBox = (box: Box) => {
    const w = box.x1 - box.x0 + 1
    const h = box.y1 - box.y0 + 1
    const d = box.z1 - box.z0 + 1
    const out = new Float32Array(w * h * d)
    let o = 0
    for (let z = box.z0; z <= box.z1; z++) {
      for (let y = box.y0; y <= box.y1; y++) {
        let raw = start[0] + box.x0 * step[0] + y * step[1] + z * step[2]
        for (let x = 0; x < w; x++, raw += step[0]) out[o++] = img[raw] * slope + inter
      }
    }
    return out
  }
  return { dims, spacing, voxelMl: (spacing[0] * spacing[1] * spacing[2]) / 1000, hu, fileBoxToViewer, fileIndex,
    axes: axisOf, fileDims: fd, huBox }
}

/** Each label value's box in one pass over the label (on load only; edits grow boxes without scanning). */
export function organBoxes(label: Uint8Array, dims: number[]): Map<number, Box> {
  const [nx, ny, nz] = dims
  const lo = new Map<number, number[]>()
  const hi = new Map<number, number[]>()
  for (let z = 0; z < nz; z++) {
    for (let y = 0; y < ny; y++) {
      const row = (z * ny + y) * nx
      let x = 0
      while (x < nx) {
        const v = label[row + x]
        if (v === 0) {
          x++
          continue
        }
        let x1 = x
        while (x1 + 1 < nx && label[row + x1 + 1] === v) x1++
        const l = lo.get(v)
        if (!l) {
          lo.set(v, [x, y, z])
          hi.set(v, [x1, y, z])
        } else {
          const h = hi.get(v)!
          if (x < l[0]) l[0] = x
          if (y < l[1]) l[1] = y
          if (x1 > h[0]) h[0] = x1
          if (y > h[1]) h[1] = y
          h[2] = z
        }
        x = x1 + 1
      }
    }
  }
  const boxes = new Map<number, Box>()
  for (const [v, l] of lo) {
    const h = hi.get(v)!
    boxes.set(v, { x0: l[0], x1: h[0], y0: l[1], y1: h[1], z0: l[2], z1: h[2] })
  }
  return boxes
}

/**
 * Give the left button to our tool when one is set: listeners on the canvas's parent in the capture phase, so that
 * NiiVue's own (on the canvas) never see the press, the drag or the release.
 */
export function listenPointer(canvas: HTMLCanvasElement, host: { tool: () => PointerTool | null
  voxelAt: (e: MouseEvent) => number[] | null; axis: () => number; begin: () => void }, cleanups: (() => void)[]) {
  const target = canvas.parentElement ?? canvas.ownerDocument
  let down = false
  let rightAt: { x: number; y: number; voxel: number[] } | null = null // a right press the tool may take as a click
  const onDown = (event: Event) => {
    const e = event as MouseEvent
    const tool = host.tool()
    if (!tool || e.target !== canvas) return
    if (e.button === 2) {
      const voxel = tool.right ? host.voxelAt(e) : null
      rightAt = voxel ? { x: e.clientX, y: e.clientY, voxel } : null
      return // NiiVue sees it too: a drag is window / level
    }
    if (e.button !== 0) return
    const voxel = host.voxelAt(e)
    e.stopPropagation()
    e.preventDefault()
    if (!voxel) return
    down = true
    host.begin()
    tool.down(voxel, host.axis(), { shift: e.shiftKey, alt: e.altKey })
  }
  const onMove = (event: Event) => {
    const tool = host.tool()
    if (!down || !tool) return
    event.stopPropagation()
    const voxel = host.voxelAt(event as MouseEvent)
    if (voxel) tool.move?.(voxel, host.axis())
  }
  const onUp = (event: Event) => {
    const e = event as MouseEvent
    if (e.button === 2 && rightAt) {
      const { x, y, voxel } = rightAt
      rightAt = null
      const right = host.tool()?.right
      if (right && Math.abs(e.clientX - x) <= CLICK_SLOP && Math.abs(e.clientY - y) <= CLICK_SLOP) {
        host.begin()
        right(voxel, host.axis())
      }
      return
    }
    if (!down) return
    down = false
    event.stopPropagation()
    host.tool()?.up?.()
  }
  target.addEventListener('mousedown', onDown, { capture: true })
  target.addEventListener('mousemove', onMove, { capture: true })
  target.addEventListener('mouseup', onUp, { capture: true })
  cleanups.push(() => {
    target.removeEventListener('mousedown', onDown, { capture: true })
    target.removeEventListener('mousemove', onMove, { capture: true })
    target.removeEventListener('mouseup', onUp, { capture: true })
  })
}
