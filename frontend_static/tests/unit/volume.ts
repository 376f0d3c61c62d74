// Small volumes for the unit tests: flat Uint8Arrays in the viewer's voxel order (x fastest, then y, then z).

export class Volume {
  readonly data: Uint8Array

  constructor(readonly dims: number[], fill = 0) {
    this.data = new Uint8Array(dims[0] * dims[1] * dims[2]).fill(fill)
  }

  index(x: number, y: number, z: number): number {
    return (z * this.dims[1] + y) * this.dims[0] + x
  }

  get(x: number, y: number, z: number): number {
    return this.data[this.index(x, y, z)]
  }

  set(x: number, y: number, z: number, value: number): void {
    this.data[this.index(x, y, z)] = value
  }

  /** Set every voxel of the inclusive block [x0..x1] x [y0..y1] x [z0..z1]. */
  block(x0: number, x1: number, y0: number, y1: number, z0: number, z1: number, value: number): this {
    for (let z = z0; z <= z1; z++) {
      for (let y = y0; y <= y1; y++) for (let x = x0; x <= x1; x++) this.set(x, y, z, value)
    }
    return this
  }

  /** Voxels equal to `value`, in slice z when given. */
  count(value: number, z?: number): number {
    let n = 0
    const [nx, ny, nz] = this.dims
    for (let k = 0; k < nz; k++) {
      if (z !== undefined && k !== z) continue
      for (let y = 0; y < ny; y++) for (let x = 0; x < nx; x++) if (this.get(x, y, k) === value) n++
    }
    return n
  }

  /** The voxels equal to `value` as "x,y,z" strings. */
  where(value: number): string[] {
    const out: string[] = []
    const [nx, ny, nz] = this.dims
    for (let z = 0; z < nz; z++) for (let y = 0; y < ny; y++) for (let x = 0; x < nx; x++) {
      if (this.get(x, y, z) === value) out.push(`${x},${y},${z}`)
    }
    return out
  }
}

/** A deterministic pseudo-random sequence in [0, 1) (a linear congruential generator). */
export function random(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s / 2 ** 32
  }
}
