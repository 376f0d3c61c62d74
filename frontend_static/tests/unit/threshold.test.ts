import { describe, expect, it } from 'vitest'
import { aboveThreshold, meanBound } from '../../src/viewer/ops/threshold'

/** ml_engine/ensemble.py's mean_of_sum: the members' total / n as uint8, rounded half down. */
function meanOfSum(total: number, n: number): number {
  const q = Math.floor(total / n)
  const r = total - q * n
  return q + (2 * r > n ? 1 : 0)
}

/** ml_engine/ensemble.py's pseudo_mask_of_sum: the exact mean > t, in integers. */
function pseudoMask(total: number, n: number, t: number): boolean {
  return total > Math.floor(t * 255 * n)
}

describe('the local threshold on the members\' mean', () => {
  it('at 0.5 gives the pseudo-label\'s mask exactly, for every total of 1 to 6 members (ties included)', () => {
    for (let n = 1; n <= 6; n++) {
      for (let total = 0; total <= 255 * n; total++) {
        expect(aboveThreshold(meanOfSum(total, n), 0.5), `n=${n} total=${total}`).toBe(pseudoMask(total, n, 0.5))
      }
    }
  })

  it('an exact mean of 0.5 (127.5) is outside, as on the server', () => {
    expect(meanOfSum(255, 2)).toBe(127)
    expect(aboveThreshold(127, 0.5)).toBe(false)
    expect(aboveThreshold(128, 0.5)).toBe(true)
  })

  it('reads the slider\'s hundredths exactly (no float drift across an integer)', () => {
    expect([0.2, 0.25, 0.4, 0.45, 0.5, 0.55, 0.6, 0.8].map(meanBound)).toEqual([51, 63, 102, 114, 127, 140, 153, 204])
  })

  it('never keeps a voxel the server\'s rule leaves out, where t x 255 has a fraction of a half or less', () => {
    for (const t of [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]) {
      for (let n = 2; n <= 4; n++) {
        for (let total = 0; total <= 255 * n; total++) {
          if (aboveThreshold(meanOfSum(total, n), t)) expect(pseudoMask(total, n, t), `t=${t} n=${n}`).toBe(true)
        }
      }
    }
  })
})
