import { createRequire } from 'node:module'
import pino, { type Logger } from 'pino'

/**
 * Logs are pino JSON lines on stderr; pretty when stderr is a terminal. stdout is for the user.
 *
 * On a terminal pino-pretty runs in this thread, as a stream: a transport would start a worker
 * thread from pino's files on disk, which the bundled CLI does not have. pino-pretty itself
 * (colors, date formatting) is loaded only then.
 */
export function createLogger (level: string): Logger {
  if (process.stderr.isTTY) {
    const pretty = createRequire(import.meta.url)('pino-pretty') as (opts: object) => NodeJS.WritableStream
    return pino({ level }, pretty({ destination: 2, sync: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' }))
  }
  return pino({ level }, pino.destination({ fd: 2, sync: true }))
}
