// Heatmap and label layers: toggles and opacities.
import type { ViewerControls } from './useViewerControls'

export function LayersPanel({ c }: { c: ViewerControls }) {
  return (
    <section>
      <h2>Layers</h2>
      <label className="check">
        <input type="checkbox" checked={c.heatOn} onChange={(e) => c.setHeatOn(e.target.checked)}
          data-control="heatmap" />
        attention heatmap
      </label>
      <input type="range" min={0} max={1} step={0.05} value={c.heatOpacity} aria-label="heatmap opacity"
        onChange={(e) => c.setHeatOpacity(Number(e.target.value))} data-control="heatmap-opacity" />
      <label className="check">
        <input type="checkbox" checked={c.labelsOn} onChange={(e) => c.setLabelsOn(e.target.checked)}
          data-control="labels" />
        labels
      </label>
      <input type="range" min={0} max={1} step={0.05} value={c.labelOpacity} aria-label="label opacity"
        onChange={(e) => c.setLabelOpacity(Number(e.target.value))} data-control="label-opacity" />
    </section>
  )
}
