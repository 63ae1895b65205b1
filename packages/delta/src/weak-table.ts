/**
 * Weak sum → block entries: an open-addressing hash table in an `Int32Array`, with a bitmap in
 * front of it.
 *
 * Why this shape: the deltifier asks "is any block's weak sum equal to this?" at every byte of
 * unmatched data, and the answer is nearly always no. The bitmap (a Bloom filter: two bits per
 * weak sum) answers that in at most 2 MiB (256 KiB for a 64 MiB index at 4 KiB blocks) that
 * stays in cache; only a hit (a real candidate or a ~0.03 % false positive) probes the table,
 * whose slots and entries are cache misses (~250 ns a false hit: with one bit per weak sum and
 * ~1 % of them, that was a third of the deltifier's time). The two bits are in separate halves:
 * the roll kernel tests the first at every byte and the second only where the first is set
 * (~2 % of bytes), so only the first half need stay in cache. Both are indexed by the HIGH bits
 * of multiplicative hashes of the weak sum: the low bits of an Adler-style sum are poorly mixed
 * and make long probe chains.
 *
 * Slots hold entry ids only (the weak sum is read from the index's entry array): 7–14 bytes per
 * entry, on top of the index's 12. Deleted entries leave tombstones; the owner rebuilds the table
 * when `full` says so.
 */
export const WEAK_HASH_MULTIPLIER = 0x9e3779b1
/** The filter's second bit for a weak sum comes from another odd multiplier. */
export const WEAK_HASH_MULTIPLIER_2 = 0x85ebca6b

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
 * Filter size: 128–256 bits per entry (first bit set for 0.8–1.6 % of weak sums, both for
 * 0.006–0.03 %), within 2²⁰–2²⁴ bits: it follows the entry count rather than being fixed at the
 * maximum. Measured over new data (bench/src/engine.ts): 64–128 bits per entry scan ~10 %
 * slower (more first-bit hits), 256–512 only 2–7 % faster for twice the memory.
 */
const FILTER_BITS_PER_ENTRY_LOG2 = 7
const MIN_FILTER_BITS = 20
const MAX_FILTER_BITS = 24
/** The largest filter, in bytes (2 MiB). */
export const MAX_FILTER_BYTES = 2 ** (MAX_FILTER_BITS - 3)
/**
 * Filter words remembered as changed (a ring), so that a copy of the filter (the roll kernel's)
 * catches up on a few inserts, a small file being indexed, without copying the whole filter.
 */
const CHANGE_LOG = 1024

export class WeakTable {
  /** `EMPTY`, `TOMBSTONE`, or entry id + 1. */
  readonly #slots: Int32Array
  readonly #slotShift: number
  readonly #slotMask: number
  #used = 0
  #live = 0
  /**
   * The Bloom filter, two halves of 2^(32 − filterShift) bits: for each entry, bit
   * `Math.imul(weak, WEAK_HASH_MULTIPLIER) >>> filterShift` of the first half and bit
   * `Math.imul(weak, WEAK_HASH_MULTIPLIER_2) >>> filterShift` of the second are set (`passes`
   * in roll-kernel.ts tests them).
   */
  readonly filter: Int32Array
  readonly filterShift: number
  /** Filter words changed so far, counted; the last `CHANGE_LOG` of them are in `#changes`. */
  #version = 0
  readonly #changes = new Int32Array(CHANGE_LOG)

  /** A table with room for `entries` entries before it is `full`. */
  constructor (entries: number) {
    const slotBits = Math.max(MIN_SLOT_BITS, Math.ceil(Math.log2(entries / MAX_LOAD)))
    this.#slots = new Int32Array(2 ** slotBits)
    this.#slotShift = 32 - slotBits
    this.#slotMask = 2 ** slotBits - 1
    const filterBits = Math.min(MAX_FILTER_BITS,
      Math.max(MIN_FILTER_BITS, Math.floor(Math.log2(Math.max(1, entries))) + FILTER_BITS_PER_ENTRY_LOG2))
    this.filter = new Int32Array(2 ** (filterBits - 5))
    this.filterShift = 33 - filterBits
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
    this.#setBit(Math.imul(weak, WEAK_HASH_MULTIPLIER) >>> this.filterShift)
    this.#setBit(2 ** (32 - this.filterShift) + (Math.imul(weak, WEAK_HASH_MULTIPLIER_2) >>> this.filterShift))
    return true
  }

  /**
   * Adds entries `from` … `to − 1` (ids), in order, as `insert` would one by one, into a table
   * that holds no tombstones: a rebuild's one tight loop (a third of the time of the calls, most
   * of it in a cold process: the loop is optimized early, the calls late).
   */
  insertRange (weaks: Int32Array, from: number, to: number, cap: number): void {
    const slots = this.#slots
    const filter = this.filter
    const slotShift = this.#slotShift
    const slotMask = this.#slotMask
    const filterShift = this.filterShift
    const secondHalf = 2 ** (32 - filterShift)
    let used = this.#used
    let live = this.#live
    for (let id = from; id < to; id++) {
      const weak = weaks[id]!
      let s = Math.imul(weak, WEAK_HASH_MULTIPLIER) >>> slotShift
      let same = 0
      let v = slots[s]!
      for (; v !== EMPTY; v = slots[s]!) {
        if (v !== TOMBSTONE && weaks[v - 1] === weak && ++same >= cap) break
        s = (s + 1) & slotMask
      }
      if (v !== EMPTY) continue // `cap` entries with this weak sum already
      slots[s] = id + 1
      used++
      live++
      const h = Math.imul(weak, WEAK_HASH_MULTIPLIER) >>> filterShift
      filter[h >>> 5]! |= 1 << h
      const h2 = secondHalf + (Math.imul(weak, WEAK_HASH_MULTIPLIER_2) >>> filterShift)
      filter[h2 >>> 5]! |= 1 << h2
    }
    this.#used = used
    this.#live = live
    // Too many filter words changed to list: a copy of the filter is taken whole (changedSince).
    this.#version += CHANGE_LOG + 1
  }

  #setBit (h: number): void {
    if ((this.filter[h >>> 5]! & (1 << h)) !== 0) return
    this.filter[h >>> 5]! |= 1 << h
    this.#changes[this.#version++ % CHANGE_LOG] = h >>> 5
  }

  /** Changes of the filter so far: a copy taken at one version differs from the filter at another. */
  get version (): number {
    return this.#version
  }

  /**
   * Calls `f` with the index of every filter word changed since version `since` (some maybe
   * twice); false, without calling it, when there were too many to remember: copy it all.
   */
  changedSince (since: number, f: (word: number) => void): boolean {
    if (this.#version - since > CHANGE_LOG) return false
    for (let v = since; v < this.#version; v++) f(this.#changes[v % CHANGE_LOG]!)
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
   * Removes entry `id` if present. Its filter bits stay set (another weak sum may share them):
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
