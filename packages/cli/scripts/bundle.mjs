/**
 * Bundles the compiled CLI (dist/bin.js and every @fsyncd package and dependency it imports)
 * into one file, dist/fsyncd.mjs: the program `fsyncd` runs.
 *
 * Why: Node 20 has no compile cache, and resolving, reading and compiling ~200 ES modules took
 * ~120 ms of every run, as long as rsync's whole sync of a small change. One file loads in a
 * fraction of that. Left outside, loaded from node_modules as usual: @parcel/watcher (native),
 * pino and its transports (they start worker threads from files), msgpackr's optional native
 * extension. Commands imported lazily by bin.js stay lazy: they become chunks beside the bundle.
 */
import { build } from 'esbuild'
import { fileURLToPath } from 'node:url'
import { dirname, join } from 'node:path'

const cli = join(dirname(fileURLToPath(import.meta.url)), '..')

await build({
  entryPoints: { fsyncd: join(cli, 'dist', 'bin.js') },
  outdir: join(cli, 'dist', 'bundle'),
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  outExtension: { '.js': '.mjs' },
  external: ['@parcel/watcher', 'pino', 'pino-pretty', 'msgpackr-extract'],
  // CommonJS dependencies call require(); an ES module has none of its own.
  banner: { js: "import { createRequire as __fsyncdRequire } from 'node:module'; const require = __fsyncdRequire(import.meta.url);" },
  sourcemap: 'linked',
  logLevel: 'warning',
})
