/**
 * A deliberately small MessagePack writer, independent of msgpackr, so malformed-input tables and
 * the fuzz can say exactly which bytes go on the wire: own `__proto__` keys, duplicate and
 * non-string keys, 64-bit integers beyond 2^53, floats where integers belong, raw byte splices.
 */
/** Bytes spliced in as they are. */
export class Raw {
  constructor (readonly bytes: Buffer) {}
}

/** A map written from explicit pairs: duplicate keys, non-string keys, any order. */
export class Pairs {
  constructor (readonly pairs: Array<[unknown, unknown]>) {}
}

/** A 64-bit integer written as uint64 (cf) or int64 (d3) whatever its size. */
export class Int64 {
  constructor (readonly value: bigint) {}
}

function head (small: number, fix: number, c8: number | undefined, c16: number, c32: number, n: number): Buffer {
  if (n < small) return Buffer.from([fix | n])
  if (c8 !== undefined && n < 0x100) return Buffer.from([c8, n])
  if (n < 0x10000) { const b = Buffer.alloc(3); b[0] = c16; b.writeUInt16BE(n, 1); return b }
  const b = Buffer.alloc(5); b[0] = c32; b.writeUInt32BE(n, 1); return b
}

function packInt (n: number): Buffer {
  if (n >= 0) {
    if (n < 0x80) return Buffer.from([n])
    if (n < 0x100) return Buffer.from([0xcc, n])
    if (n < 0x10000) { const b = Buffer.alloc(3); b[0] = 0xcd; b.writeUInt16BE(n, 1); return b }
    if (n < 0x100000000) { const b = Buffer.alloc(5); b[0] = 0xce; b.writeUInt32BE(n, 1); return b }
    const b = Buffer.alloc(9); b[0] = 0xcf; b.writeBigUInt64BE(BigInt(n), 1); return b
  }
  if (n >= -32) return Buffer.from([n & 0xff])
  if (n >= -0x80) { const b = Buffer.alloc(2); b[0] = 0xd0; b.writeInt8(n, 1); return b }
  if (n >= -0x8000) { const b = Buffer.alloc(3); b[0] = 0xd1; b.writeInt16BE(n, 1); return b }
  if (n >= -0x80000000) { const b = Buffer.alloc(5); b[0] = 0xd2; b.writeInt32BE(n, 1); return b }
  const b = Buffer.alloc(9); b[0] = 0xd3; b.writeBigInt64BE(BigInt(n), 1); return b
}

/** MessagePack of `value`, written by hand (independent of msgpackr). */
export function pack (value: unknown): Buffer {
  const parts: Buffer[] = []
  const write = (v: unknown): void => {
    if (v instanceof Raw) { parts.push(v.bytes); return }
    if (v === null || v === undefined) { parts.push(Buffer.from([0xc0])); return }
    if (v === false) { parts.push(Buffer.from([0xc2])); return }
    if (v === true) { parts.push(Buffer.from([0xc3])); return }
    if (v instanceof Int64) {
      const b = Buffer.alloc(9)
      if (v.value >= 0n) { b[0] = 0xcf; b.writeBigUInt64BE(BigInt.asUintN(64, v.value), 1) } else { b[0] = 0xd3; b.writeBigInt64BE(BigInt.asIntN(64, v.value), 1) }
      parts.push(b)
      return
    }
    if (typeof v === 'number') {
      if (Number.isSafeInteger(v) && !Object.is(v, -0)) { parts.push(packInt(v)); return }
      const b = Buffer.alloc(9); b[0] = 0xcb; b.writeDoubleBE(v, 1); parts.push(b)
      return
    }
    if (typeof v === 'string') {
      const s = Buffer.from(v, 'utf8')
      parts.push(head(32, 0xa0, 0xd9, 0xda, 0xdb, s.length), s)
      return
    }
    if (v instanceof Uint8Array) {
      parts.push(head(0, 0, 0xc4, 0xc5, 0xc6, v.length), Buffer.from(v.buffer, v.byteOffset, v.byteLength))
      return
    }
    if (Array.isArray(v)) {
      parts.push(head(16, 0x90, undefined, 0xdc, 0xdd, v.length))
      for (const item of v) write(item)
      return
    }
    const pairs: Array<[unknown, unknown]> = v instanceof Pairs ? v.pairs : Object.keys(v as object).map((k) => [k, (v as Record<string, unknown>)[k]])
    parts.push(head(16, 0x80, undefined, 0xde, 0xdf, pairs.length))
    for (const [k, item] of pairs) { write(k); write(item) }
  }
  write(value)
  return Buffer.concat(parts)
}
