// The click tool's state (issue 25): the interactive engines (GET /api/interactive/), each organ's session of prompts
// (points and scribbles placed so far), and the requests, one at a time in the order made. A prompt sends, for the
// organ it was made for: the crop around it (a cube of the engine's crop_mm, clipped to the volume, grown to hold
// the prompt), the organ's label in the crop as the page holds it then, every point and scribble of the session that
// lies in the crop, and a box when the prompt is one. The answer's mask is written into the label as one undoable
// edit under the tools' policy ("protect other organs", the HU range), through Viewer.edit like every other tool.
// A prompt whose edit is undone leaves the session (and comes back with a redo); one whose request failed is dropped.
import { useCallback, useEffect, useLayoutEffect, useRef, useState } from 'react'
import { api, type ClickEngine, type Engines } from '../../api'
import { cropOffsetTerms } from '../../viewer/geometry'
import type { Marker, Viewer } from '../../viewer/niivue'
import { type Crop, cropAround, cropShape, cropVoxels, fitPoints, inCrop, readCrop, writeCrop }
  from '../../viewer/ops/click'
import { type ClickPrompts, busyOf, sendClick } from '../clickApi'
import type { OrganRow } from '../types'
import { type ClickMode, clickPointer } from './Click'
import type { Tools } from './useTools'

const RETRIES = 2 // a 503 is retried this many times, RETRY_MS apart, before the page gives up
const RETRY_MS = 1000

/** A prompt placed on the viewer (viewer voxels): a point, a scribble, or a box (two opposite corners, one slice). */
export type Prompt = Marker

interface Entry {
  id: number
  prompt: Prompt
  edit: object | null | undefined // its edit (Viewer.newestEdit after it); null: it changed nothing; undefined: pending
}

type Sessions = ReadonlyMap<number, readonly Entry[]> // per organ value

export type ClickState = 'idle' | 'waiting' | 'busy' | 'error' | 'done'

export interface ClickResult {
  changed: number // voxels the edit changed (after protection and the HU range)
  proposed: number // voxels the engine's mask changed in the crop
  seconds: { wait: number; engine: number; total: number } // the server's
  ms: number // the round trip, from the prompt (the mouse-up) to the mask on the page
}

/** The organ's prompts in effect: pending, changing nothing, or their edit made and not undone. */
function live(viewer: Viewer | null, entries: readonly Entry[] | undefined): Entry[] {
  return (entries ?? []).filter((e) => !e.edit || (viewer?.holdsEdit(e.edit) ?? false))
}

/** The mm of each file axis (VolumeGeometry's spacing is per viewer axis). */
function fileSpacing(g: NonNullable<Viewer['geometry']>): number[] {
  const out = [1, 1, 1]
  g.axes.forEach(({ f }, a) => {
    out[f] = g.spacing[a]
  })
  return out
}

/** The request for `prompt` (file voxel indices): its crop, and the session's prompts that lie in it. */
function request(g: NonNullable<Viewer['geometry']>, engines: Engines, prompt: Prompt, others: Prompt[],
  base: Pick<ClickPrompts, 'organ' | 'engine'>): { crop: Crop; prompts: ClickPrompts } | string {
  const file = (w: number[]) => g.fileIndex(w[0], w[1], w[2])
  const mine = prompt.voxels.map(file)
  const lo = [0, 1, 2].map((f) => Math.min(...mine.map((p) => p[f])))
  const hi = [0, 1, 2].map((f) => Math.max(...mine.map((p) => p[f])))
  const crop = cropAround(lo.map((v, f) => (v + hi[f]) / 2), engines.crop_mm, fileSpacing(g), g.fileDims, mine)
  if (cropVoxels(crop) > engines.max_voxels) return 'the prompt spans more than one request may send'
  const prompts: ClickPrompts = { ...base, positive: [], negative: [], scribbles: [] }
  for (const p of [...others, prompt]) {
    const inside = p.voxels.map(file).filter((q) => inCrop(crop, q))
    if (!inside.length || p.kind === 'box') continue
    if (p.kind === 'point') (p.positive ? prompts.positive! : prompts.negative!).push(inside[0])
    else prompts.scribbles!.push({ points: inside, positive: p.positive })
  }
  const clicks = prompts.positive!.length + prompts.negative!.length
  const fitted = fitPoints(clicks, prompts.scribbles!.map((s) => s.points), engines.max_points)
  if (!fitted) return `more than ${engines.max_points} points in the crop: start a new session`
  prompts.scribbles = prompts.scribbles!.map((s, i) => ({ ...s, points: fitted[i] }))
  if (prompt.kind === 'box') {
    if (lo[2] !== hi[2]) return 'a box works on an axial slice: switch to the axial view'
    prompts.box2d = [lo, hi]
  }
  return { crop, prompts }
}

const sleep = (ms: number) => new Promise((resolve) => window.setTimeout(resolve, ms))

export function useClick(viewer: Viewer | null, caseId: number | undefined, t: Tools, organ: OrganRow | undefined,
  ready: boolean, undoDepth: number, redoDepth: number) {
  const { tool, active } = t
  const [engines, setEngines] = useState<Engines | null>(null)
  const [kind, setKind] = useState('') // the chosen engine's kind ('': the first)
  const [mode, setMode] = useState<ClickMode>('scribble') // what a drag draws (Alt+drag: a box)
  const [state, setState] = useState<ClickState>('idle')
  const [message, setMessage] = useState('')
  const [since, setSince] = useState(0) // when the prompt in flight was made (performance.now())
  const [now, setNow] = useState(0)
  const [queued, setQueued] = useState(0) // prompts made and not answered yet
  const [last, setLast] = useState<ClickResult | null>(null)
  const [sessions, setSessions] = useState<Sessions>(new Map())
  const chain = useRef<Promise<void>>(Promise.resolve())
  const nextId = useRef(0)
  const current = useRef({ viewer, value: 0, name: '', caseId, engines, kind, mode, sessions })
  useLayoutEffect(() => {
    current.current = { viewer, value: active, name: organ?.name ?? '', caseId, engines, kind, mode, sessions }
  }, [viewer, active, organ, caseId, engines, kind, mode, sessions])

  useEffect(() => {
    if (!ready || engines) return
    api.interactive().then(setEngines).catch((e: Error) => {
      setState('error')
      setMessage(`no click engine: ${e.message}`)
    })
  }, [ready, engines])

  useEffect(() => {
    if (state !== 'waiting' && state !== 'busy') return
    const timer = window.setInterval(() => setNow(performance.now()), 100)
    return () => window.clearInterval(timer)
  }, [state])

  /** Change one organ's session. */
  const update = useCallback((value: number, change: (entries: readonly Entry[]) => Entry[]) => {
    setSessions((s) => new Map(s).set(value, change(s.get(value) ?? [])))
  }, [])

  const run = useCallback(async (id: number, prompt: Prompt, value: number, name: string, others: Prompt[],
    made: number) => {
    const { viewer, caseId, engines, kind } = current.current
    const g = viewer?.geometry
    const drop = (why: ClickState, text: string) => {
      update(value, (entries) => entries.filter((e) => e.id !== id))
      setState(why)
      setMessage(text)
    }
    if (!viewer || !g || !caseId || !engines) return drop('error', 'the case is not loaded')
    if (current.current.value !== value) return drop('error', 'the active organ changed before this click was sent')
    const asked = request(g, engines, prompt, others, { organ: name, engine: engine(engines, kind)?.kind ?? '' })
    if (typeof asked === 'string') return drop('error', asked)
    const { crop, prompts } = asked
    const box = g.fileBoxToViewer(crop.lo, crop.hi)
    const terms = cropOffsetTerms(g, crop.lo, cropShape(crop), box)
    const label = readCrop(viewer.label(), g.dims, box, terms, cropVoxels(crop), value)
    setSince(made)
    setNow(performance.now())
    for (let attempt = 0; ; attempt++) {
      setState(attempt ? 'busy' : 'waiting')
      try {
        const answer = await sendClick(caseId, crop, label, prompts)
        if (current.current.viewer !== viewer || current.current.value !== value) {
          return drop('error', 'the active organ changed while the engine worked: click again')
        }
        const changed = viewer.edit(box, (l) => writeCrop(l, g.dims, box, terms, answer.mask, value))
        const edit = changed ? viewer.newestEdit : null
        update(value, (entries) => entries.map((e) => (e.id === id ? { ...e, edit } : e)))
        const done = performance.now()
        performance.measure('atlas:click', { start: made, end: done }) // the round trip, in the page's timeline
        setLast({ changed, proposed: answer.changed, seconds: answer.seconds, ms: done - made })
        setState('done')
        setMessage('')
        return
      } catch (error) {
        const busy = busyOf(error)
        if (!busy) return drop('error', (error as Error).message)
        const why = `The click engine is busy (${busy.running} request${busy.running === 1 ? '' : 's'} running; ` +
          `the server waited ${busy.waited.toFixed(1)} s)`
        if (attempt >= RETRIES) return drop('busy', `${why}. It is still busy: click again to retry.`)
        setMessage(`${why}: retrying (${attempt + 1} of ${RETRIES})…`)
        await sleep(RETRY_MS)
      }
    }
  }, [update])

  /** A prompt for the active organ: into its session, and its request after those already made. */
  const prompt = useCallback((p: Prompt) => {
    const { viewer, value, name, engines, sessions } = current.current
    if (!value || !name) return
    if (!engines) {
      setState('error')
      setMessage('the click engine is not available yet')
      return
    }
    const others = live(viewer, sessions.get(value)).map((e) => e.prompt).filter((x) => x.kind !== 'box')
    const id = ++nextId.current
    const made = performance.now()
    update(value, (entries) => [...entries, { id, prompt: p, edit: undefined }])
    setQueued((q) => q + 1)
    chain.current = chain.current.then(() => run(id, p, value, name, others, made))
      .catch((e: Error) => { // (run says what went wrong itself; this keeps the next prompts' requests going)
        setState('error')
        setMessage(e.message)
      })
      .finally(() => setQueued((q) => q - 1))
  }, [update, run])

  const shown = useRef<Prompt[]>([]) // the markers of the active organ's prompts in effect

  // the pointer, while the Click tool is on: a drag is drawn over the session's markers as it goes
  useEffect(() => {
    if (!viewer || !ready || tool !== 'click') return
    viewer.setPointerTool(clickPointer({ mode: () => current.current.mode, prompt,
      draft: (d) => viewer.setMarkers(d ? [...shown.current, d] : shown.current) }))
  }, [viewer, ready, tool, prompt])

  // (again after an undo or a redo, which take a prompt's edit back or give it back: the depths say when)
  useEffect(() => {
    if (!viewer || !ready || tool !== 'click') return
    shown.current = live(viewer, sessions.get(active)).map((e) => e.prompt)
    viewer.setMarkers(shown.current)
    return () => viewer.setMarkers([])
  }, [viewer, ready, tool, sessions, active, undoDepth, redoDepth])

  /** A new session for the active organ: its points, scribbles and box are forgotten (the label stays). */
  const clear = useCallback(() => {
    update(current.current.value, () => [])
    setLast(null)
    setState((s) => (s === 'waiting' || s === 'busy' ? s : 'idle'))
  }, [update])

  const entries = live(viewer, sessions.get(active)) // (the component renders again after each undo and redo)
  const count = (kind: Prompt['kind'], positive?: boolean) => entries.filter((e) => e.prompt.kind === kind &&
    (positive === undefined || e.prompt.positive === positive)).length
  return { engines, engine: engines ? engine(engines, kind) : undefined, setKind, mode, setMode, state, message,
    waited: (now - since) / 1000, queued, last, positive: count('point', true), negative: count('point', false),
    scribbles: count('scribble'), clear }
}

/** The chosen engine ('': the default, the first). */
function engine(engines: Engines, kind: string): ClickEngine | undefined {
  return engines.engines.find((e) => e.kind === kind) ?? engines.engines[0]
}

export type Click = ReturnType<typeof useClick>
