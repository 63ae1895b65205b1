/**
 * The mark a `--once` run leaves when it ends with nothing left to do: the checksum of the local
 * state file it saved, and the digest of the server's tree it left. The next run that loads
 * that same local state, finds nothing changed on disk, and meets a server with that same
 * digest has nothing to do either, and knows it without building its view of the server or
 * planning (100k files: ~0.3 s). The mark checks itself: a later local state or a server changed
 * by anyone makes it not apply, so it is never deleted, only replaced.
 */
import { createHash } from 'node:crypto'
import { readFile, rename, writeFile } from 'node:fs/promises'

export interface SyncMark { localState: Buffer, serverDigest: Buffer }

const LEN = 32

export async function readSyncMark (file: string): Promise<SyncMark | undefined> {
  let bytes: Buffer
  try {
    bytes = await readFile(file)
  } catch {
    return undefined
  }
  if (bytes.length !== 3 * LEN) return undefined
  const body = bytes.subarray(0, 2 * LEN)
  if (!createHash('sha256').update(body).digest().equals(bytes.subarray(2 * LEN))) return undefined
  return { localState: Buffer.from(body.subarray(0, LEN)), serverDigest: Buffer.from(body.subarray(LEN)) }
}

export async function writeSyncMark (file: string, mark: SyncMark): Promise<void> {
  const body = Buffer.concat([mark.localState, mark.serverDigest])
  const tmp = `${file}.${process.pid}.tmp`
  await writeFile(tmp, Buffer.concat([body, createHash('sha256').update(body).digest()]))
  await rename(tmp, file)
}
