import { createHash } from 'node:crypto'
import { closeSync, fstatSync, openSync, readSync, type Stats } from 'node:fs'
import { open } from 'node:fs/promises'

const CHUNK = 1024 * 1024
const YIELD_EVERY_CHUNKS = 64

/** The stat fields that change whenever a file's content may have: the identity of a version. */
export function sameVersion (a: Stats, b: Stats): boolean {
  return a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs && a.ino === b.ino
}

/**
 * SHA-256 of a file, read in bounded chunks, with the stat that describes the version hashed.
 * A file that changes while being read is read again (up to `attempts` times), never reported
 * half old, half new; returns undefined when it would not hold still.
 */
export async function hashFileStable (path: string, attempts = 3, sizeHint = Infinity): Promise<{ hash: Buffer, stat: Stats } | undefined> {
  if (sizeHint <= SMALL_FILE) return hashSmallFile(path, attempts)
  for (let i = 0; i < attempts; i++) {
    const fh = await open(path, 'r')
    try {
      const before = await fh.stat()
      const hash = await hashFirst(fh.fd, before.size)
      const after = await fh.stat()
      if (hash !== undefined && sameVersion(before, after)) return { hash, stat: after }
    } finally {
      await fh.close()
    }
  }
  return undefined
}

/** SHA-256 of a file's first `size` bytes; undefined when it is shorter or cannot be read. */
export async function hashPrefix (path: string, size: number): Promise<Buffer | undefined> {
  let fh: Awaited<ReturnType<typeof open>> | undefined
  try {
    fh = await open(path, 'r')
    return await hashFirst(fh.fd, size)
  } catch {
    return undefined
  } finally {
    await fh?.close()
  }
}

/**
 * SHA-256 of the first `size` bytes at `fd` (undefined when there are fewer). Synchronous reads
 * (an async read is a thread-pool round trip per MiB), yielding to the event loop now and then
 * so a huge file does not stall the connection.
 */
async function hashFirst (fd: number, size: number): Promise<Buffer | undefined> {
  const h = createHash('sha256')
  const buf = Buffer.allocUnsafe(Math.min(CHUNK, Math.max(size, 1)))
  for (let at = 0, n = 1; at < size; n++) {
    const got = readSync(fd, buf, 0, Math.min(buf.length, size - at), at)
    if (got === 0) return undefined
    h.update(buf.subarray(0, got))
    at += got
    if (n % YIELD_EVERY_CHUNKS === 0) await new Promise((resolve) => setImmediate(resolve))
  }
  return h.digest()
}

/** Files at most this big are hashed with synchronous calls: a few µs each, where every async call costs a thread-pool round trip. */
export const SMALL_FILE = 256 * 1024

/**
 * The whole content of a small file, read with synchronous calls, and the stat of the version
 * read; undefined when the file changed while being read. Throws when it cannot be opened.
 */
export function readSmallFileStable (path: string): { data: Buffer, stat: Stats } | undefined {
  const fd = openSync(path, 'r')
  try {
    const before = fstatSync(fd)
    const buf = Buffer.allocUnsafe(before.size + 1) // one byte more: a file that grew shows it
    let n = 0
    for (;;) {
      const got = readSync(fd, buf, n, buf.length - n, null)
      if (got === 0 || (n += got) === buf.length) break
    }
    const after = fstatSync(fd)
    return n === before.size && sameVersion(before, after) ? { data: buf.subarray(0, n), stat: after } : undefined
  } finally {
    closeSync(fd)
  }
}

function hashSmallFile (path: string, attempts: number): { hash: Buffer, stat: Stats } | undefined {
  for (let i = 0; i < attempts; i++) {
    const read = readSmallFileStable(path)
    if (read !== undefined) return { hash: createHash('sha256').update(read.data).digest(), stat: read.stat }
  }
  return undefined
}
