// The viewer's displayed layers apart from the label's voxels: fetching the volumes, the CT (window / level), the
// attention heatmap (toggle, opacity) and the label's colours and opacity. Each change re-blends only the layer it
// concerns: NiiVue's own calls (addVolume, setDrawColormap, updateGLVolume) re-blend every layer every time.
import { NVImage, type Niivue } from '@niivue/niivue'
import type { LabelColour } from './options'
import { colourTable } from './textures'

/** The CT, and the heatmap and label when the server has them (null when it has not). */
export async function fetchVolumes(urls: { ct: string; label: string; attention: string }) {
  const [ct, heat, label] = await Promise.all([
    NVImage.loadFromUrl({ url: urls.ct, name: 'ct.nii.gz' }),
    NVImage.loadFromUrl({ url: urls.attention, name: 'attention.nii.gz', colormap: 'hot', opacity: 0.5,
      cal_min: 1, cal_max: 255 }).catch(() => null),
    NVImage.loadFromUrl({ url: urls.label, name: 'label.nii.gz' }).catch(() => null),
  ])
  return { ct, heat, label }
}

export class Layers {
  private heat: NVImage | null = null
  private heatVisible = true
  private heatOpacity = 0.5
  private heatApplied = false
  private coloursKey = ''
  private labelOpacity = -1

  constructor(private nv: Niivue) {}

  /** The CT with its window, and the heatmap (when there is one), in one volume update. */
  add(ct: NVImage, heat: NVImage | null, window: { width: number; level: number }): void {
    ct.cal_min = window.level - window.width / 2
    ct.cal_max = window.level + window.width / 2
    if (heat) {
      heat.cal_min = 1
      heat.cal_max = 255
      heat.opacity = this.heatVisible ? this.heatOpacity : 0
      this.heat = heat
      this.heatApplied = true
    }
    this.oneVolumeUpdate(() => {
      this.nv.addVolume(ct)
      if (heat) this.nv.addVolume(heat)
    })
  }

  /** Run fn with NiiVue's volume updates held back, then do one if fn asked for any (and `update`). */
  private oneVolumeUpdate(fn: () => void, update = true): void {
    const nv = this.nv as unknown as Record<string, unknown>
    let asked = false
    nv.updateGLVolume = () => {
      asked = true
    }
    try {
      fn()
    } finally {
      delete nv.updateGLVolume // back to the prototype's
    }
    if (asked && update) this.nv.updateGLVolume()
  }

  window(): { width: number; level: number } {
    const v = this.nv.volumes[0]
    if (!v) return { width: 0, level: 0 }
    const lo = v.cal_min ?? 0
    const hi = v.cal_max ?? 0
    return { width: hi - lo, level: (hi + lo) / 2 }
  }

  /** Set the CT's window; false when there is no CT or nothing changed. */
  setWindow(width: number, level: number): boolean {
    const v = this.nv.volumes[0]
    if (!v) return false
    if (v.cal_min === level - width / 2 && v.cal_max === level + width / 2) return false
    v.cal_min = level - width / 2
    v.cal_max = level + width / 2
    this.refresh(0)
    return true
  }

  setLabelColours(colours: LabelColour[]): void {
    const key = JSON.stringify(colours.map((c) => [c.value, c.color, c.visible]))
    if (key === this.coloursKey) return
    this.coloursKey = key
    const table = colourTable(colours)
    // NiiVue's setDrawColormap re-blends every layer (updateGLVolume); the drawing's colours are only the last row
    // of the colour-map texture, which refreshColormaps rebuilds.
    this.oneVolumeUpdate(() => this.nv.setDrawColormap(table as unknown as string), false)
    this.nv.refreshColormaps()
    this.nv.drawScene()
  }

  setLabelOpacity(opacity: number): void {
    if (opacity === this.labelOpacity) return
    this.labelOpacity = opacity
    this.nv.setDrawOpacity(opacity)
  }

  get hasHeatmap(): boolean {
    return this.heat !== null
  }

  setHeatmap(visible: boolean, opacity: number): void {
    if (visible === this.heatVisible && opacity === this.heatOpacity && this.heatApplied) return
    this.heatApplied = this.heat !== null
    this.heatVisible = visible
    this.heatOpacity = opacity
    if (!this.heat) return
    this.heat.opacity = this.heatVisible ? this.heatOpacity : 0
    this.refresh(1)
  }

  /** Re-blend one layer (0: the CT, 1: the heatmap) and redraw: NiiVue's updateGLVolume re-blends them all. */
  private refresh(index: number): void {
    const volume = this.nv.volumes[index]
    if (!volume) return
    this.nv.refreshLayers(volume, index)
    this.nv.drawScene()
  }
}
