/**
 * @fsyncd/protocol — the wire between an fsyncd client and server: frames, the message schema
 * with its validators, the mutual-auth handshake, path rules, the shared manifest model and the
 * error codes. The prose spec is protocol/SPEC.md.
 *
 * @example
 * ```ts
 * const conn = new Connection(socket)
 * await clientHandshake(conn, process.env.FSYNCD_TOKEN)
 * conn.maxFrame = MAX_FRAME
 * const ready = await conn.expect('ready')
 * ```
 */
export * from './errors.js'
export * from './frame.js'
export * from './messages.js'
export * from './paths.js'
export * from './manifest.js'
export * from './connection.js'
export * from './handshake.js'
export * from './payload-codec.js'
export * from './transport.js'
