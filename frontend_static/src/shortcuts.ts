// Keyboard shortcuts, after ITK-SNAP and 3D Slicer where they have one. One table: the handler and the `?` list.

export interface Shortcut {
  keys: string[] // KeyboardEvent.key values (with "Ctrl+" / "Shift+" prefixes where needed)
  action: string
  help: string
}

export const SHORTCUTS: Shortcut[] = [
  { keys: ['s', 'Escape'], action: 'navigate', help: 'crosshair / navigate (ITK-SNAP: S)' },
  { keys: ['b'], action: 'brush', help: 'paintbrush with the active organ (ITK-SNAP: B)' },
  { keys: ['e'], action: 'eraser', help: 'eraser: removes the active organ only' },
  { keys: ['f'], action: 'fill', help: 'filled outline: draw a closed contour, it is filled' },
  { keys: ['o'], action: 'sphere', help: 'sphere brush: a ball of the radius in mm, across slices' },
  { keys: ['g'], action: 'grow', help: 'click to grow: a region growing inside the HU range from the click' },
  { keys: ['c'], action: 'click', help: 'click (AI): the interactive engine segments the organ around your clicks' },
  { keys: ['i'], action: 'interpolate', help: 'interpolate the slices between slices painted in this view' },
  { keys: ['m'], action: 'member-next', help: 'members at the hotspot: show the next member\'s version (then the mean)' },
  { keys: ['a'], action: 'member-keep', help: 'keep the preview at the hotspot (a member\'s version, the snap): one edit' },
  { keys: ['k'], action: 'snap-edge', help: 'snap edge to CT at the hotspot: preview (a keeps it)' },
  { keys: ['[', '-'], action: 'brush-smaller', help: 'brush size down' },
  { keys: [']', '+', '='], action: 'brush-larger', help: 'brush size up' },
  { keys: ['Ctrl+z'], action: 'undo', help: 'undo' },
  { keys: ['Ctrl+y', 'Ctrl+Shift+z', 'Ctrl+Shift+Z'], action: 'redo', help: 'redo' },
  { keys: [',', '<'], action: 'organ-previous', help: 'previous organ (ITK-SNAP: ,)' },
  { keys: ['.', '>'], action: 'organ-next', help: 'next organ (ITK-SNAP: .)' },
  { keys: ['n'], action: 'hotspot-next', help: 'next hotspot' },
  { keys: ['p'], action: 'hotspot-previous', help: 'previous hotspot' },
  { keys: ['ArrowUp', 'PageUp'], action: 'slice-up', help: 'next slice (also: mouse wheel)' },
  { keys: ['ArrowDown', 'PageDown'], action: 'slice-down', help: 'previous slice' },
  { keys: ['1'], action: 'view-axial', help: 'axial view' },
  { keys: ['2'], action: 'view-coronal', help: 'coronal view' },
  { keys: ['3'], action: 'view-sagittal', help: 'sagittal view' },
  { keys: ['4'], action: 'view-multiplanar', help: 'multiplanar (three views)' },
  { keys: ['r'], action: 'radiological-toggle', help: 'radiological / neurological display (patient right on left)' },
  { keys: ['w'], action: 'window-next', help: 'next window preset: abdomen, liver, bone' },
  { keys: ['h'], action: 'heatmap-toggle', help: 'attention heatmap on / off' },
  { keys: ['l'], action: 'labels-toggle', help: 'label layer on / off (Slicer: Shift+click eye)' },
  { keys: ['?'], action: 'help', help: 'this list' },
]

export const MOUSE_HELP: [string, string][] = [
  ['left drag', 'paint with the current tool; in navigate mode, move the crosshair'],
  ['right drag', 'window / level (up-down: level, left-right: width)'],
  ['click tool', 'click: add the organ · shift+click or right click: remove · drag: scribble · alt+drag: box'],
  ['wheel', 'scroll slices'],
]

export function shortcutAction(event: KeyboardEvent): string | null {
  const mod = event.ctrlKey || event.metaKey
  const name = (mod ? 'Ctrl+' : '') + (mod && event.shiftKey ? 'Shift+' : '') + event.key
  for (const s of SHORTCUTS) if (s.keys.includes(name)) return s.action
  return null
}
