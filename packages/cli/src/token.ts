import { readFileSync } from 'node:fs'
import { ErrorCode, FsyncdError } from '@fsyncd/protocol'

/**
 * The shared token: from --token-file (first line) or FSYNCD_TOKEN. Never from a bare argument,
 * which would show in `ps` and shell history.
 */
export function readToken (tokenFile: string | undefined): string | undefined {
  let token: string | undefined
  if (tokenFile !== undefined) {
    token = readFileSync(tokenFile, 'utf8').split('\n')[0]?.trim()
    if (token === undefined || token === '') throw new FsyncdError(ErrorCode.AUTH, `token file ${tokenFile} is empty`)
  } else {
    token = process.env.FSYNCD_TOKEN
    if (token === '') token = undefined
  }
  if (token !== undefined && token.length < 16) throw new FsyncdError(ErrorCode.AUTH, 'the token must be at least 16 characters (try: openssl rand -hex 32)')
  return token
}
