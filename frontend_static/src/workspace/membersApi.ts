// GET /api/cases/{id}/members/: the ensemble members' probabilities of one organ cropped to a hotspot's box (kept
// apart from api.ts, whose types will be generated from the OpenAPI schema).
import { ApiError } from '../api'

export interface MemberCrops {
  organ: string
  box: number[][] // [[x0, y0, z0], [x1, y1, z1]]: file voxel indices, inclusive
  shape: number[]
  members: { name: string; probability: Uint8Array }[] // p x 255, x fastest, the box's shape
  mean: Uint8Array
  region: Uint8Array | null // the hotspot's attention region, dilated by one voxel (1 inside)
  agreement: number | null // smallest pairwise Dice of the members inside the region
  members_agree: boolean
}

function bytes(b64: string): Uint8Array {
  const text = atob(b64)
  const out = new Uint8Array(text.length)
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i)
  return out
}

export async function fetchMembers(caseId: number, organ: string, lo: number[], hi: number[],
  seed: number[]): Promise<MemberCrops> {
  const query = new URLSearchParams({ organ, box: [...lo, ...hi].join(','), seed: seed.map(Math.round).join(',') })
  const response = await fetch(`/api/cases/${caseId}/members/?${query}`, { credentials: 'same-origin',
    headers: { Accept: 'application/json' } })
  const body = await response.json().catch(() => ({ detail: `HTTP ${response.status}` }))
  if (!response.ok) throw new ApiError(response.status, body)
  return { ...body, members: body.members.map((m: { name: string; probability: string }) => ({ name: m.name,
    probability: bytes(m.probability) })), mean: bytes(body.mean), region: body.region ? bytes(body.region) : null }
}
