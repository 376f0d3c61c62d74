// The Tools section: the pen, then each tool's own controls (one file per tool).
import type { OrganRow, ViewerRef } from '../types'
import { ClickControls } from './Click'
import { CleanupControls } from './Cleanup'
import { GrowControls } from './GrowTool'
import { IntensityControls } from './IntensityRange'
import { InterpolateControls } from './Interpolate'
import { LocalThreshold } from './LocalThreshold'
import { MembersControls } from './Members'
import { PenTools } from './PenTools'
import { SnapEdgeControls } from './SnapEdge'
import { SphereControls } from './SphereBrush'
import type { Click } from './useClick'
import type { Members } from './useMembers'
import type { Tools } from './useTools'

export function ToolsPanel({ t, m, k, viewerRef, ready, organ, undo, redo, say }: { t: Tools; m: Members; k: Click
  viewerRef: ViewerRef; ready: boolean; organ: OrganRow | undefined; undo: number; redo: number
  say: (message: string) => void }) {
  return (
    <section>
      <h2>Tools</h2>
      <PenTools t={t} viewerRef={viewerRef} organName={organ?.display_name ?? 'the active organ'} undo={undo}
        redo={redo} />
      {t.tool === 'sphere' && <SphereControls t={t} />}
      {t.tool === 'grow' && <GrowControls t={t} />}
      {t.tool === 'click' && <ClickControls k={k} organName={organ?.display_name ?? 'the active organ'} />}
      <IntensityControls t={t} organ={organ?.name ?? ''} />
      <h3>Active organ</h3>
      <InterpolateControls t={t} viewerRef={viewerRef} say={say} />
      <CleanupControls t={t} viewerRef={viewerRef} ready={ready} />
      <MembersControls m={m} />
      <LocalThreshold m={m} />
      <SnapEdgeControls m={m} t={t} viewerRef={viewerRef} undo={undo} redo={redo} />
    </section>
  )
}
