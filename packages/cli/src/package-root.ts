import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * The folder of this package (its package.json): found by walking up from this module, which
 * runs from dist/ after `tsc` and from dist/bundle/ in the bundle (see scripts/bundle.mjs).
 */
function findPackageRoot (): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const file = join(dir, 'package.json')
    if (existsSync(file) && (JSON.parse(readFileSync(file, 'utf8')) as { name?: unknown }).name === '@fsyncd/cli') return dir
    if (dirname(dir) === dir) throw new Error('@fsyncd/cli: package.json not found above ' + fileURLToPath(import.meta.url))
  }
}

export const PACKAGE_ROOT = findPackageRoot()
