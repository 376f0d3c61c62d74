// Snap an organ's edge to the CT: inside a region, each voxel within `reach` voxels of the label's edge (on either
// side) becomes the organ iff its HU is closer to the organ's local mean (label voxels deeper than `reach`, a window
// of 15 x 15 x 7) than to the local mean just outside (non-organ voxels `reach`+1..`reach`+3 outside, a 5 x 5 x 5
// window, widened to 15 x 15 x 7 where that holds none). Then what is not 6-connected to the organ's core is dropped
// and a 6-neighbour closing fills the band's pinholes. Pure: typed arrays over one box (x fastest), no viewer.
// A Python mirror (tests/browser/test_workspace_snap.py, snap_reference) gives the same voxels.

export interface SnapInput {
  shape: number[] // [w, h, d] of the box
  organ: Uint8Array // 1 where the label is the organ
  ct: Float32Array // HU
  region: Uint8Array // 1 where the edge may move
  locked: Uint8Array | null // 1 where nothing may change (another organ under protection, outside the HU range)
  reach: number // voxels, 1 to 3
}

export const IN_HALF = [7, 7, 3] // half-sizes of the inside window (and the widened outside one)
export const OUT_HALF = [2, 2, 2]
// voxels of context the caller adds around the crop (the region lies inside it): the windows and distances reach
export const SNAP_MARGIN = [8, 8, 6]

/**
 * Squared Euclidean distance (voxel units) from each voxel to the nearest voxel where `mask` is `want`: exact up to
 * `R` squared, `R` squared + 1 beyond (and where the box holds none). Separable: along x by two sweeps, then along y
 * and z the least of (the previous pass + k squared) over |k| <= R; plane by plane, x fastest.
 */
export function nearDistance(mask: Uint8Array, want: number, shape: number[], R: number): Uint8Array {
  const [w, h, d] = shape
  const wh = w * h
  const n = wh * d
  const cap = R * R + 1
  let cur = new Uint8Array(n)
  for (let row = 0; row < n; row += w) {
    let last = -1e9
    for (let x = 0; x < w; x++) {
      if (mask[row + x] === want) last = x
      const dx = x - last
      cur[row + x] = dx > R ? cap : dx * dx
    }
    last = 1e9
    for (let x = w - 1; x >= 0; x--) {
      if (mask[row + x] === want) last = x
      const dx = last - x
      if (dx <= R && dx * dx < cur[row + x]) cur[row + x] = dx * dx
    }
  }
  for (let a = 1; a < 3; a++) {
    const stride = a === 1 ? w : wh
    const m = shape[a]
    const next = cur.slice()
    for (let k = 1; k <= R; k++) {
      const kk = k * k
      for (let z = 0; z < d; z++) {
        for (let y = 0; y < h; y++) {
          const t = a === 1 ? y : z
          const row = z * wh + y * w
          if (t + k < m) {
            const other = row + k * stride
            for (let x = 0; x < w; x++) {
              const v = cur[other + x] + kk
              if (v < next[row + x]) next[row + x] = v
            }
          }
          if (t - k >= 0) {
            const other = row - k * stride
            for (let x = 0; x < w; x++) {
              const v = cur[other + x] + kk
              if (v < next[row + x]) next[row + x] = v
            }
          }
        }
      }
    }
    cur = next
  }
  return cur
}

/** A summed-volume table of `values` where `mask` is 1: (w + 1) x (h + 1) x (d + 1), x fastest. */
function summedVolume(mask: Uint8Array, values: Float32Array | null, shape: number[]): Float64Array {
  const [w, h, d] = shape
  const W = w + 1
  const WH = W * (h + 1)
  const out = new Float64Array(WH * (d + 1))
  for (let z = 0; z < d; z++) {
    for (let y = 0; y < h; y++) {
      let row = 0
      const src = (z * h + y) * w
      const dst = (z + 1) * WH + (y + 1) * W + 1
      for (let x = 0; x < w; x++) {
        if (mask[src + x]) row += values ? values[src + x] : 1
        out[dst + x] = row + out[dst + x - W] + out[dst + x - WH] - out[dst + x - W - WH]
      }
    }
  }
  return out
}

/** The sum of a summed-volume table over the window of half-sizes `half` around (x, y, z), clipped to the box. */
function windowSum(t: Float64Array, shape: number[], x: number, y: number, z: number, half: number[]): number {
  const [w, h, d] = shape
  const W = w + 1
  const WH = W * (h + 1)
  const x0 = Math.max(x - half[0], 0)
  const x1 = Math.min(x + half[0] + 1, w)
  const y0 = Math.max(y - half[1], 0) * W
  const y1 = Math.min(y + half[1] + 1, h) * W
  const z0 = Math.max(z - half[2], 0) * WH
  const z1 = Math.min(z + half[2] + 1, d) * WH
  return t[z1 + y1 + x1] - t[z1 + y1 + x0] - t[z1 + y0 + x1] + t[z1 + y0 + x0] -
    t[z0 + y1 + x1] + t[z0 + y1 + x0] + t[z0 + y0 + x1] - t[z0 + y0 + x0]
}

/** A 6-neighbour closing of `mask` (dilation, then erosion; outside the box counts as 0), at the listed voxels. */
function closeAt(mask: Uint8Array, shape: number[], at: Int32Array): Uint8Array {
  const [w, h, d] = shape
  const wh = w * h
  // the dilation at voxel (x, y, z); 0 outside the box
  const grown = (x: number, y: number, z: number): boolean => {
    if (x < 0 || y < 0 || z < 0 || x >= w || y >= h || z >= d) return false
    const i = z * wh + y * w + x
    return mask[i] === 1 || (x > 0 && mask[i - 1] === 1) || (x + 1 < w && mask[i + 1] === 1) ||
      (y > 0 && mask[i - w] === 1) || (y + 1 < h && mask[i + w] === 1) || (z > 0 && mask[i - wh] === 1) ||
      (z + 1 < d && mask[i + wh] === 1)
  }
  const out = mask.slice()
  for (let k = 0; k < at.length; k++) {
    const i = at[k]
    const z = Math.floor(i / wh)
    const y = Math.floor((i - z * wh) / w)
    const x = i - z * wh - y * w
    out[i] = grown(x, y, z) && grown(x - 1, y, z) && grown(x + 1, y, z) && grown(x, y - 1, z) &&
      grown(x, y + 1, z) && grown(x, y, z - 1) && grown(x, y, z + 1) ? 1 : 0
  }
  return out
}

/** The organ after snapping (1 / 0 over the box); differs from `organ` only in the band inside the region. */
export function snapEdge(input: SnapInput): { organ: Uint8Array; band: number } {
  const { shape, organ, ct, region, locked, reach } = input
  const n = organ.length
  const [w, h, d] = shape
  const wh = w * h
  const r2 = reach * reach
  const o2 = (reach + 3) * (reach + 3)
  const dIn = nearDistance(organ, 0, shape, reach) // inside: to the nearest non-organ voxel (only <= reach matters)
  const dOut = nearDistance(organ, 1, shape, reach + 3) // outside: to the nearest organ voxel
  const band = new Uint8Array(n)
  const inRef = new Uint8Array(n)
  const outRef = new Uint8Array(n)
  let bandCount = 0
  let inCount = 0
  for (let i = 0; i < n; i++) {
    if (organ[i] === 1) {
      if (dIn[i] > r2) {
        inRef[i] = 1
        inCount++
      } else if (region[i] === 1 && (locked === null || locked[i] === 0)) {
        band[i] = 1
        bandCount++
      }
    } else if (dOut[i] > r2) {
      if (dOut[i] <= o2) outRef[i] = 1
    } else if (region[i] === 1 && (locked === null || locked[i] === 0)) {
      band[i] = 1
      bandCount++
    }
  }
  if (bandCount === 0 || inCount === 0) return { organ: organ.slice(), band: 0 }
  const list = new Int32Array(bandCount) // the band's voxels, in index order
  for (let i = 0, k = 0; i < n; i++) if (band[i] === 1) list[k++] = i
  // the organ's HU: the local mean, or the (lower) median of every voxel deeper than reach where the window has none
  let median = NaN
  const deepMedian = () => {
    if (Number.isNaN(median)) {
      const deep = new Float32Array(inCount)
      for (let i = 0, k = 0; i < n; i++) if (inRef[i] === 1) deep[k++] = ct[i]
      deep.sort()
      median = deep[(inCount - 1) >> 1]
    }
    return median
  }
  // local means from summed-volume tables, read at the band's voxels only
  const inSum = summedVolume(inRef, ct, shape)
  const inCnt = summedVolume(inRef, null, shape)
  const outSum = summedVolume(outRef, ct, shape)
  const outCnt = summedVolume(outRef, null, shape)
  const next = organ.slice()
  for (let k = 0; k < bandCount; k++) {
    const i = list[k]
    const z = Math.floor(i / wh)
    const y = Math.floor((i - z * wh) / w)
    const x = i - z * wh - y * w
    const ni = windowSum(inCnt, shape, x, y, z, IN_HALF)
    const inside = ni > 0 ? windowSum(inSum, shape, x, y, z, IN_HALF) / ni : deepMedian()
    let no = windowSum(outCnt, shape, x, y, z, OUT_HALF)
    let outside = no > 0 ? windowSum(outSum, shape, x, y, z, OUT_HALF) / no : NaN
    if (no === 0) {
      no = windowSum(outCnt, shape, x, y, z, IN_HALF)
      if (no === 0) continue // nothing outside to compare with: keep the label
      outside = windowSum(outSum, shape, x, y, z, IN_HALF) / no
    }
    next[i] = Math.abs(ct[i] - inside) < Math.abs(ct[i] - outside) ? 1 : 0
  }
  // keep the band's organ voxels 6-connected to the core (the organ outside the band): a flood through the band from
  // its voxels that touch the core
  const kept = new Uint8Array(n)
  const queue = new Int32Array(bandCount)
  let tail = 0
  const core = (j: number) => organ[j] === 1 && band[j] === 0
  for (let k = 0; k < bandCount; k++) {
    const i = list[k]
    if (next[i] === 0) continue
    const z = Math.floor(i / wh)
    const y = Math.floor((i - z * wh) / w)
    const x = i - z * wh - y * w
    if ((x > 0 && core(i - 1)) || (x + 1 < w && core(i + 1)) || (y > 0 && core(i - w)) ||
      (y + 1 < h && core(i + w)) || (z > 0 && core(i - wh)) || (z + 1 < d && core(i + wh))) {
      kept[i] = 1
      queue[tail++] = i
    }
  }
  const visit = (j: number) => {
    if (band[j] === 1 && next[j] === 1 && kept[j] === 0) {
      kept[j] = 1
      queue[tail++] = j
    }
  }
  for (let head = 0; head < tail; head++) {
    const i = queue[head]
    const z = Math.floor(i / wh)
    const y = Math.floor((i - z * wh) / w)
    const x = i - z * wh - y * w
    if (x > 0) visit(i - 1)
    if (x + 1 < w) visit(i + 1)
    if (y > 0) visit(i - w)
    if (y + 1 < h) visit(i + w)
    if (z > 0) visit(i - wh)
    if (z + 1 < d) visit(i + wh)
  }
  for (let k = 0; k < bandCount; k++) next[list[k]] = kept[list[k]]
  // a 6-neighbour closing fills pinholes; it changes the band only
  return { organ: closeAt(next, shape, list), band: bandCount }
}

/**
 * Steps that run snapEdge on a small synthetic box (a ball of organ in noisy CT beside a brighter neighbour), each
 * reach in turn, with and without a lock: the page's idle-time warm-up (Cleanup.tsx) runs them once after a case
 * loads, so that the JIT has compiled the snap before the first hotspot is selected. Touches nothing of the case.
 */
export function snapWarmUpSteps(rounds: number): (() => void)[] {
  const shape = [34, 30, 20]
  const [w, h, d] = shape
  const n = w * h * d
  let input: SnapInput | null = null
  const make = () => {
    const organ = new Uint8Array(n)
    const ct = new Float32Array(n)
    const region = new Uint8Array(n)
    const locked = new Uint8Array(n)
    let seed = 4321
    const noise = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x80000000 - 0.5) * 30
    for (let z = 0; z < d; z++) {
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          const i = (z * h + y) * w + x
          const ball = ((x - 14) / 9) ** 2 + ((y - 15) / 9) ** 2 + ((z - 10) / 6) ** 2
          organ[i] = ball < 1.1 ? 1 : 0 // a label a little too big
          ct[i] = (ball < 1 ? 60 : x > 24 ? 130 : -80) + noise()
          region[i] = x > 8 && x < 30 && z > 3 && z < 17 ? 1 : 0
          locked[i] = x > 27 ? 1 : 0
        }
      }
    }
    input = { shape, organ, ct, region, locked: null, reach: 1 }
    return locked
  }
  let locked: Uint8Array | null = null
  const steps: (() => void)[] = [() => (locked = make())]
  for (let r = 0; r < rounds; r++) {
    steps.push(() => {
      snapEdge({ ...input!, reach: 1 + (r % 3), locked: r % 2 ? locked : null })
    })
  }
  steps.push(() => {
    input = null
    locked = null
  })
  return steps
}
