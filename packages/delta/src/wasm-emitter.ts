/**
 * A WebAssembly assembler for the few instructions our kernels need (`roll-kernel.ts`,
 * `block-sums-kernel.ts`), so that they ship as readable source rather than as a binary blob or
 * a dependency.
 *
 * A function body is a list of instructions written as in the text format (WAT), one tuple each:
 * `['local.get', '$p']`, `['i32.load8_u', OFFSET]`, `['br_if', '$done']`. Locals and labels are
 * named and resolved here (a branch's label becomes its depth); memory instructions take the
 * static offset (alignment hints are always 0: wasm allows any address, and V8 ignores the hint).
 * Only what the kernels use is known; anything else throws, naming the instruction.
 *
 * Reference: the WebAssembly core spec, binary format (§5), and the fixed-width SIMD proposal's
 * BinarySIMD.md for the 0xfd-prefixed opcodes.
 */

export type ValType = 'i32' | 'v128'

/** An instruction: its text-format name, then its immediates (a local or label name, a number, bytes). */
export type Instr = readonly [string, ...Array<string | number | readonly number[]>]

export interface Func {
  name: string
  params: ReadonlyArray<readonly [string, ValType]>
  result: ValType
  locals: ReadonlyArray<readonly [string, ValType]>
  body: readonly Instr[]
}

const VALTYPE: Record<ValType, number> = { i32: 0x7f, v128: 0x7b }

/** How an instruction's immediates are encoded. */
type Imm =
  | 'none'
  | 'block' // a label name it opens; block type: empty
  | 'label' // a label name, encoded as its depth
  | 'local' // a local name, encoded as its index
  | 'i32' // signed LEB128
  | 'mem' // static offset (align 0, then offset)
  | 'mem+lane' // static offset, then a lane index
  | 'lane' // a lane index byte
  | 'bytes16' // 16 raw bytes (v128.const, i8x16.shuffle)

const SIMD = 0xfd
const OPS: Record<string, readonly [opcode: readonly number[], imm: Imm]> = {
  block: [[0x02], 'block'],
  loop: [[0x03], 'block'],
  if: [[0x04], 'block'],
  end: [[0x0b], 'none'],
  br: [[0x0c], 'label'],
  br_if: [[0x0d], 'label'],
  'local.get': [[0x20], 'local'],
  'local.set': [[0x21], 'local'],
  'local.tee': [[0x22], 'local'],
  'i32.load8_u': [[0x2d], 'mem'],
  'i32.load16_u': [[0x2f], 'mem'],
  'i32.store': [[0x36], 'mem'],
  'i32.const': [[0x41], 'i32'],
  'i32.eqz': [[0x45], 'none'],
  'i32.lt_u': [[0x49], 'none'],
  'i32.gt_u': [[0x4b], 'none'],
  'i32.ge_u': [[0x4f], 'none'],
  'i32.ctz': [[0x68], 'none'],
  'i32.add': [[0x6a], 'none'],
  'i32.sub': [[0x6b], 'none'],
  'i32.mul': [[0x6c], 'none'],
  'i32.and': [[0x71], 'none'],
  'i32.or': [[0x72], 'none'],
  'i32.shl': [[0x74], 'none'],
  'i32.shr_u': [[0x76], 'none'],
  'v128.load': [[SIMD, 0x00], 'mem'],
  'v128.load8x8_u': [[SIMD, 0x02], 'mem'],
  'v128.store': [[SIMD, 0x0b], 'mem'],
  'v128.const': [[SIMD, 0x0c], 'bytes16'],
  'i8x16.shuffle': [[SIMD, 0x0d], 'bytes16'],
  'i8x16.swizzle': [[SIMD, 0x0e], 'none'],
  'i16x8.splat': [[SIMD, 0x10], 'none'],
  'i16x8.extract_lane_u': [[SIMD, 0x19], 'lane'],
  'i32x4.extract_lane': [[SIMD, 0x1b], 'lane'],
  'i32x4.ne': [[SIMD, 0x38], 'none'],
  'v128.and': [[SIMD, 0x4e], 'none'],
  'v128.or': [[SIMD, 0x50], 'none'],
  'v128.any_true': [[SIMD, 0x53], 'none'],
  'v128.load8_lane': [[SIMD, 0x54], 'mem+lane'],
  'i32x4.bitmask': [[SIMD, 0xa4], 'none'],
  'i16x8.extadd_pairwise_i8x16_u': [[SIMD, 0x7d], 'none'],
  'i32x4.extadd_pairwise_i16x8_u': [[SIMD, 0x7f], 'none'],
  'i16x8.extend_low_i8x16_u': [[SIMD, 0x89], 'none'],
  'i16x8.extend_high_i8x16_u': [[SIMD, 0x8a], 'none'],
  'i16x8.add': [[SIMD, 0x8e], 'none'],
  'i16x8.sub': [[SIMD, 0x91], 'none'],
  'i16x8.mul': [[SIMD, 0x95], 'none'],
  'i32x4.shr_u': [[SIMD, 0xad], 'none'],
  'i32x4.add': [[SIMD, 0xae], 'none'],
  'i32x4.mul': [[SIMD, 0xb5], 'none'],
  'i32x4.dot_i16x8_s': [[SIMD, 0xba], 'none'],
}

/**
 * A module of `funcs` (each exported under its name) and one memory of `memoryPages` 64 KiB
 * pages, exported as `memory`, with no maximum (the host grows it).
 */
export function assemble (funcs: readonly Func[], memoryPages: number): Uint8Array<ArrayBuffer> {
  const out: number[] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00] // "\0asm", version 1
  const types = funcs.map((f) => [0x60, ...vec(f.params.map(([, t]) => [VALTYPE[t]])), ...vec([[VALTYPE[f.result]]])])
  section(out, 1, vec(types)) // types: one per function
  section(out, 3, vec(funcs.map((_, i) => uleb(i)))) // functions: their type indices
  section(out, 5, vec([[0x00, ...uleb(memoryPages)]])) // memory: min only
  section(out, 7, vec([ // exports
    [...name('memory'), 0x02, 0x00],
    ...funcs.map((f, i) => [...name(f.name), 0x00, ...uleb(i)]),
  ]))
  section(out, 10, vec(funcs.map((f) => { // code
    const body = [...vec(f.locals.map(([, t]) => [0x01, VALTYPE[t]])), ...code(f), 0x0b]
    return [...uleb(body.length), ...body]
  })))
  return Uint8Array.from(out)
}

function code (f: Func): number[] {
  const locals = new Map<string, number>()
  for (const [n] of [...f.params, ...f.locals]) {
    if (locals.has(n)) throw new Error(`${f.name}: local ${n} declared twice`)
    locals.set(n, locals.size)
  }
  const labels: string[] = [] // innermost last
  const out: number[] = []
  for (const [op, ...imm] of f.body) {
    const spec = OPS[op]
    if (spec === undefined) throw new Error(`${f.name}: unknown instruction ${op}`)
    const [opcode, kind] = spec
    out.push(opcode[0]!, ...opcode.slice(1).flatMap(uleb))
    const arg = imm[0]
    switch (kind) {
      case 'none':
        if (op === 'end' && labels.pop() === undefined) throw new Error(`${f.name}: end without block`)
        break
      case 'block':
        labels.push(String(arg))
        out.push(0x40)
        break
      case 'label': {
        const at = labels.lastIndexOf(String(arg))
        if (at < 0) throw new Error(`${f.name}: ${op} to unknown label ${String(arg)}`)
        out.push(...uleb(labels.length - 1 - at))
        break
      }
      case 'local': {
        const index = locals.get(String(arg))
        if (index === undefined) throw new Error(`${f.name}: unknown local ${String(arg)}`)
        out.push(...uleb(index))
        break
      }
      case 'i32':
        out.push(...sleb(Number(arg)))
        break
      case 'mem':
        out.push(0x00, ...uleb(Number(arg)))
        break
      case 'mem+lane':
        out.push(0x00, ...uleb(Number(arg)), Number(imm[1]))
        break
      case 'lane':
        out.push(Number(arg))
        break
      case 'bytes16': {
        const bytes = arg as readonly number[]
        if (bytes.length !== 16) throw new Error(`${f.name}: ${op} takes 16 bytes`)
        out.push(...bytes)
        break
      }
    }
  }
  if (labels.length > 0) throw new Error(`${f.name}: unclosed ${labels.join(', ')}`)
  return out
}

function section (out: number[], id: number, body: number[]): void {
  out.push(id, ...uleb(body.length), ...body)
}

function vec (items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()]
}

function name (s: string): number[] {
  return vec([...new TextEncoder().encode(s)].map((b) => [b]))
}

/** Unsigned LEB128. */
export function uleb (n: number): number[] {
  const out: number[] = []
  do {
    let b = n & 0x7f
    n >>>= 7
    if (n !== 0) b |= 0x80
    out.push(b)
  } while (n !== 0)
  return out
}

/** Signed LEB128 of an int32. */
export function sleb (n: number): number[] {
  const out: number[] = []
  n |= 0
  for (;;) {
    const b = n & 0x7f
    n >>= 7
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b)
      return out
    }
    out.push(b | 0x80)
  }
}
