// The tools' state (tool, active organ, brush, protection, HU range, sphere, grow and snap settings) and its wiring into
// the viewer: NiiVue's pen for brush / eraser / outline, our pointer tools for the sphere brush and click-to-grow (the
// Click tool's is useClick's).
import { useEffect, useState } from 'react'
import type { Tool } from '../../viewer/edits'
import type { Viewer } from '../../viewer/niivue'
import type { Painter } from '../../viewer/ops/paint'
import type { ViewerRef } from '../types'
import { growTool } from './GrowTool'
import { huAllow } from './IntensityRange'
import { sphereTool } from './SphereBrush'

export function useTools(viewerRef: ViewerRef, ready: boolean) {
  const [tool, setTool] = useState<Tool>('navigate')
  const [active, setActive] = useState(0)
  const [brush, setBrush] = useState(3)
  const [protect, setProtect] = useState(true)
  const [sphereMm, setSphereMm] = useState(10)
  const [hu, setHu] = useState({ on: false, lo: -100, hi: 300 })
  const [grow, setGrow] = useState({ radiusMm: 30, threeD: true })
  const [islandMl, setIslandMl] = useState(1)
  const [snapReach, setSnapReach] = useState(1) // snap edge to CT: voxels either side of the edge, 1 to 3

  useEffect(() => viewerRef.current?.setTool(tool, active, brush, protect), [viewerRef, tool, active, brush, protect,
    ready])
  useEffect(() => {
    const viewer = viewerRef.current
    if (!viewer || !ready) return
    viewer.setIntensityLimit(hu.on ? huAllow(viewer, hu.lo, hu.hi) : undefined)
  }, [viewerRef, hu, ready])
  useEffect(() => {
    const viewer = viewerRef.current
    if (!viewer || !ready || tool === 'click') return // the click tool's pointer is useClick's
    const p = () => painter(viewer, active, protect)
    viewer.setPointerTool(tool === 'sphere' ? sphereTool(viewer, p, sphereMm)
      : tool === 'grow' ? growTool(viewer, p, grow.radiusMm, grow.threeD, hu.lo, hu.hi) : null)
  }, [viewerRef, tool, active, protect, sphereMm, grow, hu, ready])

  return { tool, setTool, active, setActive, brush, setBrush, protect, setProtect, sphereMm, setSphereMm, hu, setHu,
    grow, setGrow, islandMl, setIslandMl, snapReach, setSnapReach }
}

export type Tools = ReturnType<typeof useTools>

/** How our tools paint the active organ: over background and the organ itself under protection, in the HU range. */
export function painter(viewer: Viewer, value: number, protect: boolean): Painter {
  const g = viewer.geometry!
  const limit = viewer.intensityLimit
  return { dims: g.dims, spacing: g.spacing, value,
    canPaint: (old, i) => (!protect || old === 0 || old === value) && (!limit || limit(i)) }
}
