import { weakSum } from './weak-sum.js'

/**
 * Anchors: how a file shorter than a block is found inside a bigger one.
 *
 * Such a file has no full block to roll against, so the index keeps one anchor-sized window of
 * it, and the deltifier rolls an anchor-sized window beside its block-sized one; a hit is
 * confirmed with the xxh64 of the whole file, which starts `offset` bytes before the anchor.
 *
 * Which window: any would do for the deltifier, which looks at every offset, so the index picks
 * one no other file uses yet. Files of one project often share their first bytes (a licence
 * header) or their last; with a fixed position they would all have the same anchor, the
 * candidate cap would hide all but 64 of them, and each hit would cost up to 64 strong hashes.
 * So the writer offers the `ANCHOR_CHOICES` windows of smallest `rank` (a choice made from the
 * content alone, which lands in a file's distinctive part more often than not), and the index
 * takes the first of them whose weak sum is least used.
 */
const MAX_ANCHOR_LENGTH = 64
export const ANCHOR_CHOICES = 16

/** Anchor length for a block size: 64 B at 4 KiB, a quarter block for small test blocks. */
export function anchorLengthFor (blockSize: number): number {
  return Math.min(MAX_ANCHOR_LENGTH, blockSize >>> 2)
}

/** Whether a file of `length` bytes is indexed by an anchor. */
export function isAnchored (length: number, blockSize: number): boolean {
  return length >= anchorLengthFor(blockSize) && length < blockSize
}

/**
 * Candidate anchors of `data[0, length)`, best first: pairs (offset, weak sum as int32) of the
 * `ANCHOR_CHOICES` windows of smallest `rank` (fewer if the file has fewer windows).
 */
export function anchorChoices (data: Uint8Array, length: number, anchorLength: number): Int32Array {
  // The kept windows, by rank (ties: the earlier first), in scratch arrays with one spare slot.
  // Every window is ranked, few are kept: the loop only compares with the worst one kept (a
  // 600-byte file offers ~600 windows and keeps ~75 of them along the way). No closure over
  // the loop's state: with `worst` and `kept` in a closure's context, 20,000 files of
  // 100-1,100 B took 131-141 ms instead of 87-96 ms (/tmp/p10/anc2.mjs, same choices).
  const first = weakSum(data, 0, anchorLength)
  let s1 = first & 0xffff
  let s2 = first >>> 16
  let kept = keep(0, 0, first | 0, rank(first | 0))
  let worst = Infinity
  for (let p = 0; p + anchorLength < length; p++) {
    const out = data[p]!
    s1 = (s1 - out + data[p + anchorLength]!) | 0
    s2 = (s2 - Math.imul(anchorLength, out) + s1) | 0
    const weak = (s1 & 0xffff) | (s2 << 16)
    const mix = rank(weak)
    if (mix < worst) {
      kept = keep(kept, p + 1, weak, mix)
      if (kept === ANCHOR_CHOICES) worst = keptMixes[ANCHOR_CHOICES - 1]!
    }
  }
  const choices = new Int32Array(2 * kept)
  for (let i = 0; i < kept; i++) {
    choices[2 * i] = keptOffsets[i]!
    choices[2 * i + 1] = keptWeaks[i]!
  }
  return choices
}

/** Inserts a window among the `kept` ones, by rank; returns how many are kept now (the spare slot takes the one dropped). */
function keep (kept: number, offset: number, weak: number, mix: number): number {
  let i = kept
  for (; i > 0 && keptMixes[i - 1]! > mix; i--) {
    keptMixes[i] = keptMixes[i - 1]!
    keptOffsets[i] = keptOffsets[i - 1]!
    keptWeaks[i] = keptWeaks[i - 1]!
  }
  keptMixes[i] = mix
  keptOffsets[i] = offset
  keptWeaks[i] = weak
  return kept < ANCHOR_CHOICES ? kept + 1 : kept
}

const keptMixes = new Uint32Array(ANCHOR_CHOICES + 1)
const keptOffsets = new Int32Array(ANCHOR_CHOICES + 1)
const keptWeaks = new Int32Array(ANCHOR_CHOICES + 1)

/**
 * Orders windows for the choice: murmur3's finalizer of the weak sum. It must not be the weak
 * table's own hash: windows chosen for a small product would all land in the first slots and
 * filter words, and every probe would walk one long cluster (the bench fell from 144 to 48 MB/s).
 */
function rank (weak: number): number {
  let h = weak ^ (weak >>> 16)
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  return (h ^ (h >>> 16)) >>> 0
}
