// POST /api/cases/{id}/click/ (api.ts's `api.click`): the crop, the organ's label in it (packed bits, base64) and the
// prompts out; the engine's mask back, unpacked. A 503 (the engine stayed busy for the server's whole wait) is told
// apart by busyOf().
import { ApiError, api, type ClickInput, type ClickOutput } from '../api'
import { type Crop, cropShape, cropVoxels, packBits, unpackBits } from '../viewer/ops/click'
import { bytes } from './membersApi'

/** base64 of bytes (in chunks: String.fromCharCode takes a bounded number of arguments). */
export function base64(data: Uint8Array): string {
  let text = ''
  for (let k = 0; k < data.length; k += 0x8000) text += String.fromCharCode(...data.subarray(k, k + 0x8000))
  return btoa(text)
}

/** The answer with its mask as 1 / 0 per crop voxel (file order, x fastest), and the round trip in ms. */
export type ClickAnswer = Omit<ClickOutput, 'mask'> & { mask: Uint8Array; ms: number }

/** The prompts of one request (file voxel indices), without the crop and the label. */
export type ClickPrompts = Omit<ClickInput, 'box' | 'label'>

/** One click: `label` is the organ in the crop (1 / 0 per voxel, file order, x fastest). */
export async function sendClick(caseId: number, crop: Crop, label: Uint8Array,
  prompts: ClickPrompts): Promise<ClickAnswer> {
  const t0 = performance.now()
  const body = await api.click(caseId, { ...prompts, box: [crop.lo, crop.hi], label: base64(packBits(label)) })
  const shape = cropShape(crop)
  if (body.shape.join() !== shape.join()) {
    throw new Error(`the engine answered a crop of ${body.shape.join(' x ')}, not the ${shape.join(' x ')} sent`)
  }
  return { ...body, mask: unpackBits(bytes(body.mask), cropVoxels(crop)), ms: performance.now() - t0 }
}

/** A 503's figures (how long the server waited, requests running), or null for any other error. */
export function busyOf(error: unknown): { waited: number; running: number } | null {
  if (!(error instanceof ApiError) || error.status !== 503) return null
  const { waited, running } = error.body
  return { waited: typeof waited === 'number' ? waited : 0, running: typeof running === 'number' ? running : 0 }
}
