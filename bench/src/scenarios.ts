/**
 * The measured changes. Each scenario writes a base tree (synced by every tool first, not
 * measured), then applies one change to the source; the sync of that change is the measurement.
 * Sizes are the (full) or about a tenth (quick). All content is seeded.
 */
import { copyFile, mkdir, open, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { between, binary, KINDS, link, put, rng, text, varied } from './data.js'

export interface Sizes {
  /** initial: incompressible binaries. */
  blobs: number
  blobSize: number
  /** initial: compressible text files. */
  texts: number
  textSize: number
  /** initial: small files (mixed text and binary), bytes drawn in [smallMin, smallMax]. */
  smalls: number
  smallMin: number
  smallMax: number
  /** edit, insert: the large binary. */
  large: number
  /** append: log size and appended bytes. */
  log: number
  appended: number
  /** copy: the copied file. */
  copied: number
  /** move: files in the renamed folder. */
  movedFiles: number
  /** concat: each of the two parts. */
  part: number
  /** varied: files of several kinds of content. */
  variedFiles: number
}

const MB = 1_000_000

export const FULL: Sizes = {
  blobs: 4, blobSize: 15 * MB, texts: 20, textSize: 1 * MB, smalls: 3000, smallMin: 500, smallMax: 12_000,
  large: 100 * MB, log: 20 * MB, appended: 1 * MB, copied: 20 * MB, movedFiles: 2000, part: 10 * MB, variedFiles: 2000,
}

export const QUICK: Sizes = {
  blobs: 4, blobSize: 1.5 * MB, texts: 20, textSize: 100_000, smalls: 300, smallMin: 500, smallMax: 12_000,
  large: 8 * MB, log: 2 * MB, appended: 128_000, copied: 4 * MB, movedFiles: 300, part: 2 * MB, variedFiles: 300,
}

export interface Scenario {
  name: string
  /** What the change is, for the table's legend. */
  describe: (s: Sizes) => string
  base: (src: string, s: Sizes) => Promise<void>
  change: (src: string, s: Sizes) => Promise<void>
  /**
   * The change is a whole tree into an empty destination. No "fsyncd, watching" row: a daemon
   * syncs such a tree while it is being written, so the time after the last write says little.
   */
  fromEmpty?: true
}

const mb = (n: number): string => n >= MB ? `${+(n / MB).toFixed(1)} MB` : `${+(n / 1000).toFixed(0)} KB`

/** The mixed tree of `initial`: binaries, text, thousands of small files, modes, links, empties. */
async function mixedTree (root: string, s: Sizes): Promise<void> {
  for (let i = 0; i < s.blobs; i++) await put(join(root, 'bin', `blob-${i}.bin`), binary(100 + i, s.blobSize))
  for (let i = 0; i < s.texts; i++) await put(join(root, 'text', `doc-${i}.txt`), text(200 + i, s.textSize))
  const r = rng(300)
  for (let i = 0; i < s.smalls; i++) {
    const size = between(r, s.smallMin, s.smallMax)
    const data = i % 2 === 0 ? text(1000 + i, size) : binary(1000 + i, size)
    await put(join(root, 'small', `d${String(i % 30).padStart(2, '0')}`, `f${i}.${i % 2 === 0 ? 'txt' : 'dat'}`), data)
  }
  await put(join(root, 'tools', 'run.sh'), Buffer.from('#!/bin/sh\necho fsyncd bench\n'), 0o755)
  await put(join(root, 'tools', 'secret.conf'), text(7, 300), 0o600)
  await put(join(root, 'empty.txt'), Buffer.alloc(0))
  await mkdir(join(root, 'empty-dir'), { recursive: true })
  await link(join(root, 'latest.bin'), 'bin/blob-0.bin')
  await link(join(root, 'small', 'docs'), '../text')
}

/** A folder of many files in subfolders, ~11 KB each, half text. */
async function project (root: string, files: number): Promise<void> {
  const r = rng(400)
  for (let i = 0; i < files; i++) {
    const size = between(r, 1000, 21_000)
    const data = i % 2 === 0 ? text(5000 + i, size) : binary(5000 + i, size)
    await put(join(root, `m${i % 20}`, `s${i % 7}`, `file-${i}.${i % 2 === 0 ? 'src' : 'obj'}`), data)
  }
}

export const SCENARIOS: Scenario[] = [
  {
    name: 'initial',
    fromEmpty: true,
    describe: (s) => `empty destination ← mixed tree of ${mb(s.blobs * s.blobSize + s.texts * s.textSize + s.smalls * (s.smallMin + s.smallMax) / 2)} (${s.blobs} binaries, ${s.texts} text files, ${s.smalls} small files, modes, symlinks)`,
    base: async () => {},
    change: mixedTree,
  },
  {
    name: 'edit',
    describe: (s) => `10 × 100 B overwrites scattered in a ${mb(s.large)} binary`,
    base: async (src, s) => { await put(join(src, 'data', 'disk.img'), binary(11, s.large)) },
    change: async (src, s) => {
      const r = rng(12)
      const fh = await open(join(src, 'data', 'disk.img'), 'r+')
      try {
        for (let i = 0; i < 10; i++) await fh.write(binary(1200 + i, 100), 0, 100, r() % (s.large - 100))
      } finally { await fh.close() }
    },
  },
  {
    name: 'insert',
    describe: (s) => `100 B inserted at the start and 100 B in the middle of a ${mb(s.large)} binary`,
    base: async (src, s) => { await put(join(src, 'data', 'video.mp4'), binary(21, s.large)) },
    change: async (src, s) => {
      const path = join(src, 'data', 'video.mp4')
      const old = await readFile(path)
      const mid = Math.floor(s.large / 2) + 13
      await writeFile(path, Buffer.concat([binary(22, 100), old.subarray(0, mid), binary(23, 100), old.subarray(mid)]))
    },
  },
  {
    name: 'append',
    describe: (s) => `${mb(s.appended)} of log lines appended to a ${mb(s.log)} log`,
    base: async (src, s) => { await put(join(src, 'logs', 'app.log'), text(31, s.log, 'log')) },
    change: async (src, s) => {
      const fh = await open(join(src, 'logs', 'app.log'), 'a')
      try { await fh.write(text(32, s.appended, 'log')) } finally { await fh.close() }
    },
  },
  {
    name: 'copy',
    describe: (s) => `a ${mb(s.copied)} binary copied into another folder`,
    base: async (src, s) => { await put(join(src, 'a', 'model.bin'), binary(41, s.copied)) },
    change: async (src) => {
      await mkdir(join(src, 'b'), { recursive: true })
      await copyFile(join(src, 'a', 'model.bin'), join(src, 'b', 'model-copy.bin'))
    },
  },
  {
    name: 'move',
    describe: (s) => `a folder of ${s.movedFiles} files (~11 KB each) renamed into another folder`,
    base: async (src, s) => { await project(join(src, 'proj'), s.movedFiles) },
    change: async (src) => {
      await mkdir(join(src, 'archive'), { recursive: true })
      await rename(join(src, 'proj'), join(src, 'archive', 'proj-2024'))
    },
  },
  {
    name: 'concat',
    describe: (s) => `a new file that is two existing ${mb(s.part)} files back to back`,
    base: async (src, s) => {
      await put(join(src, 'parts', 'one.bin'), binary(61, s.part))
      await put(join(src, 'parts', 'two.bin'), binary(62, s.part))
    },
    change: async (src) => {
      const both = Buffer.concat([await readFile(join(src, 'parts', 'one.bin')), await readFile(join(src, 'parts', 'two.bin'))])
      await put(join(src, 'joined', 'both.bin'), both)
    },
  },
  {
    name: 'varied',
    fromEmpty: true,
    describe: (s) => `empty destination ← ${s.variedFiles} files of ${KINDS.length} kinds side by side (${KINDS.join(', ')}), 1–40 KB each`,
    base: async () => {},
    change: async (src, s) => {
      const r = rng(700)
      for (let i = 0; i < s.variedFiles; i++) {
        await put(join(src, `v${String(i % 16).padStart(2, '0')}`, `f${i}.${KINDS[i % KINDS.length] as string}`), varied(7000 + i, between(r, 1000, 40_000), i))
      }
    },
  },
]
