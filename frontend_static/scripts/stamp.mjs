// Content-based build stamp: sha256 over the build inputs (src/, index.html, package files, configs), written into
// dist/build-stamp.json by `npm run build`. tests/browser/test_build_stamp.py recomputes it the same way, so a
// source change without a rebuild fails the suite (git does not keep mtimes, so mtimes cannot be used).
// Hash: for each input file in sorted relative-path order (POSIX separators): path, NUL, bytes, NUL.
import { createHash } from 'node:crypto'
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const INPUTS = ['src', 'index.html', 'openapi.yml', 'package.json', 'package-lock.json', 'tsconfig.json',
  'vite.config.ts', 'scripts/stamp.mjs']

function walk(path) {
  if (statSync(path).isDirectory()) return readdirSync(path).flatMap((name) => walk(join(path, name)))
  return [path]
}

export function stamp() {
  const files = INPUTS.flatMap((p) => walk(join(root, p))).map((p) => relative(root, p).split('\\').join('/')).sort()
  const hash = createHash('sha256')
  for (const name of files) {
    hash.update(name)
    hash.update('\0')
    hash.update(readFileSync(join(root, name)))
    hash.update('\0')
  }
  return { sha256: hash.digest('hex'), files: files.length }
}

const mode = process.argv[2] ?? 'print'
const current = stamp()
if (mode === 'write') {
  writeFileSync(join(root, 'dist', 'build-stamp.json'), JSON.stringify(current, null, 2) + '\n')
  console.log(`dist/build-stamp.json: ${current.sha256} over ${current.files} files`)
} else {
  console.log(JSON.stringify(current))
}
