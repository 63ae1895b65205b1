/**
 * A state file that checks itself: its bytes, then their SHA-256, written atomically (temp +
 * rename). Read back, a missing, cut or altered file is undefined: a cache that reads as
 * nothing known.
 */
import { createHash } from 'node:crypto'
import { readFile, rename, writeFile } from 'node:fs/promises'

const SUM_BYTES = 32

/** Writes `body` and its checksum; returns the checksum (it names this version of the file). */
export async function writeChecked (file: string, body: Uint8Array): Promise<Buffer> {
  const sum = createHash('sha256').update(body).digest()
  const tmp = `${file}.${process.pid}.tmp`
  await writeFile(tmp, Buffer.concat([body, sum]))
  await rename(tmp, file)
  return sum
}

/** The body written by writeChecked and its checksum, or undefined. */
export async function readChecked (file: string): Promise<{ body: Buffer, sum: Buffer } | undefined> {
  let bytes: Buffer
  try {
    bytes = await readFile(file)
  } catch {
    return undefined
  }
  if (bytes.length < SUM_BYTES) return undefined
  const body = bytes.subarray(0, bytes.length - SUM_BYTES)
  const sum = createHash('sha256').update(body).digest()
  return sum.equals(bytes.subarray(body.length)) ? { body, sum } : undefined
}
