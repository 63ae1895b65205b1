/**
 * Seeded, deterministic content: the same seed writes the same bytes on every machine, so runs
 * compare. Binary data is xorshift32 output (incompressible); text is lines drawn from a fixed
 * vocabulary (compresses ~4–6× like source code or logs).
 */
import { mkdir, open, symlink, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'

export type Rng = () => number

/** xorshift32; returns uint32. */
export function rng (seed: number): Rng {
  let x = (seed >>> 0) || 0x9e3779b9
  return () => {
    x ^= x << 13; x >>>= 0
    x ^= x >>> 17
    x ^= x << 5; x >>>= 0
    return x
  }
}

/** An integer in [min, max]. */
export function between (r: Rng, min: number, max: number): number {
  return min + (r() % (max - min + 1))
}

export function binary (seed: number, length: number): Buffer {
  const r = rng(seed)
  const words = new Uint32Array(Math.ceil(length / 4))
  for (let i = 0; i < words.length; i++) words[i] = r()
  return Buffer.from(words.buffer, 0, length)
}

const WORDS = ('the of and to in is for on that with as by this from at be are it an or was which not ' +
  'sync file server client block delta hash index rolling frame socket buffer stream offset length ' +
  'const let return await async function import export interface type string number boolean ' +
  'error warn info debug request response latency bytes total ratio folder rename copy append').split(' ')

/** Compressible text of about `length` bytes (exactly `length`). */
export function text (seed: number, length: number, style: 'prose' | 'log' = 'prose'): Buffer {
  const r = rng(seed)
  const parts: string[] = []
  let size = 0
  let line = 0
  while (size < length) {
    let s = style === 'log'
      ? `2025-01-${String(1 + (line % 28)).padStart(2, '0')}T${String(r() % 24).padStart(2, '0')}:${String(r() % 60).padStart(2, '0')}:${String(r() % 60).padStart(2, '0')}Z ${['INFO', 'WARN', 'DEBUG'][r() % 3] as string} req=${r() % 100000} `
      : ''
    const n = between(r, 4, 14)
    for (let i = 0; i < n; i++) s += (WORDS[r() % WORDS.length] as string) + (i + 1 < n ? ' ' : '')
    s += '\n'
    parts.push(s)
    size += s.length
    line++
  }
  return Buffer.from(parts.join('')).subarray(0, length)
}

/** The kinds of `varied` content. */
export const KINDS = ['code', 'json', 'csv', 'sixbit', 'prose'] as const

/**
 * Content of kind `KINDS[kind]`, about `length` bytes (exactly), each file unlike the others:
 * code-like lines over a vocabulary of its own, JSON records, CSV rows of numbers, bytes of 6
 * bits (a compressible binary), or `text`. Frames that hold several kinds at once are what
 * compressors cut into blocks of their own (libzstd does), which one kind alone never shows.
 */
export function varied (seed: number, length: number, kind: number): Buffer {
  const r = rng(seed)
  const out: string[] = []
  let size = 0
  const add = (s: string): void => { out.push(s); size += s.length }
  switch (KINDS[kind % KINDS.length]) {
    case 'code': {
      const vocabulary = Array.from({ length: 40 }, () => Array.from({ length: between(r, 3, 10) }, () => String.fromCharCode(97 + (r() % 26))).join(''))
      while (size < length) {
        const w = (): string => vocabulary[r() % vocabulary.length] as string
        add(`${' '.repeat(2 * (r() % 4))}const ${w()} = ${w()}.${w()}(${w()}, ${r() % 1000}) // ${w()} ${w()}\n`)
      }
      break
    }
    case 'json':
      for (let i = 0; size < length; i++) add(`{"id":${i},"name":"${(r() >>> 0).toString(36)}","score":${(r() % 10000) / 100},"tags":["${WORDS[r() % WORDS.length] as string}","${WORDS[r() % WORDS.length] as string}"],"ok":${r() % 2 === 0}}\n`)
      break
    case 'csv':
      for (let i = 0; size < length; i++) add(`${i},${r() % 100000},${(r() % 1000000) / 1000},${r() % 7},${(r() >>> 0).toString(16)}\n`)
      break
    case 'sixbit':
      return Buffer.from(binary(seed, length).map((b) => b & 0x3f))
    default:
      return text(seed, length)
  }
  return Buffer.from(out.join('')).subarray(0, length)
}

/** Writes `data` at `path`, creating folders; `mode` applied exactly (umask aside). */
export async function put (path: string, data: Buffer, mode = 0o644): Promise<void> {
  await mkdir(dirname(path), { recursive: true })
  await writeFile(path, data, { mode })
  const fh = await open(path, 'r')
  try { await fh.chmod(mode) } finally { await fh.close() }
}

export async function link (path: string, target: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true })
  await symlink(target, path)
}
