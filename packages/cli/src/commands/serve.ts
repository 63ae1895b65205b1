import type { Logger } from 'pino'
import { SyncServer } from '@fsyncd/server'
import { isLoopback } from '@fsyncd/server'

export interface ServeArgs {
  dest: string
  host: string
  port: number
  token: string | undefined
  json: boolean
}

/** Runs the server until SIGINT/SIGTERM. */
export async function serve (args: ServeArgs, log: Logger): Promise<number> {
  if (args.token === undefined) {
    log.warn('no token (FSYNCD_TOKEN or --token-file): accepting loopback clients only')
    if (!isLoopback(args.host) && args.host !== 'localhost') {
      log.warn({ host: args.host }, 'listening beyond loopback without a token: remote clients will be refused')
    }
  }
  const server = new SyncServer({ dest: args.dest, host: args.host, port: args.port, token: args.token, log })
  const addr = await server.listen()
  if (args.json) process.stdout.write(JSON.stringify({ event: 'listening', host: addr.address, port: addr.port, dest: args.dest }) + '\n')
  else process.stdout.write(`fsyncd serving ${args.dest} on ${addr.address}:${addr.port}${args.token === undefined ? ' (no token: loopback clients only)' : ''}\n`)
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
