// The only module that talks to the server: the Atlas REST API with the session cookie and the CSRF header.
import type { components } from './api-schema'

// Every type of a request or a response is generated from the server's OpenAPI schema (openapi.yml -> api-schema.ts,
// `make schema`), so that a change of a response on one side breaks the build on the other.
type Schemas = components['schemas']

// --- the annotator's workspace ---
export type Me = Schemas['Me']
export type Hotspot = Schemas['Hotspot']
export type TaskOrgan = Schemas['TaskOrgan']
export type Task = Schemas['Task']
export type QueueTask = Schemas['QueueTask']
export type Readiness = Schemas['Readiness']
export type LabelSet = Schemas['LabelSet']
export type ErrorTag = Schemas['ErrorTag']
export type Revision = Schemas['Revision']
/** GET /api/cases/{id}/members/ as sent: the arrays are base64 (workspace/membersApi.ts decodes them). */
export type MemberCropsBody = Schemas['MemberCrops']
/** The click tool (workspace/clickApi.ts packs and unpacks the masks): the engines, one click's request and answer. */
export type Engines = Schemas['Engines']
export type ClickEngine = Schemas['ClickModel']
export type ClickInput = Schemas['ClickInput']
export type ClickOutput = Schemas['ClickOutput']

export class ApiError extends Error {
  status: number
  body: Record<string, unknown>

  constructor(status: number, body: Record<string, unknown>) {
    super(typeof body.detail === 'string' ? body.detail : `HTTP ${status}: ${JSON.stringify(body)}`)
    this.status = status
    this.body = body
  }
}

function csrfToken(): string {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/)
  return match ? decodeURIComponent(match[1]) : ''
}

export async function request<T>(method: string, url: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' }
  let payload: BodyInit | undefined
  if (body instanceof FormData) {
    payload = body
  } else if (body !== undefined) {
    headers['Content-Type'] = 'application/json'
    payload = JSON.stringify(body)
  }
  if (method !== 'GET') headers['X-CSRFToken'] = csrfToken()
  const response = await fetch(url, { method, headers, body: payload, credentials: 'same-origin' })
  if (response.status === 204) return null as T
  const text = await response.text()
  let data: Record<string, unknown> = {}
  try {
    data = text ? (JSON.parse(text) as Record<string, unknown>) : {}
  } catch {
    data = { detail: text.slice(0, 300) }
  }
  if (!response.ok) throw new ApiError(response.status, data)
  return data as T
}

export const api = {
  me: () => request<Me>('GET', '/api/me/'),
  login: (username: string, password: string) => request<Me>('POST', '/api/auth/login/', { username, password }),
  logout: () => request<null>('POST', '/api/auth/logout/'),
  queue: () => request<QueueTask[]>('GET', '/api/queue/'),
  readiness: () => request<Readiness>('GET', '/api/readiness/'),
  next: () => request<Task | null>('POST', '/api/tasks/next/'),
  heartbeat: (task: number) => request<QueueTask>('POST', `/api/tasks/${task}/heartbeat/`),
  labelSet: (caseId: number) => request<LabelSet>('GET', `/api/cases/${caseId}/label-set/`),
  errorTags: () => request<ErrorTag[]>('GET', '/api/error-tags/'),
  submit: (task: number, file: Uint8Array, baseRevision: number | null, tags: Record<string, string[]>,
    seconds: number) => {
    const form = new FormData()
    form.append('file', new Blob([file as BlobPart], { type: 'application/gzip' }), 'label.nii.gz')
    form.append('base_revision', baseRevision === null ? '' : String(baseRevision))
    form.append('tags', JSON.stringify(tags))
    form.append('seconds_spent', seconds.toFixed(1))
    return request<Revision>('POST', `/api/tasks/${task}/revisions/`, form)
  },
  confirm: (task: number, baseRevision: number | null, seconds: number) =>
    request<Revision>('POST', `/api/tasks/${task}/confirm/`, { base_revision: baseRevision, seconds_spent: seconds }),
  skip: (task: number, reason: string) => request<QueueTask>('POST', `/api/tasks/${task}/skip/`, { reason }),
  members: (caseId: number, organ: string, box: number[], seed: number[]) => {
    const query = new URLSearchParams({ organ, box: box.join(','), seed: seed.join(',') })
    return request<MemberCropsBody>('GET', `/api/cases/${caseId}/members/?${query}`)
  },
  interactive: () => request<Engines>('GET', '/api/interactive/'),
  click: (caseId: number, body: ClickInput) => request<ClickOutput>('POST', `/api/cases/${caseId}/click/`, body),
}

// --- the lead dashboard (GET /api/dashboard/..., POST /api/tasks/assign/, POST /api/rounds/start/) ---------------

export type AnnotatorRow = Schemas['AnnotatorRow']
export type OrganRow = Schemas['OrganRow']
export type Lease = Schemas['Lease']
export type Pace = Schemas['Pace']
export type Overview = Schemas['Overview']
export type RankedTask = Schemas['RankedTask']
export type RankedPage = Schemas['RankedPage']
export type CurvePoint = Schemas['CurvePoint']
export type AttentionCurve = Schemas['AttentionCurve']
export type Validation = Schemas['Validation']
export type RoundQuality = Schemas['RoundQuality']
export type JobRow = Schemas['JobRow']
export type RoundState = Schemas['RoundState']
export type JobsBoard = Schemas['JobsBoard']
export type RoundSummary = Schemas['RoundSummary']
export type RefreshAccepted = Schemas['RefreshAccepted']
export type RoundMember = Schemas['RoundMember']
export type MemberRow = Schemas['MemberRow']
export type Matrix = Schemas['LabelBias']['mean']
export type StartRoundBody = Pick<Schemas['StartRound'], 'archs' | 'size' | 'steps' | 'epochs'>
export type AssignBody = Schemas['Assign']

// issue 26: the audit panel
export type AuditBoard = Schemas['AuditBoard']
export type AuditEstimate = Schemas['EstimateOut']
export type AuditKeyEstimates = Schemas['KeyEstimates']
export type AuditRoundRow = Schemas['AuditRoundRow']
export const auditApi = {
  board: (round?: number) => request<AuditBoard>('GET', `/api/dashboard/audit/${round === undefined ? '' : `?round=${round}`}`),
}

export const dashboardApi = {
  overview: (round?: number) => request<Overview>('GET', `/api/dashboard/${round === undefined ? '' : `?round=${round}`}`),
  tasks: (offset: number, limit: number, status: string) =>
    request<RankedPage>('GET', `/api/dashboard/tasks/?offset=${offset}&limit=${limit}${status ? `&status=${status}` : ''}`),
  assign: (body: AssignBody) => request<Schemas['Assigned']>('POST', '/api/tasks/assign/', body),
  attention: () => request<Schemas['AttentionCurves']>('GET', '/api/dashboard/attention/'),
  quality: () => request<Schemas['Qualities']>('GET', '/api/dashboard/quality/'),
  refreshQuality: (round: number) => request<RefreshAccepted>('POST', '/api/dashboard/quality/refresh/', { round }),
  jobs: () => request<JobsBoard>('GET', '/api/dashboard/jobs/'),
  members: () => request<Schemas['Members']>('GET', '/api/dashboard/members/'),
  startRound: (body: StartRoundBody) => request<RoundSummary>('POST', '/api/rounds/start/', body),
}
