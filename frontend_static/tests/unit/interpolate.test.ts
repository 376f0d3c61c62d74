import { describe, expect, it } from 'vitest'
import { interpolateSlices, KeySlices } from '../../src/viewer/ops/interpolate'
import { Volume } from './volume'

const LIVER = 5
const frame = { axis: 2, box: { x0: 0, x1: 8, y0: 0, y1: 8, z0: 0, z1: 0 } }

describe('interpolateSlices (shape-based, chamfer distances)', () => {
  it('grows a small square on one key slice into a large one on the other, slice by slice', () => {
    const v = new Volume([9, 9, 5])
    v.block(3, 5, 3, 5, 0, 0, LIVER) // 3 x 3 at z = 0
    v.block(1, 7, 1, 7, 4, 4, LIVER) // 7 x 7 at z = 4
    const box = interpolateSlices(v.data, v.dims, LIVER, frame, [4, 0])
    expect(box).toEqual({ x0: 0, x1: 8, y0: 0, y1: 8, z0: 1, z1: 3 })
    expect([0, 1, 2, 3, 4].map((z) => v.count(LIVER, z))).toEqual([9, 9, 25, 49, 49])
    // the middle slice is the 5 x 5 square between them
    const middle = new Volume([9, 9, 5]).block(2, 6, 2, 6, 2, 2, LIVER)
    expect(v.where(LIVER).filter((p) => p.endsWith(',2'))).toEqual(middle.where(LIVER))
  })

  it('only adds the organ: what is there already stays', () => {
    const v = new Volume([9, 9, 5])
    v.block(3, 5, 3, 5, 0, 0, LIVER)
    v.block(3, 5, 3, 5, 4, 4, LIVER)
    v.set(8, 8, 2, LIVER) // an island on a slice in between
    v.set(4, 4, 2, 2) // another organ where the shape goes: the tool writes, the viewer's policy decides
    interpolateSlices(v.data, v.dims, LIVER, frame, [0, 4])
    expect(v.get(8, 8, 2)).toBe(LIVER)
    expect(v.count(LIVER, 2)).toBe(10)
  })

  it('does nothing between adjacent key slices or when a key slice lacks the organ', () => {
    const v = new Volume([9, 9, 5])
    v.block(3, 5, 3, 5, 0, 0, LIVER)
    v.block(3, 5, 3, 5, 1, 1, LIVER)
    const before = v.data.slice()
    expect(interpolateSlices(v.data, v.dims, LIVER, frame, [0, 1])).toBeNull()
    expect(interpolateSlices(v.data, v.dims, LIVER, frame, [1, 4])).toBeNull() // z = 4 is empty
    expect(v.data).toEqual(before)
  })

  it('works across another axis (sagittal key slices)', () => {
    const v = new Volume([5, 6, 6])
    v.block(0, 0, 1, 4, 1, 4, LIVER)
    v.block(4, 4, 1, 4, 1, 4, LIVER)
    interpolateSlices(v.data, v.dims, LIVER, { axis: 0, box: { x0: 0, x1: 0, y0: 0, y1: 5, z0: 0, z1: 5 } }, [0, 4])
    expect(v.count(LIVER)).toBe(5 * 16)
  })
})

describe('KeySlices', () => {
  it('keeps one-slice strokes per axis and organ, sorted, with the union of their boxes', () => {
    const keys = new KeySlices()
    keys.add({ x0: 1, x1: 3, y0: 1, y1: 2, z0: 6, z1: 6 }, 2, LIVER)
    keys.add({ x0: 0, x1: 2, y0: 2, y1: 4, z0: 2, z1: 2 }, 2, LIVER)
    keys.add({ x0: 0, x1: 2, y0: 2, y1: 4, z0: 3, z1: 4 }, 2, LIVER) // two slices: not a key slice
    keys.add({ x0: 0, x1: 9, y0: 0, y1: 9, z0: 4, z1: 4 }, 2, 1) // another organ
    expect(keys.slices(2, LIVER)).toEqual({ slices: [2, 6], box: { x0: 0, x1: 3, y0: 1, y1: 4, z0: 2, z1: 6 } })
    keys.forget(2, LIVER)
    expect(keys.slices(2, LIVER)).toEqual({ slices: [], box: null })
    expect(keys.slices(2, 1).slices).toEqual([4])
  })
})
