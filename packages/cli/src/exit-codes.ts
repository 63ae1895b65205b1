/** What `fsyncd` exits with (README has the same table). */
export const Exit = {
  OK: 0,
  /** A bug or an unexpected failure. */
  INTERNAL: 1,
  /** Bad arguments or configuration (also what yargs uses). */
  USAGE: 2,
  /** The server could not be reached, or the connection was lost and retries ran out. */
  UNREACHABLE: 3,
  /** Authentication failed or protocol versions differ. */
  AUTH: 4,
  /** Connected and synced, but some paths failed to apply on the server (listed on stderr). */
  PARTIAL: 5,
  /** The local folder (source or destination) could not be read or written. */
  LOCAL_IO: 6,
  /** Refused: the source is empty or missing while the server holds files (see --allow-delete-all). */
  REFUSED: 7,
} as const

/** A failure whose exit code the command that threw it already knows. */
export class CliError extends Error {
  constructor (readonly exitCode: number, message: string) {
    super(message)
  }
}
