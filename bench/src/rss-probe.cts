/**
 * Preloaded into the fsyncd child processes (`NODE_OPTIONS=--require <this>`): when the
 * process exits it writes its peak resident set (VmHWM of /proc/self/status, in KiB) to the file
 * named by FSYNCD_BENCH_RSS_FILE. The 'exit' event also fires on process.exit(), which the CLI calls.
 * CommonJS, preloaded with --require: an ES module preloaded with --import starts libuv's thread
 * pool before fsyncd's launcher can size it (see packages/cli/bin/fsyncd.js).
 */
import { readFileSync, writeFileSync } from 'node:fs'

const out = process.env.FSYNCD_BENCH_RSS_FILE
if (out !== undefined && out !== '') {
  process.on('exit', () => {
    const m = /VmHWM:\s+(\d+)\s+kB/.exec(readFileSync('/proc/self/status', 'utf8'))
    writeFileSync(out, String(m?.[1] ?? process.resourceUsage().maxRSS))
  })
}
