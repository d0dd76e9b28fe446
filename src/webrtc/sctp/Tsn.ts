// Transmission sequence numbers (RFC 4960 §3.3.1): 32-bit, compared with serial
// number arithmetic (RFC 1982, §1.6 of RFC 4960), and the receiver's record of
// which it has (§6.2): the cumulative TSN plus the ranges received above it, which
// become a SACK's gap ack blocks (§3.3.4). Ranges are kept merged and sorted, so
// marking a TSN and writing a SACK cost the number of gaps, not of TSNs.

/** a - b as a signed serial distance (RFC 1982): positive when a is after b. */
export function tsnDiff(a: number, b: number): number {
  return (a - b) | 0;
}

export function tsnAfter(a: number, b: number): boolean {
  return tsnDiff(a, b) > 0;
}

export function tsnAdd(a: number, n: number): number {
  return (a + n) >>> 0;
}

/** 16-bit stream sequence numbers (§3.3.1), serial too. */
export function ssnAfter(a: number, b: number): boolean {
  const d = (a - b) & 0xffff;
  return d !== 0 && d < 0x8000;
}

export class ReceivedTsns {
  /** Highest TSN below which every TSN was received. */
  cumulative: number;
  /** Received TSNs above `cumulative + 1`, as disjoint [first, last] ranges in TSN order. */
  private ranges: [number, number][] = [];
  /** The highest TSN received so far. */
  highest: number;

  constructor(initialTsn: number) {
    this.cumulative = tsnAdd(initialTsn, -1);
    this.highest = this.cumulative;
  }

  get gapCount(): number {
    return this.ranges.length;
  }

  has(tsn: number): boolean {
    if (!tsnAfter(tsn, this.cumulative)) return true;
    const i = this.rangeAtOrAfter(tsn);
    const r = this.ranges[i];
    return r !== undefined && !tsnAfter(r[0], tsn);
  }

  /** Index of the first range whose last TSN is at or after `tsn`. */
  private rangeAtOrAfter(tsn: number): number {
    let lo = 0;
    let hi = this.ranges.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (tsnAfter(tsn, this.ranges[mid]![1])) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Marks `tsn` received (it must not be yet: check `has` first). */
  add(tsn: number): void {
    if (tsnAfter(tsn, this.highest)) this.highest = tsn;
    if (tsn === tsnAdd(this.cumulative, 1)) {
      this.cumulative = tsn;
      this.absorbFirstRange();
      return;
    }
    const i = this.rangeAtOrAfter(tsn);
    const next = this.ranges[i];
    const prev = i > 0 ? this.ranges[i - 1] : undefined;
    const joinsPrev = prev !== undefined && prev[1] === tsnAdd(tsn, -1);
    const joinsNext = next !== undefined && next[0] === tsnAdd(tsn, 1);
    if (joinsPrev && joinsNext) {
      prev[1] = next[1];
      this.ranges.splice(i, 1);
    } else if (joinsPrev) prev[1] = tsn;
    else if (joinsNext) next[0] = tsn;
    else this.ranges.splice(i, 0, [tsn, tsn]);
  }

  /** RFC 3758 §3.6: the sender abandoned everything up to `tsn`; it counts as received. */
  forwardTo(tsn: number): void {
    if (!tsnAfter(tsn, this.cumulative)) return;
    this.cumulative = tsn;
    if (tsnAfter(tsn, this.highest)) this.highest = tsn;
    while (this.ranges.length && !tsnAfter(this.ranges[0]![1], tsn)) this.ranges.shift();
    const first = this.ranges[0];
    if (first && !tsnAfter(first[0], tsn)) first[0] = tsnAdd(tsn, 1);
    this.absorbFirstRange();
  }

  private absorbFirstRange(): void {
    const first = this.ranges[0];
    if (first && first[0] === tsnAdd(this.cumulative, 1)) {
      this.cumulative = first[1];
      this.ranges.shift();
    }
  }

  /** Gap ack blocks as §3.3.4 writes them: offsets from the cumulative TSN, at most `max`. */
  gapBlocks(max: number): [number, number][] {
    const out: [number, number][] = [];
    for (const [first, last] of this.ranges) {
      if (out.length >= max) break;
      const start = tsnDiff(first, this.cumulative);
      const end = tsnDiff(last, this.cumulative);
      // Blocks are 16-bit offsets: ranges beyond them wait for the cumulative TSN to move.
      if (end > 0xffff) break;
      out.push([start, end]);
    }
    return out;
  }
}
