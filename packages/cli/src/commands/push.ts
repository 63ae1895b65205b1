import { homedir } from 'node:os'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { EmptySourceError, PushClient, type PushSummary } from '@fsyncd/client'
import { CliError, Exit } from '../exit-codes.js'
import { showProgress } from '../progress.js'
import { describeOp, formatPlan, formatSummary, formatSyncLine } from '../summary.js'

export interface PushArgs {
  src: string
  host: string
  port: number
  token: string | undefined
  insecure: boolean
  once: boolean
  json: boolean
  stateDir: string | undefined
  rescanIntervalMs: number
  debounceMs: number
  dryRun: boolean
  excludes: string[]
  allowDeleteAll: boolean
  /** Show progress of long work: undefined = only on a terminal (never with --json). */
  progress: boolean | undefined
  /** No summary (errors still go to stderr). */
  quiet: boolean
}

export function defaultStateDir (): string {
  return join(process.env.XDG_STATE_HOME ?? join(homedir(), '.local', 'state'), 'fsyncd')
}

/** Runs a push; an empty source the server would be emptied by exits REFUSED. */
export async function push (args: PushArgs, log: Logger): Promise<number> {
  return await run(args, log).catch((err: unknown) => {
    throw err instanceof EmptySourceError ? new CliError(Exit.REFUSED, err.message) : err
  })
}

async function run (args: PushArgs, log: Logger): Promise<number> {
  const client = new PushClient({
    src: args.src,
    host: args.host,
    port: args.port,
    token: args.token,
    insecure: args.insecure,
    stateDir: args.stateDir ?? defaultStateDir(),
    rescanIntervalMs: args.rescanIntervalMs,
    debounceMs: args.debounceMs,
    excludes: args.excludes,
    allowDeleteAll: args.allowDeleteAll,
    log,
  })
  if (args.dryRun) {
    const ops = await client.dryRun()
    process.stdout.write(args.json ? JSON.stringify({ dryRun: true, ops: ops.map(describeOp) }) + '\n' : formatPlan(ops))
    return Exit.OK
  }
  const report = (s: PushSummary): void => {
    if (args.json) process.stdout.write(JSON.stringify(s) + '\n')
    else if (!args.quiet) process.stdout.write(formatSummary(s))
  }
  const wantProgress = !args.json && !args.quiet && (args.progress ?? process.stdout.isTTY === true)
  const stopProgress = wantProgress ? showProgress(() => client.progress(), process.stdout.isTTY === true) : () => {}
  if (args.once) {
    const summary = await client.once().finally(stopProgress)
    report(summary)
    for (const f of summary.failures) log.error(f, 'not synced')
    return summary.failures.length > 0 ? Exit.PARTIAL : Exit.OK
  }
  let first = true
  const stop = (signal: string): void => {
    log.info({ signal }, 'stopping')
    void client.close()
  }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  // One line per sync, once the server made it durable: the first is the reconcile.
  await client.watch((s) => {
    if (first) stopProgress() // before writing: the bar's line is cleared first
    if (args.json) process.stdout.write(JSON.stringify({ event: 'synced', ...s }) + '\n')
    else if (!args.quiet) process.stdout.write(formatSyncLine(s) + '\n')
    if (first && !args.json && !args.quiet) process.stdout.write(`in sync with ${args.host}:${args.port}; watching ${args.src} (Ctrl-C to stop)\n`)
    first = false
  })
  report(client.summary)
  return Exit.OK
}
