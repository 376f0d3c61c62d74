import { describe, expect, it } from 'vitest'
import { EditHistory, type Box, type Policy } from '../../src/viewer/edits'
import { type AxisMap, cropOffsetTerms } from '../../src/viewer/geometry'
import { cropAround, cropShape, cropVoxels, fitPoints, inCrop, packBits, readCrop, unpackBits, writeCrop }
  from '../../src/viewer/ops/click'
import { base64 } from '../../src/workspace/clickApi'
import { bytes } from '../../src/workspace/membersApi'
import { random, Volume } from './volume'

const LIVER = 5
const SPLEEN = 1

describe('packBits / unpackBits: the server\'s np.packbits(..., bitorder="little"), x fastest', () => {
  it('puts voxel k in bit k % 8 of byte k / 8', () => {
    // np.packbits([1, 1, 0, 1, 0, 0, 0, 0, 1], bitorder="little") == [11, 1]; base64 "CwE="
    const packed = packBits([1, 1, 0, 1, 0, 0, 0, 0, 1])
    expect(Array.from(packed)).toEqual([11, 1])
    expect(base64(packed)).toBe('CwE=')
    expect(Array.from(unpackBits(bytes('CwE='), 9))).toEqual([1, 1, 0, 1, 0, 0, 0, 0, 1])
    expect(Array.from(packBits([0, 0, 0, 0, 0, 0, 0, 1]))).toEqual([128])
    expect(packBits([]).length).toBe(0)
  })

  it('orders a crop x fastest, then y, then z (numpy\'s ravel(order="F") of an (x, y, z) array)', () => {
    const [w, h] = [3, 2]
    const mask = new Uint8Array(3 * 2 * 2)
    const at = (x: number, y: number, z: number) => x + w * (y + h * z)
    mask[at(2, 0, 0)] = 1 // offset 2
    mask[at(0, 1, 0)] = 1 // offset 3
    mask[at(0, 0, 1)] = 1 // offset 6
    expect(Array.from(packBits(mask))).toEqual([0b01001100, 0])
  })

  it('round-trips any length, non-zero values counting as 1', () => {
    const next = random(7)
    for (const n of [1, 7, 8, 9, 63, 64, 65, 1000]) {
      const bits = Uint8Array.from({ length: n }, () => (next() < 0.4 ? 1 + Math.floor(next() * 9) : 0))
      const back = unpackBits(packBits(bits), n)
      expect(Array.from(back)).toEqual(Array.from(bits, (b) => (b ? 1 : 0)))
    }
  })

  it('refuses packed bits of the wrong length', () => {
    expect(() => unpackBits(new Uint8Array(2), 17)).toThrow(/cannot hold 17 voxels/)
    expect(() => unpackBits(new Uint8Array(3), 16)).toThrow()
  })

  it('base64 of a crop larger than one chunk of String.fromCharCode', () => {
    const data = Uint8Array.from({ length: 100_003 }, (_, k) => (k * 31) & 255)
    expect(Array.from(bytes(base64(data)))).toEqual(Array.from(data))
  })
})

describe('cropAround: a cube of mm around the prompt, in voxels of each axis, clipped', () => {
  const spacing = [1.5, 1.5, 2.5]
  const dims = [100, 100, 40]

  it('is half the side each way, converted with the spacing', () => {
    const crop = cropAround([50, 50, 20], 96, spacing, dims)
    expect(crop).toEqual({ lo: [18, 18, 1], hi: [82, 82, 39] }) // 48 / 1.5 = 32 voxels, 48 / 2.5 = 19.2 -> 19
    expect(cropShape(crop)).toEqual([65, 65, 39])
    expect(cropVoxels(crop)).toBe(65 * 65 * 39)
  })

  it('is clipped to the volume', () => {
    expect(cropAround([3, 97, 0], 96, spacing, dims)).toEqual({ lo: [0, 65, 0], hi: [35, 99, 19] })
    expect(cropAround([50, 50, 20], 1000, spacing, dims)).toEqual({ lo: [0, 0, 0], hi: [99, 99, 39] })
  })

  it('rounds a centre between voxels and keeps at least one voxel each way', () => {
    expect(cropAround([10.5, 10, 10], 1, [2, 2, 2], dims)).toEqual({ lo: [10, 9, 9], hi: [12, 11, 11] })
  })

  it('grows to hold the prompt (a long scribble, a box) and says what lies inside', () => {
    const crop = cropAround([50, 50, 20], 30, spacing, dims, [[5, 50, 20], [95, 52, 20]])
    expect(crop).toEqual({ lo: [5, 40, 14], hi: [95, 60, 26] })
    expect(inCrop(crop, [5, 40, 14])).toBe(true)
    expect(inCrop(crop, [4, 50, 20])).toBe(false)
    expect(inCrop(crop, [50, 50, 27])).toBe(false)
  })
})

/** A viewer grid of `dims` whose x runs backwards along the file's x and whose y and z are the file's z and y. */
function permuted(dims: number[]): AxisMap {
  return { axes: [{ f: 0, flip: true }, { f: 2, flip: false }, { f: 1, flip: false }],
    fileDims: [dims[0], dims[2], dims[1]] }
}

describe('readCrop / writeCrop: the crop (file order) against the label (viewer order)', () => {
  it('reads the organ into the crop through flipped and permuted axes', () => {
    const v = new Volume([5, 4, 3]) // viewer dims
    const g = permuted(v.dims)
    v.set(4, 1, 2, LIVER) // file (0, 2, 1)
    v.set(2, 2, 1, LIVER) // file (2, 1, 2)
    v.set(1, 1, 1, SPLEEN)
    // the crop: file x 0..2, y 1..2, z 1..2 -> viewer x 2..4, y (file z) 1..2, z (file y) 1..2
    const lo = [0, 1, 1]
    const shape = [3, 2, 2]
    const box: Box = { x0: 2, x1: 4, y0: 1, y1: 2, z0: 1, z1: 2 }
    const terms = cropOffsetTerms(g, lo, shape, box)
    const crop = readCrop(v.data, v.dims, box, terms, 12, LIVER)
    const at = (x: number, y: number, z: number) => (x - lo[0]) + 3 * ((y - lo[1]) + 2 * (z - lo[2]))
    const expected = new Uint8Array(12)
    expected[at(0, 2, 1)] = 1
    expected[at(2, 1, 2)] = 1
    expect(Array.from(crop)).toEqual(Array.from(expected))
    // written back, the same mask changes nothing
    const before = v.data.slice()
    writeCrop(v.data, v.dims, box, terms, crop, LIVER)
    expect(Array.from(v.data)).toEqual(Array.from(before))
  })

  it('writes the organ where the mask says, removes it where not, leaves other organs outside the mask', () => {
    const v = new Volume([4, 4, 2])
    v.block(0, 1, 0, 3, 0, 1, LIVER)
    v.set(3, 3, 1, SPLEEN)
    const g: AxisMap = { axes: [0, 1, 2].map((f) => ({ f, flip: false })), fileDims: v.dims }
    const box: Box = { x0: 1, x1: 3, y0: 0, y1: 3, z0: 1, z1: 1 }
    const terms = cropOffsetTerms(g, [1, 0, 1], [3, 4, 1], box)
    const mask = new Uint8Array(12)
    mask[1 + 3 * 2] = 1 // viewer (2, 2, 1)
    writeCrop(v.data, v.dims, box, terms, mask, LIVER)
    expect(v.where(LIVER)).toEqual([...new Volume([4, 4, 2]).block(0, 1, 0, 3, 0, 0, 1).where(1),
      '0,0,1', '0,1,1', '0,2,1', '2,2,1', '0,3,1'].sort(byZyx))
    expect(v.get(3, 3, 1)).toBe(SPLEEN)
  })
})

function byZyx(a: string, b: string): number {
  const [ax, ay, az] = a.split(',').map(Number)
  const [bx, by, bz] = b.split(',').map(Number)
  return az - bz || ay - by || ax - bx
}

describe('a click\'s mask applied as one edit: "protect other organs" and the HU range', () => {
  // 6 x 4 x 1: liver at x 0..1, spleen at x 4..5; the engine proposes liver at x 1..4 (over the spleen's x = 4) and
  // not at x = 0; the HU range allows every voxel but those at y = 3
  const setUp = () => {
    const v = new Volume([6, 4, 1])
    v.block(0, 1, 0, 3, 0, 0, LIVER).block(4, 5, 0, 3, 0, 0, SPLEEN)
    const g: AxisMap = { axes: [0, 1, 2].map((f) => ({ f, flip: false })), fileDims: v.dims }
    const box: Box = { x0: 0, x1: 5, y0: 0, y1: 3, z0: 0, z1: 0 }
    const terms = cropOffsetTerms(g, [0, 0, 0], [6, 4, 1], box)
    const mask = new Uint8Array(24)
    for (let y = 0; y < 4; y++) for (let x = 1; x <= 4; x++) mask[x + 6 * y] = 1
    const history = new EditHistory(v.data, v.dims)
    const live = v.data.slice()
    writeCrop(live, v.dims, box, terms, mask, LIVER)
    return { v, box, history, live }
  }
  const allow = (v: Volume) => (i: number) => Math.floor(i / v.dims[0]) % v.dims[1] !== 3

  it('under protection, takes background only and keeps the other organ', () => {
    const { v, box, history, live } = setUp()
    const policy: Policy = { tool: 'click', active: LIVER, protectOthers: true }
    const result = history.accept(live, policy, box)
    expect(result).toEqual({ changed: 4 + 4 + 4, refused: 4 }) // x = 0 removed, x = 2, 3 added; x = 4 refused
    for (let y = 0; y < 4; y++) {
      expect([0, 1, 2, 3, 4, 5].map((x) => live[v.index(x, y, 0)])).toEqual([0, LIVER, LIVER, LIVER, SPLEEN, SPLEEN])
    }
    expect(history.depth).toEqual([1, 0])
    history.undo(live)
    expect(Array.from(live)).toEqual(Array.from(v.data)) // one edit: undone voxel for voxel
  })

  it('without protection, takes the other organ\'s voxels the mask covers', () => {
    const { v, box, history, live } = setUp()
    history.accept(live, { tool: 'click', active: LIVER, protectOthers: false }, box)
    expect([0, 1, 2, 3, 4, 5].map((x) => live[v.index(x, 0, 0)])).toEqual([0, LIVER, LIVER, LIVER, LIVER, SPLEEN])
  })

  it('changes nothing outside the HU range, neither adding nor removing the organ', () => {
    const { v, box, history, live } = setUp()
    history.accept(live, { tool: 'click', active: LIVER, protectOthers: true, allow: allow(v) }, box)
    expect([0, 1, 2, 3, 4, 5].map((x) => live[v.index(x, 0, 0)])).toEqual([0, LIVER, LIVER, LIVER, SPLEEN, SPLEEN])
    expect([0, 1, 2, 3, 4, 5].map((x) => live[v.index(x, 3, 0)])).toEqual([LIVER, LIVER, 0, 0, SPLEEN, SPLEEN])
    expect(history.committed).toEqual(live)
  })
})

describe('fitPoints: long scribbles thinned to the request\'s limit, the clicks kept', () => {
  const line = (n: number, y: number) => Array.from({ length: n }, (_, i) => [i, y, 3])
  it('leaves prompts that fit as they are', () => {
    expect(fitPoints(3, [line(10, 0)], 20)).toEqual([line(10, 0)])
  })
  it('keeps each scribble\'s ends and every k-th point, all within the limit', () => {
    const fitted = fitPoints(5, [line(3000, 0), line(500, 9)], 2048)!
    expect(fitted.reduce((n, s) => n + s.length, 0) + 5).toBeLessThanOrEqual(2048)
    for (const [i, s] of fitted.entries()) {
      const whole = i ? line(500, 9) : line(3000, 0)
      expect(s[0]).toEqual(whole[0])
      expect(s[s.length - 1]).toEqual(whole[whole.length - 1])
      // no gap wider than the same k in either stroke
      const gaps = s.slice(1).map((p, j) => p[0] - s[j][0])
      expect(Math.max(...gaps)).toBeLessThanOrEqual(3)
    }
  })
  it('gives up when the clicks alone exceed the limit', () => {
    expect(fitPoints(2049, [], 2048)).toBeNull()
  })
})
