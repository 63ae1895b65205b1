import pino, { type Logger } from 'pino'

/** Logs are pino JSON lines on stderr; pretty when stderr is a terminal. stdout is for the user. */
export function createLogger (level: string): Logger {
  if (process.stderr.isTTY) {
    return pino({ level }, pino.transport({ target: 'pino-pretty', options: { destination: 2, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } }))
  }
  return pino({ level }, pino.destination({ fd: 2, sync: true }))
}
