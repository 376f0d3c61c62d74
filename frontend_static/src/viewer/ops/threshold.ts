// The local threshold's rule on the members' mean (workspace/tools/useMembers.ts). The server sends the mean as uint8
// p x 255 rounded half down (ml_engine/ensemble.py, mean_of_sum), so that `mean > 127` is exactly the pseudo-label's
// mask (the exact mean > 0.5, ties outside). The page mirrors the server's integer form of "mean > t"
// (pseudo_mask_of_sum: total > floor(t x 255 x n)) on the mean: the organ where mean > floor(t x 255). At t = 0.5
// that is mean > 127, the pseudo-label's own mask, voxel for voxel; elsewhere the uint8 mean is as close as it gets.

/** The largest mean (uint8 p x 255) left out at threshold `t` (0..1, read to hundredths, as the slider's steps). */
export function meanBound(t: number): number {
  return Math.floor((Math.round(t * 100) * 255) / 100) // integers: 0.5 -> 127 (127.5 floored), 0.4 -> 102
}

/** Whether a voxel of mean `mean` (uint8 p x 255) is the organ at threshold `t`. */
export function aboveThreshold(mean: number, t: number): boolean {
  return mean > meanBound(t)
}
