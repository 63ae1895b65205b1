/**
 * Weak sum → block entries: an open-addressing hash table in an `Int32Array`, with a bitmap in
 * front of it.
 *
 * Why this shape: the deltifier asks "is any block's weak sum equal to this?" at every byte of
 * unmatched data, and the answer is nearly always no. The bitmap answers that with one bit test
 * in at most 2 MiB (256 KiB for a 64 MiB index) that stays in cache; only a hit (a real
 * candidate or a ~1 % false positive) probes the table. Both are indexed by the HIGH bits of a
 * multiplicative hash of the weak sum: the low bits of an Adler-style sum are poorly mixed and
 * make long probe chains.
 *
 * Slots hold entry ids only (the weak sum is read from the index's entry array): 7–14 bytes per
 * entry, on top of the index's 12. Deleted entries leave tombstones; the owner rebuilds the table
 * when `full` says so.
 */
export const WEAK_HASH_MULTIPLIER = 0x9e3779b1

const EMPTY = 0
const TOMBSTONE = -1
/**
 * Live entries plus tombstones, as a fraction of the slots, above which the owner rebuilds.
 * Linear probing stays short up to here (a miss probes ~6 slots at 0.7), and probes only follow
 * filter hits; a lower limit would cost memory on every entry.
 */
const MAX_LOAD = 0.7
const MIN_SLOT_BITS = 10
/**
 * Filter size: 128–256 bits per entry (under 1 % false positives), within 2²⁰–2²⁴ bits.
 * Measured on 16 Ki entries: 2²¹ bits scans at ~470 MB/s, 2¹⁸ at ~390 (more false hits), 2²⁴
 * at ~300 (cache misses), so the filter follows the entry count rather than being fixed at the
 * maximum.
 */
const FILTER_BITS_PER_ENTRY_LOG2 = 7
const MIN_FILTER_BITS = 20
const MAX_FILTER_BITS = 24

export class WeakTable {
  /** `EMPTY`, `TOMBSTONE`, or entry id + 1. */
  readonly #slots: Int32Array
  readonly #slotShift: number
  readonly #slotMask: number
  #used = 0
  #live = 0
  /** One bit per value of the top bits of the hash: set when some entry hashes there. */
  readonly filter: Int32Array
  /** `Math.imul(weak, WEAK_HASH_MULTIPLIER) >>> filterShift` is the bit to test. */
  readonly filterShift: number

  /** A table with room for `entries` entries before it is `full`. */
  constructor (entries: number) {
    const slotBits = Math.max(MIN_SLOT_BITS, Math.ceil(Math.log2(entries / MAX_LOAD)))
    this.#slots = new Int32Array(2 ** slotBits)
    this.#slotShift = 32 - slotBits
    this.#slotMask = 2 ** slotBits - 1
    const filterBits = Math.min(MAX_FILTER_BITS,
      Math.max(MIN_FILTER_BITS, Math.floor(Math.log2(Math.max(1, entries))) + FILTER_BITS_PER_ENTRY_LOG2))
    this.filter = new Int32Array(2 ** (filterBits - 5))
    this.filterShift = 32 - filterBits
  }

  /** Entries in the table. */
  get live (): number {
    return this.#live
  }

  /** Whether adding `more` entries would pass the load limit. */
  full (more: number): boolean {
    return this.#used + more > this.#slots.length * MAX_LOAD
  }

  /**
   * Adds entry `id` with weak sum `weak`, unless `cap` entries with the same weak sum are already
   * there (rsync caps too: a disk image full of equal blocks would make every lookup walk them
   * all). Returns whether it was added. `weaks` is the owner's weak sum per entry id.
   */
  insert (weak: number, id: number, weaks: Int32Array, cap: number): boolean {
    let s = Math.imul(weak, WEAK_HASH_MULTIPLIER) >>> this.#slotShift
    let free = -1
    let same = 0
    for (;;) {
      const v = this.#slots[s]!
      if (v === EMPTY) break
      if (v === TOMBSTONE) {
        if (free < 0) free = s
      } else if (weaks[v - 1] === weak && ++same >= cap) {
        return false
      }
      s = (s + 1) & this.#slotMask
    }
    if (free < 0) {
      free = s
      this.#used++
    }
    this.#slots[free] = id + 1
    this.#live++
    const h = Math.imul(weak, WEAK_HASH_MULTIPLIER) >>> this.filterShift
    this.filter[h >>> 5]! |= 1 << h
    return true
  }

  /** How many entries have weak sum `weak`, counting up to `cap`. */
  count (weak: number, weaks: Int32Array, cap: number): number {
    let same = 0
    for (let s = this.firstSlot(weak); same < cap; s = this.nextSlot(s)) {
      const v = this.#slots[s]!
      if (v === EMPTY) break
      if (v !== TOMBSTONE && weaks[v - 1] === weak) same++
    }
    return same
  }

  /**
   * Removes entry `id` if present. Its filter bit stays set (another weak sum may share it):
   * a false positive until the next rebuild.
   */
  remove (weak: number, id: number): boolean {
    for (let s = this.firstSlot(weak); ; s = this.nextSlot(s)) {
      const v = this.#slots[s]!
      if (v === EMPTY) return false
      if (v === id + 1) {
        this.#slots[s] = TOMBSTONE
        this.#live--
        return true
      }
    }
  }

  /** Where the probe for `weak` starts. */
  firstSlot (weak: number): number {
    return Math.imul(weak, WEAK_HASH_MULTIPLIER) >>> this.#slotShift
  }

  nextSlot (slot: number): number {
    return (slot + 1) & this.#slotMask
  }

  /** The entry id in `slot`; -1 for empty (the probe stops), -2 for a tombstone (it goes on). */
  entryAt (slot: number): number {
    return this.#slots[slot]! - 1
  }
}
