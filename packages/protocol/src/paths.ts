/**
 * Paths on the wire are relative, '/'-separated and canonical: what `path.posix.normalize` would
 * leave alone, with no `.`/`..` component, no empty component, no NUL, not absolute. Checking at
 * the boundary (as syncthing's checkFilename does) means nothing behind it can be tricked into
 * leaving the root by the name alone; the server still refuses to go through symlinked folders.
 */
import { ErrorCode, FsyncdError } from './errors.js'

export const MAX_PATH_BYTES = 4096
export const MAX_NAME_BYTES = 255
/** The server's own state folder at the root of a destination; never user data, never synced. */
export const STATE_DIR = '.fsyncd'
/**
 * How the names of the server's temp files begin. A small file is written beside its final name
 * and renamed over it (as rsync and syncthing do): creating it in its own folder costs half what
 * creating thousands in one shared folder does. Reserved at every level and in any case: never
 * user data, never synced, swept when the server starts.
 */
export const TEMP_NAME_PREFIX = '.fsyncd-tmp-'

/** Whether the last name of `p` (a wire path, or a bare name) is reserved for the server's temp files. */
export function isTempPath (p: string): boolean {
  const start = p.lastIndexOf('/') + 1
  return p.charCodeAt(start) === DOT && p.length - start >= TEMP_NAME_PREFIX.length &&
    p.slice(start, start + TEMP_NAME_PREFIX.length).toLowerCase() === TEMP_NAME_PREFIX
}

/**
 * Returns the reason `p` is not an acceptable wire path, or undefined when it is. One pass over
 * the characters (every path of every message and state file goes through here: 100k paths in
 * ~10 ms, where splitting, measuring each name and normalizing took ~60 ms); the test holds it
 * to the plain statement of the rules, on random and hostile strings.
 */
export function pathProblem (p: string): string | undefined {
  const n = p.length
  if (n === 0) return 'empty path'
  let bytes = 0
  let nameStart = 0
  let nameBytes = 0
  for (let i = 0; i <= n; i++) {
    const c = i < n ? p.charCodeAt(i) : SLASH
    if (c === SLASH) {
      const len = i - nameStart
      if (len === 0) return i === 0 ? 'absolute path' : 'path component "" is not allowed'
      if (len <= 2 && p.charCodeAt(nameStart) === DOT && (len === 1 || p.charCodeAt(nameStart + 1) === DOT)) {
        return `path component "${p.slice(nameStart, i)}" is not allowed`
      }
      if (nameBytes > MAX_NAME_BYTES) return `name longer than ${MAX_NAME_BYTES} bytes`
      if (p.charCodeAt(nameStart) === DOT && len >= TEMP_NAME_PREFIX.length && isTempPath(p.slice(nameStart, i))) return `names starting with ${TEMP_NAME_PREFIX} are reserved`
      bytes += nameBytes + (i < n ? 1 : 0)
      nameStart = i + 1
      nameBytes = 0
    } else if (c === 0) {
      return 'NUL in path'
    } else if (c === BACKSLASH) {
      return 'backslash in path'
    } else if (c < 0x80) {
      nameBytes += 1
    } else if (c < 0x800) {
      nameBytes += 2
    } else if (c >= 0xd800 && c < 0xdc00 && i + 1 < n && (p.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      nameBytes += 4 // a surrogate pair; a lone surrogate is written as U+FFFD, 3 bytes
      i++
    } else {
      nameBytes += 3
    }
  }
  if (bytes > MAX_PATH_BYTES) return `path longer than ${MAX_PATH_BYTES} bytes`
  // Case-folded: on a case-insensitive destination `.FSYNCD` is the same folder.
  if ((n === STATE_DIR.length || p.charCodeAt(STATE_DIR.length) === SLASH) && p.slice(0, STATE_DIR.length).toLowerCase() === STATE_DIR) return `${STATE_DIR} is reserved`
  return undefined
}

const SLASH = 0x2f
const DOT = 0x2e
const BACKSLASH = 0x5c

export function checkPath (p: string): string {
  const problem = pathProblem(p)
  if (problem !== undefined) throw new FsyncdError(ErrorCode.BAD_PATH, `${problem}: ${JSON.stringify(p.slice(0, 200))}`)
  return p
}

/** The parent of a wire path, '' for a top-level entry. */
export function parentOf (p: string): string {
  const i = p.lastIndexOf('/')
  return i < 0 ? '' : p.slice(0, i)
}

/** True when `p` is `dir` itself or inside it. `dir` '' is the root, which contains everything. */
export function isWithin (p: string, dir: string): boolean {
  return dir === '' || p === dir || (p.startsWith(dir) && p.charCodeAt(dir.length) === 47)
}
