/**
 * A worker thread of the in-process fuzz: imports the frozen build's protocol package, runs its
 * share of the cases (fuzz-l1.ts) and posts progress, then its report; or (`chunks`) measures one
 * frame pushed a byte at a time, in a thread the caller can stop when it takes too long.
 */
import { parentPort, workerData } from 'node:worker_threads'
import type { Protocol } from './fuzz-common.js'
import { chunkCost, type L1Range, runRange } from './fuzz-l1.js'

const { protocolUrl, range, chunks } = workerData as { protocolUrl: string, range?: L1Range, chunks?: number }
const P = await import(protocolUrl) as Protocol
if (chunks !== undefined) parentPort?.postMessage({ cost: chunkCost(P, chunks) })
if (range !== undefined) parentPort?.postMessage({ report: runRange(P, range, () => {}, (done) => parentPort?.postMessage({ progress: done })) })
