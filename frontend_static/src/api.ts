// The only module that talks to the server: the Atlas REST API with the session cookie and the CSRF header.

export interface Me {
  authenticated: boolean
  username: string
  role: 'annotator' | 'lead' | 'admin' | null
}

export interface Hotspot {
  voxels: number
  ml: number
  centroid: number[]
  bbox: number[][]
}

export interface TaskOrgan {
  name: string
  value: number
  display_name: string
  color: string
  size_ml: number
  voxels: number
  hotspots: Hotspot[]
}

export interface Task {
  id: number
  status: string
  priority: number
  round: number
  case: { id: number; name: string; dataset: string; shape: number[]; spacing: number[] }
  lease_expires: string | null
  review_comment: string
  base_revision: number | null
  organs: TaskOrgan[]
  urls: { ct: string; label: string; attention: string }
}

export interface QueueTask {
  id: number
  case: string
  round: number
  priority: number
  status: string
  lease_expires: string | null
  review_comment: string
}

export interface LabelSet {
  id: number
  name: string
  display_name: string
  organs: { value: number; name: string; display_name: string; color: string }[]
}

export interface ErrorTag {
  code: string
  name: string
  description: string
}

export interface Revision {
  id: number
  number: number
  kind: string
  changed_voxels: Record<string, number>
}

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

async function request<T>(method: string, url: string, body?: unknown): Promise<T> {
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
    data = text ? JSON.parse(text) : {}
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
}

// --- the lead dashboard (GET /api/dashboard/..., POST /api/tasks/assign/, POST /api/rounds/start/) ---------------

export interface AnnotatorRow {
  assigned: number
  leased: number
  revised: number
  confirmed: number
  skipped: number
  revised_all: number
  confirmed_all: number
  median_minutes: number | null
}

export interface OrganRow {
  attention_ml: number
  cases: number
  revised_cases: number
  revised_voxels: number
  tags: number
}

export interface Lease {
  task: number
  case: string
  priority: number
  holder: string
  leased_at: string | null
  expires: string | null
  held_minutes: number | null
  expired: boolean
}

export interface Pace {
  minutes_per_case: number
  hours: number
  working_days: number
  hours_per_day: number
}

export interface Overview {
  round: { number: number; status: string; converged: boolean | null } | null
  tasks_by_status: Record<string, number>
  by_annotator: Record<string, AnnotatorRow>
  by_organ: Record<string, OrganRow>
  leases: Lease[]
  annotators: string[]
  throughput_per_day: { day: string; revised: number; confirmed: number }[]
  per_day_by_annotator: { day: string; annotator: string; revised: number; confirmed: number }[]
  median_minutes_per_case: number
  pace: 'measured' | 'default'
  timed_revisions: number
  remaining_tasks: number
  time_left: Pace
  time_left_at_default_pace: Pace
}

export interface RankedTask {
  id: number
  rank: number
  open_rank: number | null
  case: string
  case_id: number
  priority: number
  status: string
  assignee: string | null
  lease_holder: string | null
  lease_expires: string | null
}

export interface RankedPage {
  round: number | null
  count: number
  open: number
  offset: number
  limit: number
  results: RankedTask[]
}

export interface CurvePoint {
  rank: number
  case_id: number
  case: string
  size_ml: number
  revised: boolean
  confirmed: boolean
}

export interface AttentionCurve {
  round: number
  status: string
  converged: boolean | null
  cases: CurvePoint[]
}

export type Matrix = (number | null)[][]

export interface Validation {
  arch: string
  model: string
  parent: string | null
  cases: string[]
  mean: number | null
  parent_mean: number | null
  dice: Record<string, number | null>
  parent_dice: Record<string, number | null>
}

export interface RoundQuality {
  round: number
  status: string
  converged: boolean | null
  created: string
  finished: string | null
  organs: string[]
  attention: { cases: number; total_ml: number; mean_ml: number | null; median_ml: number | null;
    p90_ml: number | null; max_ml: number | null; zero_cases: number }
  tasks: Record<string, number>
  pseudo_label_dice: { cases: number; mean: number | null;
    organs: Record<string, { mean: number | null; min: number; n: number }> }
  validation: Validation[]
  error_tags: { tags: string[]; organs: Record<string, Record<string, number>>; total: number }
  label_bias: { sources: string[]; cases: number; mean: Matrix; organs: Record<string, Matrix>;
    organ_cases: Record<string, number> } | null
  voxels: { total: number; labelled: number; changed_by_people: number; decided_by_ai: number;
    ai_share: number | null; people_share: number | null; people_share_of_all: number | null; cases: number;
    cases_revised: number; cases_confirmed: number } | null
  metrics: { computed: string | null; key: string | null; current_key: string; stale: boolean }
}

export interface JobRow {
  id: number
  key: string
  kind: string
  arch: string
  case: string | null
  status: string
  progress: number
  message: string
  error: string
  attempts: number
  started: string | null
  finished: string | null
}

export interface RoundState {
  number: number
  status: string
  converged: boolean | null
  error: string
  label_set: string
  settings: Record<string, unknown>
  created: string
  finished: string | null
  steps: Record<string, { total: number; succeeded: number }>
}

export interface JobsBoard {
  active: boolean
  can_start: boolean
  rounds: RoundState[]
  round: { number: number; status: string; error: string; converged: boolean | null; models: string[] } | null
  running: JobRow[]
  failed: JobRow[]
  recent: JobRow[]
  queued?: number
}

export interface StartRoundBody {
  archs: string[]
  size: string
  steps?: number | null
  epochs?: number | null
}

export const dashboardApi = {
  overview: (round?: number) => request<Overview>('GET', `/api/dashboard/${round === undefined ? '' : `?round=${round}`}`),
  tasks: (offset: number, limit: number, status: string) =>
    request<RankedPage>('GET', `/api/dashboard/tasks/?offset=${offset}&limit=${limit}${status ? `&status=${status}` : ''}`),
  assign: (body: { annotator: string | null; task_ids?: number[]; rank_from?: number; rank_to?: number }) =>
    request<{ assigned: number }>('POST', '/api/tasks/assign/', body),
  attention: () => request<{ rounds: AttentionCurve[] }>('GET', '/api/dashboard/attention/'),
  quality: () => request<{ rounds: RoundQuality[] }>('GET', '/api/dashboard/quality/'),
  refreshQuality: (round: number) =>
    request<{ round: number; job: string; status: string }>('POST', '/api/dashboard/quality/refresh/', { round }),
  jobs: () => request<JobsBoard>('GET', '/api/dashboard/jobs/'),
  startRound: (body: StartRoundBody) => request<{ number: number; status: string }>('POST', '/api/rounds/start/', body),
}
