// GET /api/cases/{id}/members/ (api.ts's `api.members`): the ensemble members' probabilities of one organ cropped to a
// hotspot's box, their base64 arrays decoded into bytes.
import { api, type MemberCropsBody } from '../api'

/** The members' crop with its arrays as bytes: uint8, x fastest, of the box's shape. */
export type MemberCrops = Omit<MemberCropsBody, 'members' | 'mean' | 'region'> & {
  members: { name: string; probability: Uint8Array }[] // p x 255
  mean: Uint8Array // the members' mean probability x 255
  region: Uint8Array | null // the hotspot's attention region, dilated by one voxel (1 inside)
}

/** The bytes of a base64 string. */
export function bytes(b64: string): Uint8Array {
  const text = atob(b64)
  const out = new Uint8Array(text.length)
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i)
  return out
}

/** The crop of the box lo..hi (file voxel indices, inclusive) for `organ`, its region the attention component at
 * `seed` (rounded to a voxel). */
export async function fetchMembers(caseId: number, organ: string, lo: number[], hi: number[],
  seed: number[]): Promise<MemberCrops> {
  const body = await api.members(caseId, organ, [...lo, ...hi], seed.map(Math.round))
  return { ...body, members: body.members.map((m) => ({ name: m.name, probability: bytes(m.probability) })),
    mean: bytes(body.mean), region: body.region ? bytes(body.region) : null }
}
