import { describe, expect, it } from 'vitest'
import type { Box } from '../../src/viewer/edits'
import { ballBox, grow, growBox, paintBall, type Painter } from '../../src/viewer/ops/paint'
import { Volume } from './volume'

const LIVER = 5
const SPLEEN = 1

function painter(v: Volume, spacing: number[], canPaint: Painter['canPaint'] = () => true): Painter {
  return { dims: v.dims, spacing, value: LIVER, canPaint }
}

describe('paintBall (the 3D sphere brush)', () => {
  it('paints the voxel centres within the radius in mm, on an anisotropic grid', () => {
    const v = new Volume([9, 9, 5])
    const box = paintBall(v.data, [4, 4, 2], 2, painter(v, [1, 1, 2]))
    expect(box).toEqual({ x0: 2, x1: 6, y0: 2, y1: 6, z0: 1, z1: 3 })
    expect(v.count(LIVER, 2)).toBe(13) // x^2 + y^2 <= 4 in the slice
    expect(v.count(LIVER, 1)).toBe(1) // 2 mm above: the centre only
    expect(v.count(LIVER, 3)).toBe(1)
  })

  it('leaves what canPaint refuses, and clips the ball to the volume', () => {
    const v = new Volume([3, 3, 1])
    v.set(0, 0, 0, SPLEEN)
    const box = paintBall(v.data, [0, 0, 0], 1.5, painter(v, [1, 1, 1], (old) => old === 0))
    expect(box).toEqual({ x0: 0, x1: 1, y0: 0, y1: 1, z0: 0, z1: 0 })
    expect(v.where(LIVER)).toEqual(['1,0,0', '0,1,0', '1,1,0'])
    expect(v.get(0, 0, 0)).toBe(SPLEEN)
    expect(ballBox([9, 9, 9], 1, painter(v, [1, 1, 1]))).toBeNull()
  })
})

describe('grow (click to grow: a flood fill in an HU window)', () => {
  // the CT: 40 HU everywhere but a wall of 300 HU at x = 4 and a 200 HU voxel at (1, 1) in each slice
  const dims = [8, 6, 3]
  const ct = new Volume(dims)
  const hu = new Float32Array(ct.data.length).fill(40)
  for (let z = 0; z < 3; z++) {
    for (let y = 0; y < 6; y++) hu[ct.index(4, y, z)] = 300
    hu[ct.index(1, 1, z)] = 200
  }
  const huBox = (b: Box) => {
    const out = new Float32Array((b.x1 - b.x0 + 1) * (b.y1 - b.y0 + 1) * (b.z1 - b.z0 + 1))
    let o = 0
    for (let z = b.z0; z <= b.z1; z++) for (let y = b.y0; y <= b.y1; y++) for (let x = b.x0; x <= b.x1; x++) {
      out[o++] = hu[ct.index(x, y, z)]
    }
    return out
  }

  it('fills the face-connected voxels in the window, in the slice (2D), stopping at the wall', () => {
    const v = new Volume(dims)
    const { box, voxels } = grow(v.data, [0, 0, 1], 100, 0, 100, false, 2, huBox, painter(v, [1, 1, 1]))
    expect(box).toEqual(growBox([0, 0, 1], 100, false, 2, painter(v, [1, 1, 1])))
    expect(voxels).toBe(4 * 6 - 1)
    expect(v.count(LIVER, 1)).toBe(23)
    expect(v.count(LIVER)).toBe(23)
    expect(v.get(1, 1, 1)).toBe(0)
  })

  it('in 3D it crosses slices; the radius bounds it', () => {
    const v = new Volume(dims)
    expect(grow(v.data, [0, 0, 1], 100, 0, 100, true, 2, huBox, painter(v, [1, 1, 1])).voxels).toBe(3 * 23)
    const near = new Volume(dims)
    // within 1 mm of the seed at (2, 2, 1): itself and its six face neighbours, all 40 HU
    expect(grow(near.data, [2, 2, 1], 1, 0, 100, true, 2, huBox, painter(near, [1, 1, 1])).voxels).toBe(7)
  })

  it('a seed outside the window grows nothing', () => {
    const v = new Volume(dims)
    expect(grow(v.data, [4, 0, 0], 100, 0, 100, true, 2, huBox, painter(v, [1, 1, 1])).voxels).toBe(0)
    expect(v.count(LIVER)).toBe(0)
  })

  it('does not pass through voxels canPaint refuses (another organ under protection)', () => {
    const v = new Volume(dims)
    for (let y = 0; y < 6; y++) v.set(2, y, 0, SPLEEN) // a spleen wall at x = 2
    const { voxels } = grow(v.data, [0, 0, 0], 100, 0, 100, false, 2, huBox,
      painter(v, [1, 1, 1], (old) => old === 0 || old === LIVER))
    expect(voxels).toBe(2 * 6 - 1)
  })
})
