// The keyboard: one handler for the table in shortcuts.ts (the `?` list shows the same table).
import { useEffect } from 'react'
import { shortcutAction } from '../shortcuts'
import { WINDOW_PRESETS, type ViewName } from '../viewer/niivue'
import { previewSnap } from './tools/SnapEdge'
import type { Members } from './tools/useMembers'
import type { Tools } from './tools/useTools'
import type { Dialog, OrganRow, ViewerRef } from './types'
import type { ViewerControls } from './useViewerControls'

export interface ShortcutContext {
  viewerRef: ViewerRef
  organs: OrganRow[]
  tools: Tools
  controls: ViewerControls
  dialog: Dialog
  setDialog: (f: Dialog | ((d: Dialog) => Dialog)) => void
  hotspot: number
  hotspotCount: number
  gotoHotspot: (index: number) => void
  interpolate: () => void
  members: Members
}

export function useShortcuts(ctx: ShortcutContext) {
  const { viewerRef, organs, tools: t, controls: c, dialog, setDialog, hotspot, hotspotCount, gotoHotspot,
    interpolate, members } = ctx
  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      const target = event.target as HTMLElement
      if (target && ['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName) && event.key !== 'Escape') return
      const action = shortcutAction(event)
      if (!action) return
      if (dialog && action !== 'help' && event.key !== 'Escape') return
      const viewer = viewerRef.current
      event.preventDefault()
      event.stopPropagation()
      const organIndex = organs.findIndex((o) => o.value === t.active)
      switch (action) {
        case 'navigate':
          if (dialog) setDialog(null)
          else t.setTool('navigate')
          break
        case 'brush':
        case 'eraser':
        case 'fill':
        case 'sphere':
        case 'grow':
        case 'click':
          t.setTool(action)
          break
        case 'interpolate':
          interpolate()
          break
        case 'member-next': {
          if (!members.crops) break
          const names = ['', ...members.crops.members.map((x) => x.name), 'mean']
          members.show(names[(names.indexOf(members.shown) + 1) % names.length])
          break
        }
        case 'member-keep':
          members.keep()
          break
        case 'snap-edge':
          previewSnap(members, t)
          break
        case 'brush-smaller':
          t.setBrush((b) => Math.max(1, b - 1))
          break
        case 'brush-larger':
          t.setBrush((b) => Math.min(50, b + 1))
          break
        case 'undo':
          viewer?.undo()
          break
        case 'redo':
          viewer?.redo()
          break
        case 'organ-previous':
          if (organs.length) t.setActive(organs[(organIndex - 1 + organs.length) % organs.length].value)
          break
        case 'organ-next':
          if (organs.length) t.setActive(organs[(organIndex + 1) % organs.length].value)
          break
        case 'hotspot-next':
          gotoHotspot(hotspot + 1)
          break
        case 'hotspot-previous':
          gotoHotspot(hotspot <= 0 ? hotspotCount - 1 : hotspot - 1)
          break
        case 'slice-up':
          viewer?.scroll(1)
          break
        case 'slice-down':
          viewer?.scroll(-1)
          break
        case 'view-axial':
        case 'view-coronal':
        case 'view-sagittal':
        case 'view-multiplanar':
          c.setView(action.slice(5) as ViewName)
          break
        case 'window-next': {
          const names = Object.keys(WINDOW_PRESETS)
          const current = names.findIndex((n) => WINDOW_PRESETS[n].width === c.win.width &&
            WINDOW_PRESETS[n].level === c.win.level)
          const p = WINDOW_PRESETS[names[(current + 1) % names.length]]
          viewer?.setWindow(p.width, p.level)
          break
        }
        case 'radiological-toggle':
          c.setRadiological((v) => !v)
          break
        case 'heatmap-toggle':
          c.setHeatOn((v) => !v)
          break
        case 'labels-toggle':
          c.setLabelsOn((v) => !v)
          break
        case 'help':
          setDialog((d) => (d === 'help' ? null : 'help'))
          break
      }
    }
    window.addEventListener('keydown', onKey, true)
    return () => window.removeEventListener('keydown', onKey, true)
  }, [viewerRef, organs, t, c, dialog, setDialog, hotspot, hotspotCount, gotoHotspot, interpolate, members])
}
