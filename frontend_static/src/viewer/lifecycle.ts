// A viewer's life inside a React effect: create it on the canvas, keep it in the caller's ref (and on window.atlasViewer
// for tests and benchmarks when localStorage atlas.debug = 1), report a failure unless the effect was torn down
// meanwhile, and destroy it on teardown. Used by the workspace (useTask) and the review page (useReviewViewer).
import { Viewer } from './niivue'

type DebugWindow = { atlasViewer?: Viewer }

export interface ViewerSession {
  /** Whether the effect was torn down (unmounted, or its inputs changed): stop after each await when it was. */
  cancelled: () => boolean
  /** A new Viewer on the canvas, kept in the ref; null when the effect was torn down while it was being made. */
  create: () => Promise<Viewer | null>
}

/** Run `open` for one effect; returns the effect's teardown. `onError` gets the message of a failure in `open`. */
export function openViewer(canvasRef: { current: HTMLCanvasElement | null },
  viewerRef: { current: Viewer | null }, open: (session: ViewerSession) => Promise<void>,
  onError: (message: string) => void): () => void {
  let cancelled = false
  const session: ViewerSession = {
    cancelled: () => cancelled,
    create: async () => {
      const viewer = await Viewer.create(canvasRef.current!)
      if (cancelled) {
        viewer.destroy()
        return null
      }
      viewerRef.current = viewer
      if (localStorage.getItem('atlas.debug') === '1') (window as unknown as DebugWindow).atlasViewer = viewer
      return viewer
    },
  }
  open(session).catch((e: Error) => {
    if (!cancelled) onError(e.message)
  })
  return () => {
    cancelled = true
    viewerRef.current?.destroy()
    viewerRef.current = null
    delete (window as unknown as DebugWindow).atlasViewer
  }
}
