// The review view's viewer: the CT, a label (the revision, or the label it was made from) as the drawing layer, and
// the diff as the overlay (the viewer's heatmap layer: bright where an organ gained voxels, dark red where it lost
// them). Choosing another organ's diff or the other label loads the case again (the edit history starts anew).
import { useEffect, useRef, useState } from 'react'
import { api, type LabelSet } from '../api'
import { openViewer } from '../viewer/lifecycle'
import type { Viewer } from '../viewer/niivue'
import type { ReviewDetail } from './reviewApi'

export type Shown = 'revision' | 'parent'

export function useReviewViewer(canvasRef: { current: HTMLCanvasElement | null }, detail: ReviewDetail | null,
  shown: Shown, organ: string) {
  const viewerRef = useRef<Viewer | null>(null)
  const [labelSet, setLabelSet] = useState<LabelSet | null>(null)
  const [state, setState] = useState<'loading' | 'ready' | 'error'>('loading')
  const [error, setError] = useState('')
  const [dirty, setDirty] = useState(false)
  const [overlay, setOverlay] = useState(true)

  useEffect(() => {
    if (detail) api.labelSet(detail.case_id).then(setLabelSet).catch((e: Error) => setError(e.message))
  }, [detail])

  useEffect(() => {
    if (!detail || !labelSet || !canvasRef.current) return
    setState('loading')
    return openViewer(canvasRef, viewerRef, async (session) => {
      const viewer = await session.create()
      if (!viewer) return
      viewer.onEdit = () => setDirty(viewer.dirty)
      const diff = organ ? `${detail.urls.diff}?organ=${encodeURIComponent(organ)}` : detail.urls.diff
      await viewer.load({ ct: detail.urls.ct, label: shown === 'parent' ? detail.urls.parent : detail.urls.label,
        attention: diff })
      if (session.cancelled()) return
      viewer.setLabelColours(labelSet.organs.map((o) => ({ value: o.value, color: o.color, visible: true })))
      viewer.setLabelOpacity(0.45)
      viewer.setHeatmap(true, 0.9)
      // the view goes to the middle of the chosen organ's changes (else the first organ that changed)
      const focus = detail.diff.organs.find((o) => o.organ === organ && o.centre) ??
        detail.diff.organs.find((o) => o.centre)
      if (focus?.centre) viewer.centreOnFileVoxel(focus.centre)
      setDirty(false)
      setOverlay(true)
      setState('ready')
    }, (message) => {
      setError(message)
      setState('error')
    })
  }, [canvasRef, detail, labelSet, shown, organ])

  const toggleOverlay = () => {
    viewerRef.current?.setHeatmap(!overlay, 0.9)
    setOverlay(!overlay)
  }

  return { viewerRef, labelSet, state, error, dirty, overlay, toggleOverlay }
}
