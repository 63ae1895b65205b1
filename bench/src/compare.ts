/**
 * One scenario, every tool: build the base tree, sync it with each tool into its own destination,
 * apply the change, then ONE measured sync per tool, then check each destination against the
 * source. Tools are independent: same source, separate destinations, separate servers.
 */
import { execFileSync } from 'node:child_process'
import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import type { Link } from './proxy.js'
import { type Scenario, type Sizes } from './scenarios.js'
import { failed, type SyncResult, type Tool } from './tools/tool.js'
import { compareTrees, snapshot } from './verify.js'

export interface ToolOutcome extends SyncResult {
  /** Total bytes of the base sync (not measured, for reference). */
  baseTotal: number
  /** Differences between destination and source after the measured sync (empty: correct). */
  mismatch: string[]
  /** With several runs: the fastest and slowest wall time (the row shows the median run). */
  wallRangeMs?: [number, number]
}

export interface ScenarioResult {
  name: string
  description: string
  outcomes: ToolOutcome[]
  setupMs: number
  /** How many runs the outcomes are the median of (absent: one). */
  runs?: number
}

const log = (s: string): void => { process.stderr.write(`[bench] ${s}\n`) }

const slug = (name: string): string => name.replace(/[^a-z0-9]+/gi, '-')

async function guarded (tool: Tool, what: string, link?: Link): Promise<SyncResult> {
  try { return await tool.sync(link) } catch (err) { return failed(tool.name, `${what}: ${(err as Error).message}`) }
}

/**
 * Gives each measured sync the same start, whatever ran before it:
 * - a quiet disk: what the tools before wrote is still being written back, and a tool that fsyncs
 *   would wait behind it (ext4 commits it in the same journal transaction);
 * - memory the VM has backed: this VM hands free guest pages back to its host (virtio-balloon
 *   free page reporting), and touching them again costs a host fault each (0.6 GB/s against
 *   2.6 GB/s for pages freed just before). Whichever tool ran first after the setup paid for it:
 *   in reverse order, naive's edit took 455 ms instead of 249 and rsync --fsync's 467 instead of
 *   264. A child that touches 512 MiB and exits leaves that much backed memory free.
 */
function quiesce (): void {
  execFileSync('sync')
  execFileSync(process.execPath, ['-e', 'Buffer.alloc(512 * 2 ** 20).fill(1)'])
}

/** `link`: the measured syncs (not the base ones) go over it. */
export async function runScenario (sc: Scenario, sizes: Sizes, work: string, makeTools: () => Tool[], link?: Link): Promise<ScenarioResult> {
  const t0 = performance.now()
  const dir = join(work, sc.name)
  const src = join(dir, 'src')
  await mkdir(src, { recursive: true })
  await sc.base(src, sizes)
  const baseWritten = Date.now()
  const tools = makeTools()
  const base = new Map<Tool, SyncResult>()
  const opened = new Set<Tool>()
  /** Copies of the source for the tools that keep their own (see Tool.ownSource). */
  const ownSources = new Map<Tool, string>()
  for (const tool of tools) {
    const dest = join(dir, `dest-${slug(tool.name)}`)
    await mkdir(dest, { recursive: true })
    try {
      let from = src
      if (tool.ownSource === true) {
        from = join(dir, `src-${slug(tool.name)}`)
        await mkdir(from, { recursive: true })
        await sc.base(from, sizes)
        ownSources.set(tool, from)
      }
      await tool.open(from, dest, dir)
      opened.add(tool)
      base.set(tool, await guarded(tool, 'base sync'))
    } catch (err) {
      base.set(tool, failed(tool.name, `start: ${(err as Error).message}`))
    }
  }
  // rsync's quick check compares mtimes in whole seconds (without --modify-window=-1): an edit
  // that keeps the size, made within the second the base was written, is invisible to it. Real
  // edits come later than that; so does this one (the quick bench's base syncs can all take
  // less than a second).
  const wait = baseWritten + 1100 - Date.now()
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
  await sc.change(src, sizes)
  const setupMs = performance.now() - t0
  const outcomes: ToolOutcome[] = []
  const want = await snapshot(src)
  for (const tool of tools) {
    const b = base.get(tool) as SyncResult
    quiesce()
    const own = ownSources.get(tool)
    let r = b
    if (opened.has(tool)) {
      r = own !== undefined && tool.measure !== undefined
        ? await tool.measure(async () => { await sc.change(own, sizes) }, link).catch((err: unknown) => failed(tool.name, `measured sync: ${(err as Error).message}`))
        : await guarded(tool, 'measured sync', link)
    }
    const mismatch = await compareTrees(own ?? want, join(dir, `dest-${slug(tool.name)}`))
    if (r.error !== undefined) mismatch.unshift(`tool failed: ${r.error}`)
    if (b.error !== undefined && b !== r) mismatch.unshift(`base sync failed: ${b.error}`)
    outcomes.push({ ...r, baseTotal: b.total, mismatch })
    log(`${sc.name} ${tool.name}: ${r.total} B in ${r.wallMs.toFixed(0)} ms${mismatch.length > 0 ? ` MISMATCH ${mismatch.join('; ')}` : ''}`)
    await tool.close()
  }
  await rm(dir, { recursive: true, force: true })
  return { name: sc.name, description: sc.describe(sizes), outcomes, setupMs }
}
