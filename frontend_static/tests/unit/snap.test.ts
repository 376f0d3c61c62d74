import { describe, expect, it } from 'vitest'
import { nearDistance, snapEdge, type SnapInput } from '../../src/viewer/ops/snap'
import { random, Volume } from './volume'

describe('nearDistance', () => {
  it('is the squared distance to the nearest wanted voxel, exact up to R squared, R squared + 1 beyond', () => {
    const next = random(3)
    for (let trial = 0; trial < 20; trial++) {
      const shape = [3 + Math.floor(next() * 8), 3 + Math.floor(next() * 8), 1 + Math.floor(next() * 5)]
      const v = new Volume(shape)
      for (let i = 0; i < v.data.length; i++) v.data[i] = next() < 0.1 ? 1 : 0
      const R = 1 + Math.floor(next() * 4)
      const got = nearDistance(v.data, 1, shape, R)
      for (let z = 0; z < shape[2]; z++) for (let y = 0; y < shape[1]; y++) for (let x = 0; x < shape[0]; x++) {
        let best = Infinity
        for (let c = 0; c < shape[2]; c++) for (let b = 0; b < shape[1]; b++) for (let a = 0; a < shape[0]; a++) {
          if (v.get(a, b, c) === 1) best = Math.min(best, (a - x) ** 2 + (b - y) ** 2 + (c - z) ** 2)
        }
        expect(got[v.index(x, y, z)]).toBe(best <= R * R ? best : R * R + 1)
      }
    }
  })
})

describe('snapEdge', () => {
  // a box of 20 x 20 x 10: the organ (60 HU) at x 6..13, y 6..13, z 3..6 in fat (-80 HU)
  const shape = [20, 20, 10]
  const truth = new Volume(shape).block(6, 13, 6, 13, 3, 6, 1)
  const ct = Float32Array.from(truth.data, (t) => (t ? 60 : -80))
  const everywhere = new Uint8Array(truth.data.length).fill(1)
  const input = (organ: Uint8Array, extra: Partial<SnapInput> = {}): SnapInput => ({ shape, organ, ct,
    region: everywhere, locked: null, reach: 1, ...extra })

  it('moves a label one voxel too large back to the edge the CT shows', () => {
    const label = new Volume(shape).block(5, 14, 5, 14, 3, 6, 1)
    const { organ, band } = snapEdge(input(label.data))
    expect(band).toBeGreaterThan(0)
    expect(organ).toEqual(truth.data)
  })

  it('moves a label one voxel too small out to the edge', () => {
    const label = new Volume(shape).block(6, 12, 6, 13, 3, 6, 1) // misses the layer at x = 13
    expect(snapEdge(input(label.data)).organ).toEqual(truth.data)
  })

  it('changes nothing where locked or outside the region', () => {
    const label = new Volume(shape).block(5, 14, 5, 14, 3, 6, 1)
    const locked = new Volume(shape).block(14, 14, 0, 19, 0, 9, 1) // the layer at x = 14: another organ's
    const region = new Volume(shape, 1).block(0, 19, 0, 4, 0, 9, 0).block(0, 19, 5, 5, 0, 9, 0) // not y <= 5
    const { organ } = snapEdge(input(label.data, { locked: locked.data, region: region.data }))
    const expected = new Volume(shape).block(6, 13, 5, 13, 3, 6, 1).block(14, 14, 5, 14, 3, 6, 1)
    expected.block(5, 5, 5, 5, 3, 6, 1) // the corner column (x 5, y 5) lies in the layer y = 5: outside the region
    expect(organ).toEqual(expected.data)
  })

  it('with no region, or no organ deeper than reach, returns the label as it is', () => {
    const label = new Volume(shape).block(5, 14, 5, 14, 3, 6, 1)
    expect(snapEdge(input(label.data, { region: new Uint8Array(label.data.length) }))).toEqual(
      { organ: label.data, band: 0 })
    const thin = new Volume(shape).block(5, 14, 5, 5, 3, 6, 1) // one voxel thick: no core
    expect(snapEdge(input(thin.data)).organ).toEqual(thin.data)
  })
})
