/**
 * The `fsyncd` command: arguments, logger, signals and exit codes live here and nowhere else.
 * A command's module is imported when that command runs: a push does not load the server, and
 * every module costs start-up time on each run.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import yargs from 'yargs'
import { hideBin } from 'yargs/helpers'
import { ErrorCode } from '@fsyncd/protocol'
import { CliError, Exit } from './exit-codes.js'
import { createLogger } from './logger.js'
import { PACKAGE_ROOT } from './package-root.js'
import { readToken } from './token.js'

const pkg = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }

/** -q and -v win over --log-level. */
function levelOf (argv: { logLevel: string, verbose: boolean, quiet: boolean }): string {
  return argv.quiet ? 'error' : argv.verbose ? 'debug' : argv.logLevel
}

/** Bad arguments found after parsing (yargs reports its own with the same exit code). */
const usageError = (message: string): CliError => new CliError(Exit.USAGE, message)

/** Parses "host:port" (or "[v6]:port"). */
function parseTarget (target: string): { host: string, port: number } | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(target)
  if (m === null) return undefined
  const port = Number(m[3])
  if (port < 1 || port > 65535) return undefined
  return { host: (m[1] ?? m[2]) as string, port }
}

function exitCodeOf (err: unknown): number {
  if (err instanceof CliError) return err.exitCode
  const code = (err as { code?: unknown }).code
  if (code === ErrorCode.AUTH || code === ErrorCode.VERSION) return Exit.AUTH
  if (code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'EHOSTUNREACH' || code === 'ENOTFOUND' || code === 'ETIMEDOUT' || code === 'EPIPE' ||
      code === ErrorCode.CLOSED || code === ErrorCode.TIMEOUT || code === ErrorCode.BUSY) return Exit.UNREACHABLE
  if (code === 'ENOENT' || code === 'EACCES' || code === 'EPERM' || code === 'ENOTDIR' || code === 'EADDRINUSE') return Exit.LOCAL_IO
  return Exit.INTERNAL
}

/** The options that may be given more than once, each time adding a value. */
const REPEATABLE = new Set(['exclude'])

async function main (): Promise<number> {
  let result: Promise<number> | undefined
  const args = hideBin(process.argv)
  const parser = yargs(args)
  // yargs renders the command's help after running it (to cache it), wrapping every line to the
  // terminal: ~15 ms of every run. Wrapped (yargs' default) only when help is what was asked for.
  if (args.length > 0 && !args.includes('--help') && !args.includes('-h')) parser.wrap(null)
  parser
    // An option given twice takes its last value, as in rsync and most tools (yargs makes an
    // array of them, which only --exclude accepts; yargs' setting for it would keep one exclude).
    .middleware((argv) => {
      for (const [key, value] of Object.entries(argv)) {
        if (Array.isArray(value) && key !== '_' && !REPEATABLE.has(key)) argv[key] = value.at(-1)
      }
    }, true)
    .scriptName('fsyncd')
    .version(pkg.version)
    .usage('$0 <command> [options]\n\nKeep a folder on a server identical to a local folder, sending only what the server lacks.')
    .option('log-level', { type: 'string', default: 'info', choices: ['trace', 'debug', 'info', 'warn', 'error', 'silent'], describe: 'log level (logs go to stderr)' })
    .option('verbose', { alias: 'v', type: 'boolean', default: false, describe: 'debug logs (same as --log-level debug)' })
    .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'errors only: no summary, no progress, error logs only' })
    .option('json', { type: 'boolean', default: false, describe: 'machine-readable output on stdout' })
    .option('token-file', { type: 'string', describe: 'file holding the shared token (default: $FSYNCD_TOKEN)' })
    .option('insecure', { type: 'boolean', default: false, describe: 'plain TCP even with a token (by default a token means TLS 1.3 keyed by it); both sides must agree' })
    .command('serve <dest>', 'receive changes into DEST', (y) => y
      .positional('dest', { type: 'string', demandOption: true, describe: 'destination folder (created if missing)' })
      .option('port', { type: 'number', default: 7000, describe: 'TCP port (0 = any free port)' })
      .option('host', { type: 'string', default: '127.0.0.1', describe: 'address to bind' })
      .example('FSYNCD_TOKEN=$(cat ~/.fsyncd-token) $0 serve /srv/mirror --host 0.0.0.0', 'serve on every interface: token and TLS 1.3 required')
      .example('$0 serve /tmp/dest --port 0', 'loopback only, any free port'),
    (argv) => {
      const log = createLogger(levelOf(argv))
      const args = { dest: argv.dest, host: argv.host, port: argv.port, token: readToken(argv.tokenFile), insecure: argv.insecure, json: argv.json }
      result = import('./commands/serve.js').then(async ({ serve }) => await serve(args, log))
    })
    .command('push <src> <target>', 'reconcile SRC to the server at TARGET (host:port), then watch and push every change', (y) => y
      .positional('src', { type: 'string', demandOption: true, describe: 'source folder' })
      .positional('target', { type: 'string', demandOption: true, describe: 'server as host:port' })
      .option('once', { type: 'boolean', default: false, describe: 'reconcile, wait until the server made it durable, exit' })
      .option('state-dir', { type: 'string', describe: 'where the client keeps its caches (default: $XDG_STATE_HOME/fsyncd)' })
      .option('dry-run', { type: 'boolean', default: false, describe: 'print what a sync would do (uploads, server-side copies, moves, deletes); change nothing' })
      .option('exclude', { type: 'string', array: true, default: [], describe: 'gitignore-style pattern to leave out (repeatable); .fsyncignore files work at any level' })
      .option('allow-delete-all', { type: 'boolean', default: false, describe: 'let an empty or missing source empty the destination (refused otherwise)' })
      .option('progress', { type: 'boolean', describe: 'progress of the initial reconcile (default: on a terminal); --no-progress to hide it' })
      .option('rescan-interval', { type: 'number', default: 3600, describe: 'watch mode: seconds between full rescans (the watcher is a hint; this catches what it misses)' })
      .option('debounce', { type: 'number', default: 10, describe: 'watch mode: milliseconds to gather changes before pushing them' })
      .example('$0 push ~/project 127.0.0.1:7000', 'sync, then keep syncing every change')
      .example('$0 push ~/project backup:7000 --once --json', 'one-shot sync with a JSON summary')
      .example('$0 push ~/project backup:7000 --dry-run --exclude node_modules/', 'show the plan, leaving node_modules out'),
    (argv) => {
      const target = parseTarget(argv.target)
      if (target === undefined) throw usageError(`target must be host:port, got ${JSON.stringify(argv.target)}`)
      const log = createLogger(levelOf(argv))
      // setInterval takes at most 2^31-1 ms (longer ones fire every millisecond).
      if (!(argv.rescanInterval > 0 && argv.rescanInterval <= 2_000_000)) throw usageError('--rescan-interval must be a positive number of seconds, at most 2000000')
      if (!(argv.debounce >= 0 && argv.debounce <= 600_000)) throw usageError('--debounce must be 0 to 600000 milliseconds')
      const args = {
        src: argv.src,
        ...target,
        token: readToken(argv.tokenFile),
        insecure: argv.insecure,
        once: argv.once,
        dryRun: argv.dryRun,
        json: argv.json,
        stateDir: argv.stateDir,
        rescanIntervalMs: argv.rescanInterval * 1000,
        debounceMs: argv.debounce,
        excludes: argv.exclude.map(String),
        allowDeleteAll: argv.allowDeleteAll,
        progress: argv.progress,
        quiet: argv.quiet,
      }
      result = import('./commands/push.js').then(async ({ push }) => await push(args, log))
    })
    .command('log <dest>', 'print the history of changes the server applied to DEST', (y) => y
      .positional('dest', { type: 'string', demandOption: true, describe: 'a destination served by fsyncd serve' })
      .option('follow', { alias: 'f', type: 'boolean', default: false, describe: 'keep printing changes as they land' })
      .example('$0 log /srv/mirror --follow', 'watch changes arrive')
      .example('$0 log /srv/mirror --json | jq \'select(.op == "upload")\'', 'the records as JSON lines'),
    (argv) => {
      const ac = new AbortController()
      process.once('SIGINT', () => ac.abort())
      process.once('SIGTERM', () => ac.abort())
      const args = { dest: argv.dest, follow: argv.follow, json: argv.json }
      result = import('./commands/log.js').then(async ({ log }) => await log(args, ac.signal))
    })
    .command('demo', 'sync the bundled sample folder to a temp folder through a local server, and check the result', (y) => y,
      (argv) => {
        const log = createLogger(argv.logLevel === 'info' && !argv.verbose ? 'warn' : levelOf(argv))
        result = import('./commands/demo.js').then(async ({ demo }) => await demo(log))
      })
    .demandCommand(1, 'name a command: serve, push or demo')
    .strict()
    .help()
    .exitProcess(false)
    .fail((msg, err) => {
      if (err !== undefined && err !== null) throw err
      // Thrown, not printed: yargs would go on to its next check, and to the command itself.
      throw usageError(`${msg}\n(see fsyncd --help)`)
    })
  await parser.parseAsync()
  return await (result ?? Promise.resolve(Exit.OK))
}

main().then((code) => {
  process.exitCode = code
  // Leave when nothing is left to do, or 100 ms from now even if a handle lingers (logs are
  // written synchronously: nothing waits to be flushed).
  setTimeout(() => process.exit(code), 100).unref()
}, (err: unknown) => {
  const code = exitCodeOf(err)
  process.stderr.write(`fsyncd: ${(err as Error).message ?? String(err)}\n`)
  process.exitCode = code
  setTimeout(() => process.exit(code), 100).unref()
})
