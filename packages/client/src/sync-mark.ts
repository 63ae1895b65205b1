/**
 * The mark a `--once` run leaves when it ends with nothing left to do: the checksum of the local
 * state file it saved, and the digest of the server's tree it left. The next run that loads
 * that same local state, finds nothing changed on disk, and meets a server with that same
 * digest has nothing to do either, and knows it without building its view of the server or
 * planning (100k files: ~0.3 s). The mark checks itself: a later local state or a server changed
 * by anyone makes it not apply, so it is never deleted, only replaced.
 */
import { readChecked, writeChecked } from '@fsyncd/tree'

export interface SyncMark { localState: Buffer, serverDigest: Buffer }

const LEN = 32

export async function readSyncMark (file: string): Promise<SyncMark | undefined> {
  const checked = await readChecked(file)
  if (checked?.body.length !== 2 * LEN) return undefined
  const { body } = checked
  return { localState: Buffer.from(body.subarray(0, LEN)), serverDigest: Buffer.from(body.subarray(LEN)) }
}

export async function writeSyncMark (file: string, mark: SyncMark): Promise<void> {
  await writeChecked(file, Buffer.concat([mark.localState, mark.serverDigest]))
}
