// The tool buttons and the pen's settings: navigate, brush, eraser, filled outline (NiiVue's pen), sphere brush and
// click-to-grow (ours), Click (the interactive engine's); brush size, "protect other organs", undo / redo.
import type { Tool } from '../../viewer/edits'
import type { ViewerRef } from '../types'
import type { Tools } from './useTools'

export const TOOLS: [Tool, string][] = [['navigate', 'Navigate'], ['brush', 'Brush'], ['eraser', 'Eraser'],
  ['fill', 'Filled outline'], ['sphere', 'Sphere brush'], ['grow', 'Click to grow'], ['click', 'Click (AI)']]

export function PenTools({ t, viewerRef, organName, undo, redo }: { t: Tools; viewerRef: ViewerRef
  organName: string; undo: number; redo: number }) {
  return (
    <>
      <div className="buttons">
        {TOOLS.map(([tool, label]) => (
          <button key={tool} className={tool === t.tool ? 'on' : ''} onClick={() => t.setTool(tool)}
            data-tool-button={tool}>{label}</button>
        ))}
      </div>
      <label>Brush size {t.brush}
        <input type="range" min={1} max={30} value={t.brush} onChange={(e) => t.setBrush(Number(e.target.value))}
          data-control="brush" />
      </label>
      <label className="check">
        <input type="checkbox" checked={t.protect} onChange={(e) => t.setProtect(e.target.checked)}
          data-control="protect" />
        protect other organs (paint only over background and {organName})
      </label>
      <div className="buttons">
        <button onClick={() => viewerRef.current?.undo()} disabled={!undo} data-action="undo">Undo</button>
        <button onClick={() => viewerRef.current?.redo()} disabled={!redo} data-action="redo">Redo</button>
      </div>
    </>
  )
}
