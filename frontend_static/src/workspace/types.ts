// Shapes shared by the workspace's hooks and panels.
import type { Viewer } from '../viewer/niivue'

export interface OrganRow {
  name: string
  value: number
  display_name: string
  color: string
  size_ml: number
  visible: boolean
}

export interface HotspotRow {
  organ: string
  value: number
  display_name: string
  ml: number
  voxels: number
  centroid: number[]
  bbox: number[][]
}

export type Dialog = null | 'submit' | 'skip' | 'help'

export type LoadState = 'loading' | 'ready' | 'empty' | 'error' | 'done'

/** What the viewer reports after each edit (mirrored into data-* attributes for the tests). */
export interface EditStats {
  dirty: boolean
  undo: number
  redo: number
  strokeMs: number
  strokeVoxels: number
  scanned: number
  uploads: string
  toolMs: number
  redrawMs: number
}

export type ViewerRef = { current: Viewer | null }
