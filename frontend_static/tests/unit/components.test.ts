import { describe, expect, it } from 'vitest'
import { fillHoles, keepLargest, removeIslands } from '../../src/viewer/ops/components'
import { Volume } from './volume'

const LIVER = 5
const SPLEEN = 1
const whole = (v: Volume) => ({ x0: 0, x1: v.dims[0] - 1, y0: 0, y1: v.dims[1] - 1, z0: 0, z1: v.dims[2] - 1 })

function organWithIslands(): Volume {
  const v = new Volume([10, 9, 4])
  v.block(1, 4, 1, 4, 0, 3, LIVER) // 64 voxels
  v.set(8, 7, 3, LIVER) // an island of 1
  v.set(8, 0, 0, LIVER) // an island of 2, diagonal neighbours (26-connected: one piece)
  v.set(9, 1, 1, LIVER)
  v.set(6, 6, 0, SPLEEN)
  return v
}

describe('clean-ups (26-connected organ, 6-connected background)', () => {
  it('removeIslands removes the pieces smaller than the given size only', () => {
    const v = organWithIslands()
    expect(removeIslands(v.data, whole(v), v.dims, LIVER, 2)).toBe(1)
    expect(v.get(8, 7, 3)).toBe(0)
    expect(v.get(8, 0, 0)).toBe(LIVER) // the diagonal pair is one piece of 2
    expect(v.count(LIVER)).toBe(66)
    expect(v.get(6, 6, 0)).toBe(SPLEEN)
  })

  it('keepLargest keeps the largest piece only, other organs untouched', () => {
    const v = organWithIslands()
    expect(keepLargest(v.data, whole(v), v.dims, LIVER)).toBe(3)
    expect(v.count(LIVER)).toBe(64)
    expect(v.count(SPLEEN)).toBe(1)
  })

  it('works inside the box given only', () => {
    const v = organWithIslands()
    keepLargest(v.data, { x0: 6, x1: 9, y0: 0, y1: 8, z0: 0, z1: 3 }, v.dims, LIVER) // the two islands: keep the pair
    expect(v.get(8, 7, 3)).toBe(0)
    expect(v.get(9, 1, 1)).toBe(LIVER)
    expect(v.count(LIVER)).toBe(66)
  })

  it('fillHoles fills what no 6-connected path joins to the outside, anything inside included', () => {
    const v = new Volume([14, 9, 9])
    v.block(1, 5, 1, 5, 1, 5, LIVER)
    v.block(2, 4, 2, 4, 2, 4, 0) // a hollow of 27 voxels...
    v.set(3, 3, 3, SPLEEN) // ...holding another organ's voxel
    v.block(7, 11, 1, 5, 1, 5, LIVER)
    v.block(8, 10, 2, 4, 2, 4, 0) // another hollow...
    v.set(11, 3, 3, 0) // ...with a tunnel to the outside: not a hole
    const box = { x0: 0, x1: 13, y0: 0, y1: 8, z0: 0, z1: 8 }
    expect(fillHoles(v.data, box, v.dims, LIVER)).toBe(27)
    expect(v.count(LIVER)).toBe(125 + 125 - 28)
    expect(v.count(SPLEEN)).toBe(0)
    expect(v.get(9, 3, 3)).toBe(0)
  })

  it('a diagonal gap is no way out for the background (6-connected)', () => {
    const v = new Volume([7, 7, 3])
    // a ring in one slice whose wall has only diagonal gaps: the centre is enclosed
    for (const [x, y] of [[2, 1], [3, 1], [4, 1], [1, 2], [5, 2], [1, 3], [5, 3], [1, 4], [5, 4], [2, 5], [3, 5],
      [4, 5]]) v.set(x, y, 1, LIVER)
    v.block(2, 4, 2, 4, 0, 0, LIVER) // floor and ceiling
    v.block(2, 4, 2, 4, 2, 2, LIVER)
    expect(fillHoles(v.data, { x0: 0, x1: 6, y0: 0, y1: 6, z0: 0, z1: 2 }, v.dims, LIVER)).toBe(9)
    expect(v.get(3, 3, 1)).toBe(LIVER)
  })
})
