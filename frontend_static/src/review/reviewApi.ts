// The review API for leads (annotation/api/review.py): the review queue, "next to review", one revision as the
// review view shows it, verdicts, edit and accept, adjudicating a double read. Types come from the OpenAPI schema.
import { request } from '../api'
import type { components, operations } from '../api-schema'

type Schemas = components['schemas']
export type WaitingRevision = Schemas['WaitingRevision']
export type ReviewDetail = Schemas['ReviewDetail']
export type OrganDiff = Schemas['OrganDiff']
export type FlagRow = Schemas['FlagRow']
export type ReviewOrder = NonNullable<NonNullable<operations['review_queue_list']['parameters']['query']>['order']>
export interface ReviewFilter { order: ReviewOrder; annotator: string; organ: string }

/** What a verdict, an edit and accept or an adjudication stored. */
export type StoredRevision = Schemas['Revision']

function query(filter: ReviewFilter): string {
  const q = new URLSearchParams({ order: filter.order })
  if (filter.annotator) q.set('annotator', filter.annotator)
  if (filter.organ) q.set('organ', filter.organ)
  return q.toString()
}

function body(filter: ReviewFilter): Record<string, string> {
  const b: Record<string, string> = { order: filter.order }
  if (filter.annotator) b.annotator = filter.annotator
  if (filter.organ) b.organ = filter.organ
  return b
}

export const reviewApi = {
  queue: (filter: ReviewFilter) => request<WaitingRevision[]>('GET', `/api/review/queue/?${query(filter)}`),
  next: (filter: ReviewFilter) => request<WaitingRevision | null>('POST', '/api/review/next/', body(filter)),
  detail: (id: number) => request<ReviewDetail>('GET', `/api/review/revisions/${id}/`),
  verdict: (id: number, decision: Schemas['ReviewDecisionEnum'], comment: string, seconds: number,
    reassignTo: string | null) =>
    request<StoredRevision>('POST', `/api/revisions/${id}/review/`, { decision, comment, seconds_spent: seconds,
      reassign_to: reassignTo }),
  editAccept: (id: number, file: Uint8Array, comment: string, seconds: number) => {
    const form = new FormData()
    form.append('file', new Blob([file as BlobPart], { type: 'application/gzip' }), 'label.nii.gz')
    form.append('comment', comment)
    form.append('seconds_spent', seconds.toFixed(1))
    return request<StoredRevision>('POST', `/api/review/revisions/${id}/edit-accept/`, form)
  },
  adjudicate: (id: number, take: 1 | 2, organs: Record<string, 1 | 2>, comment: string, seconds: number) =>
    request<StoredRevision>('POST', `/api/review/revisions/${id}/adjudicate/`, { take, organs, comment,
      seconds_spent: seconds }),
}
