import type { Logger } from 'pino'
import { SyncServer } from '@fsyncd/server'
import { isLoopback } from '@fsyncd/server'
import { CliError, Exit } from '../exit-codes.js'

export interface ServeArgs {
  dest: string
  host: string
  port: number
  token: string | undefined
  /** Plain TCP: allowed beyond loopback only when asked for by name. */
  insecure: boolean
  json: boolean
}

/** A configuration that would expose the files on the network; the message says what to do. */


/** Runs the server until SIGINT/SIGTERM. */
export async function serve (args: ServeArgs, log: Logger): Promise<number> {
  const tls = args.token !== undefined && !args.insecure
  const local = isLoopback(args.host) || args.host === 'localhost'
  if (!local && !tls && !args.insecure) {
    throw new CliError(Exit.USAGE, `binding ${args.host} (beyond loopback) needs TLS, which is keyed by the token: set FSYNCD_TOKEN or --token-file ` +
      '(or pass --insecure to serve plain TCP on the network)')
  }
  if (args.token === undefined) {
    log.warn('no token (FSYNCD_TOKEN or --token-file): accepting loopback clients only')
  } else if (!tls && !local) {
    log.warn({ host: args.host }, '--insecure: files and metadata cross the network unencrypted (the token itself never does)')
  }
  const server = new SyncServer({ dest: args.dest, host: args.host, port: args.port, token: args.token, insecure: args.insecure, log })
  const addr = await server.listen()
  if (args.json) process.stdout.write(JSON.stringify({ event: 'listening', host: addr.address, port: addr.port, dest: args.dest, tls }) + '\n')
  else process.stdout.write(`fsyncd serving ${args.dest} on ${addr.address}:${addr.port} (${args.token === undefined ? 'no token: loopback clients only' : tls ? 'TLS 1.3, token' : 'plain TCP, token'})\n`)
  await new Promise<void>((resolve) => {
    const stop = (signal: string): void => {
      log.info({ signal }, 'shutting down')
      resolve()
    }
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
  })
  await server.close(2000)
  return 0
}
