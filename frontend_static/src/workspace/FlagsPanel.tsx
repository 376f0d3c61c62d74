// The automatic quality checks' flags on this task's case (its round's pseudo-label and the annotator's own
// revisions): what is wrong with which organ, and a button that centres the view where the flag points.
import { useEffect, useState } from 'react'
import { request } from '../api'
import type { components } from '../api-schema'
import type { ViewerRef } from './types'

type FlagRow = components['schemas']['FlagRow']

export function FlagsPanel({ taskId, viewerRef }: { taskId: number | undefined; viewerRef: ViewerRef }) {
  const [flags, setFlags] = useState<FlagRow[] | null>(null)

  useEffect(() => {
    if (taskId === undefined) return
    request<FlagRow[]>('GET', `/api/tasks/${taskId}/flags/`).then(setFlags).catch(() => setFlags([]))
  }, [taskId])

  if (!flags || flags.length === 0) return null
  return (
    <section data-section="flags" data-count={flags.length}>
      <h2>Quality flags</h2>
      <ul className="flags">
        {flags.map((f) => (
          <li key={f.id} data-flag={f.kind} data-organ={f.organ} data-source={f.source}>
            <b>{f.organ}</b> · {f.kind}{f.source === 'revision' ? ` (revision ${f.revision_number})` : ''}: {f.reason}
            {f.place && <button type="button" onClick={() => viewerRef.current?.centreOnFileVoxel(f.place!)}
              data-action="goto-flag">go</button>}
          </li>
        ))}
      </ul>
    </section>
  )
}
