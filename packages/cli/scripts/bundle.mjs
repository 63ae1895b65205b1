/**
 * Bundles the compiled CLI (dist/bin.js and every @fsyncd package and dependency it imports)
 * into one file, dist/fsyncd.mjs: the program `fsyncd` runs.
 *
 * Why: Node 20 has no compile cache, and resolving, reading and compiling ~200 ES modules took
 * ~120 ms of every run, as long as rsync's whole sync of a small change. One file loads in a
 * fraction of that. Left outside, loaded from node_modules as usual: the native addons
 * (@parcel/watcher, @toondepauw/node-zstd) and pino-pretty (a terminal's logs only; pino itself is bundled, and pretty-prints in-process,
 * without a transport's worker thread, see src/logger.ts: its ~15 files cost 14 ms of every run).
 * Commands imported lazily by bin.js stay lazy: they become chunks beside the bundle.
 */
import { existsSync, renameSync, rmSync } from 'node:fs'
import { build } from 'esbuild'
import { fileURLToPath } from 'node:url'
import { dirname, join } from 'node:path'

const cli = join(dirname(fileURLToPath(import.meta.url)), '..')
const outdir = join(cli, 'dist', 'bundle')
// Built aside, then swapped in: a half-written bundle never runs, and old chunks (named by
// content) do not pile up. A fsyncd still running from the old set that imports a chunk lazily
// after a rebuild may not find it: restart what runs after building.
const building = `${outdir}.building`
rmSync(building, { recursive: true, force: true })

/**
 * string-width (yargs measures its help text with it, and renders the help of the command it
 * runs even when nobody asked) builds a Unicode emoji regex and an Intl.Segmenter when its
 * module is evaluated: 16 ms of every run. Every import of it gets a stand-in that measures
 * printable ASCII itself and loads the real module on the first other string (esbuild evaluates
 * a require()d module lazily).
 */
const lazyStringWidth = {
  name: 'lazy-string-width',
  setup (b) {
    b.onResolve({ filter: /^string-width$/ }, async (args) => {
      if (args.pluginData === 'real') return undefined
      const real = await b.resolve('string-width', { resolveDir: args.resolveDir, kind: args.kind, pluginData: 'real' })
      return { path: real.path, namespace: 'lazy-string-width' }
    })
    b.onLoad({ filter: /.*/, namespace: 'lazy-string-width' }, (args) => ({
      // Printable ASCII (all of fsyncd's help) is one column per character: no need for the real thing.
      contents: `let real\nexport default function stringWidth (string, options) {\n  if (typeof string === 'string' && /^[\\x20-\\x7e]*$/.test(string)) return string.length\n  real ??= require(${JSON.stringify(args.path)}).default\n  return real(string, options)\n}\n`,
      resolveDir: dirname(args.path),
    }))
  },
}

await build({
  plugins: [lazyStringWidth],
  entryPoints: { fsyncd: join(cli, 'dist', 'bin.js') },
  outdir: building,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  outExtension: { '.js': '.mjs' },
  external: ['@parcel/watcher', '@toondepauw/node-zstd', 'pino-pretty', 'msgpackr-extract'],
  // msgpackr's native extension (msgpackr-extract) cost 10-20 ms to load in every run, for
  // unpacking ~20 % faster: 18 ms on a 100k-entry listing. Pure JS, then.
  define: { 'process.env.MSGPACKR_NATIVE_ACCELERATION_DISABLED': '"true"' },
  // CommonJS dependencies call require(); an ES module has none of its own.
  banner: { js: "import { createRequire as __fsyncdRequire } from 'node:module'; const require = __fsyncdRequire(import.meta.url);" },
  sourcemap: 'linked',
  logLevel: 'warning',
})

rmSync(`${outdir}.old`, { recursive: true, force: true })
if (existsSync(outdir)) renameSync(outdir, `${outdir}.old`)
renameSync(building, outdir)
rmSync(`${outdir}.old`, { recursive: true, force: true })
