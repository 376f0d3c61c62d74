// The viewer's display controls: view, window / level, radiological or neurological display, heatmap and label
// layers; each follows its state into the viewer once it is ready.
import { useEffect, useState } from 'react'
import type { ViewName } from '../viewer/niivue'
import type { LoadState, ViewerRef } from './types'

export function useViewerControls(viewerRef: ViewerRef, state: LoadState) {
  const [view, setView] = useState<ViewName>('axial')
  const [win, setWin] = useState({ width: 400, level: 40 })
  const [radiological, setRadiological] = useState(localStorage.getItem('atlas.display') !== 'neurological')
  const [heatOn, setHeatOn] = useState(true)
  const [heatOpacity, setHeatOpacity] = useState(0.5)
  const [labelsOn, setLabelsOn] = useState(true)
  const [labelOpacity, setLabelOpacity] = useState(0.6)
  const [crosshair, setCrosshair] = useState<number[]>([])

  useEffect(() => viewerRef.current?.setView(view), [viewerRef, view, state])
  useEffect(() => viewerRef.current?.setHeatmap(heatOn, heatOpacity), [viewerRef, heatOn, heatOpacity, state])
  useEffect(() => viewerRef.current?.setLabelOpacity(labelsOn ? labelOpacity : 0),
    [viewerRef, labelsOn, labelOpacity, state])
  useEffect(() => {
    viewerRef.current?.setRadiological(radiological)
    localStorage.setItem('atlas.display', radiological ? 'radiological' : 'neurological')
  }, [viewerRef, radiological, state])

  return { view, setView, win, setWin, radiological, setRadiological, heatOn, setHeatOn, heatOpacity,
    setHeatOpacity, labelsOn, setLabelsOn, labelOpacity, setLabelOpacity, crosshair, setCrosshair }
}

export type ViewerControls = ReturnType<typeof useViewerControls>
