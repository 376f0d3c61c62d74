import { describe, expect, it } from 'vitest'
import { boxOfIndices, clipBox, EditHistory, type Policy, unionBox } from '../../src/viewer/edits'
import { random, Volume } from './volume'

const LIVER = 5
const SPLEEN = 1
const brush: Policy = { tool: 'brush', active: LIVER, protectOthers: true }

describe('EditHistory.accept: the overwrite policy', () => {
  it('paints the active organ over background, refuses another organ under protection and puts it back', () => {
    const v = new Volume([4, 3, 2])
    v.set(1, 1, 0, SPLEEN)
    const history = new EditHistory(v.data, v.dims)
    const live = v.data.slice()
    live[v.index(0, 0, 0)] = LIVER
    live[v.index(1, 1, 0)] = LIVER
    expect(history.accept(live, brush)).toEqual({ changed: 1, refused: 1 })
    expect(live[v.index(1, 1, 0)]).toBe(SPLEEN) // put back in the viewer's copy
    expect(history.committed[v.index(0, 0, 0)]).toBe(LIVER)
    expect(history.depth).toEqual([1, 0])
    expect(history.dirty).toBe(true)
  })

  it('paints over another organ without protection', () => {
    const v = new Volume([4, 3, 2])
    v.set(1, 1, 0, SPLEEN)
    const history = new EditHistory(v.data, v.dims)
    const live = v.data.slice()
    live[v.index(1, 1, 0)] = LIVER
    expect(history.accept(live, { ...brush, protectOthers: false })).toEqual({ changed: 1, refused: 0 })
    expect(history.committed[v.index(1, 1, 0)]).toBe(LIVER)
  })

  it('the eraser removes the active organ only', () => {
    const v = new Volume([4, 3, 2])
    v.set(0, 0, 0, LIVER)
    v.set(1, 0, 0, SPLEEN)
    const history = new EditHistory(v.data, v.dims)
    const live = v.data.slice()
    live[v.index(0, 0, 0)] = 0
    live[v.index(1, 0, 0)] = 0
    expect(history.accept(live, { tool: 'eraser', active: LIVER, protectOthers: false }))
      .toEqual({ changed: 1, refused: 1 })
    expect([...history.committed.subarray(0, 2)]).toEqual([0, SPLEEN])
  })

  it('an HU range (allow) limits the voxels that may change', () => {
    const v = new Volume([8, 1, 1])
    const history = new EditHistory(v.data, v.dims)
    const live = new Uint8Array(8).fill(LIVER)
    const result = history.accept(live, { ...brush, allow: (i) => i % 2 === 0 })
    expect(result).toEqual({ changed: 4, refused: 4 })
    expect([...live]).toEqual([5, 0, 5, 0, 5, 0, 5, 0])
  })

  it('a stroke the policy refuses entirely makes no step', () => {
    const v = new Volume([4, 3, 2], SPLEEN)
    const history = new EditHistory(v.data, v.dims)
    const live = v.data.slice().fill(LIVER)
    expect(history.accept(live, brush)).toEqual({ changed: 0, refused: 24 })
    expect(history.depth).toEqual([0, 0])
    expect(history.dirty).toBe(false)
  })

  it('with a box, gives what a whole-volume scan gives for strokes inside it (aligned words and ragged rows)', () => {
    const next = random(7)
    for (let trial = 0; trial < 50; trial++) {
      const dims = [5 + Math.floor(next() * 20), 1 + Math.floor(next() * 6), 1 + Math.floor(next() * 4)]
      const v = new Volume(dims)
      for (let i = 0; i < v.data.length; i++) v.data[i] = [0, 0, LIVER, SPLEEN][Math.floor(next() * 4)]
      const box = clipBox({ x0: Math.floor(next() * dims[0]), x1: Math.floor(next() * dims[0] * 1.5),
        y0: Math.floor(next() * dims[1]), y1: dims[1] - 1, z0: 0, z1: Math.floor(next() * dims[2]) }, dims)
      if (!box) continue
      const live = v.data.slice()
      for (let z = box.z0; z <= box.z1; z++) for (let y = box.y0; y <= box.y1; y++) {
        for (let x = box.x0; x <= box.x1; x++) if (next() < 0.5) live[v.index(x, y, z)] = next() < 0.5 ? 0 : LIVER
      }
      const policy = { ...brush, protectOthers: next() < 0.5 }
      const boxed = new EditHistory(v.data, dims)
      const whole = new EditHistory(v.data, dims)
      const liveBoxed = live.slice()
      const liveWhole = live.slice()
      expect(boxed.accept(liveBoxed, policy, box)).toEqual(whole.accept(liveWhole, policy))
      expect(boxed.committed).toEqual(whole.committed)
      expect(liveBoxed).toEqual(liveWhole)
    }
  })
})

describe('EditHistory: undo, redo, changes, rebase', () => {
  function twoStrokes() {
    const v = new Volume([6, 4, 3])
    v.set(2, 2, 1, SPLEEN)
    const history = new EditHistory(v.data, v.dims)
    const live = v.data.slice()
    live[v.index(0, 0, 0)] = LIVER
    live[v.index(1, 0, 0)] = LIVER
    history.accept(live, brush)
    const afterFirst = live.slice()
    live[v.index(5, 3, 2)] = LIVER
    history.accept(live, brush)
    return { v, history, live, afterFirst }
  }

  it('undo restores the label before the stroke and returns the box it touched; redo replays it', () => {
    const { v, history, live, afterFirst } = twoStrokes()
    const afterSecond = live.slice()
    expect(history.undo(live)).toEqual({ x0: 5, x1: 5, y0: 3, y1: 3, z0: 2, z1: 2 })
    expect(live).toEqual(afterFirst)
    expect(history.committed).toEqual(afterFirst)
    expect(history.undo(live)).toEqual({ x0: 0, x1: 1, y0: 0, y1: 0, z0: 0, z1: 0 })
    expect(live).toEqual(v.data)
    expect(history.undo(live)).toBeNull()
    expect(history.depth).toEqual([0, 2])
    expect(history.dirty).toBe(false)
    history.redo(live)
    history.redo(live)
    expect(live).toEqual(afterSecond)
    expect(history.redo(live)).toBeNull()
  })

  it('a new stroke after an undo drops the redo stack', () => {
    const { v, history, live } = twoStrokes()
    history.undo(live)
    expect(history.canRedo).toBe(true)
    live[v.index(3, 3, 0)] = LIVER
    history.accept(live, brush)
    expect(history.canRedo).toBe(false)
    expect(history.depth).toEqual([2, 0])
  })

  it('newest is the newest step, by identity', () => {
    const { history, live } = twoStrokes()
    const second = history.newest
    history.undo(live)
    expect(history.newest).not.toBe(second)
    history.redo(live)
    expect(history.newest).toBe(second)
  })

  it('changes() counts voxels changed and each organ gained or lost against the loaded label', () => {
    const { v, history, live } = twoStrokes()
    live[v.index(2, 2, 1)] = LIVER // over the spleen, without protection
    history.accept(live, { ...brush, protectOthers: false })
    const { voxels, byValue } = history.changes()
    expect(voxels).toBe(4)
    expect(Object.fromEntries(byValue)).toEqual({ [LIVER]: 4, [SPLEEN]: 1 })
  })

  it('rebase keeps our changed voxels over a newer label, the newer label elsewhere', () => {
    const { v, history } = twoStrokes()
    const latest = new Volume(v.dims)
    latest.set(0, 0, 0, SPLEEN) // the other annotator's spleen where we painted liver: ours wins
    latest.set(4, 0, 0, SPLEEN) // theirs elsewhere stays
    const { history: rebased, kept } = history.rebase(latest.data)
    expect(kept).toBe(3)
    expect(latest.get(0, 0, 0)).toBe(LIVER)
    expect(latest.get(4, 0, 0)).toBe(SPLEEN)
    expect(latest.get(2, 2, 1)).toBe(0) // our loaded spleen voxel was not ours to keep: theirs (background)
    expect(rebased.dirty).toBe(true)
    expect(rebased.depth).toEqual([0, 0])
  })

  it('refuses a label whose size is not the dims', () => {
    expect(() => new EditHistory(new Uint8Array(5), [2, 2, 2])).toThrow(/5 voxels/)
  })
})

describe('boxes', () => {
  it('unionBox, clipBox, boxOfIndices', () => {
    const a = { x0: 1, x1: 2, y0: 0, y1: 0, z0: 3, z1: 4 }
    const b = { x0: 0, x1: 1, y0: 2, y1: 5, z0: 4, z1: 4 }
    expect(unionBox(a, null)).toBe(a)
    expect(unionBox(a, b)).toEqual({ x0: 0, x1: 2, y0: 0, y1: 5, z0: 3, z1: 4 })
    expect(clipBox({ x0: -3, x1: 9, y0: 1, y1: 1, z0: 0, z1: 0 }, [4, 3, 2])).toEqual(
      { x0: 0, x1: 3, y0: 1, y1: 1, z0: 0, z1: 0 })
    expect(clipBox({ x0: 5, x1: 9, y0: 0, y1: 0, z0: 0, z1: 0 }, [4, 3, 2])).toBeNull()
    const v = new Volume([4, 3, 2])
    expect(boxOfIndices(Uint32Array.of(v.index(3, 0, 1), v.index(1, 2, 0)), v.dims)).toEqual(
      { x0: 1, x1: 3, y0: 0, y1: 2, z0: 0, z1: 1 })
    expect(boxOfIndices(new Uint32Array(0), v.dims)).toBeNull()
  })
})
