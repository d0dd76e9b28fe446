// CRC32c (Castagnoli), the SCTP checksum (RFC 4960 §6.8 and Appendix B, RFC 3309):
// reflected polynomial 0x82F63B78, initial value and final XOR 0xFFFFFFFF. Table
// driven, eight bytes per step ("slicing by 8"): the checksum runs over every SCTP
// packet in both directions, so it is on the data path of every data-channel byte.

const POLYNOMIAL = 0x82f63b78;

/** TABLES[k][b]: the CRC of byte b followed by k zero bytes. */
const TABLES: Uint32Array[] = (() => {
  const tables = Array.from({ length: 8 }, () => new Uint32Array(256));
  const first = tables[0]!;
  for (let b = 0; b < 256; b++) {
    let crc = b;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ POLYNOMIAL : crc >>> 1;
    first[b] = crc >>> 0;
  }
  for (let b = 0; b < 256; b++) {
    let crc = first[b]!;
    for (let t = 1; t < 8; t++) {
      crc = (crc >>> 8) ^ first[crc & 0xff]!;
      tables[t]![b] = crc >>> 0;
    }
  }
  return tables;
})();
const [T0, T1, T2, T3, T4, T5, T6, T7] = TABLES as [Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array];

/**
 * Continues a CRC32c over `data[start, end)`. Start with `crc = 0xFFFFFFFF` and XOR the final
 * value with 0xFFFFFFFF (`crc32c` does both).
 */
export function crc32cUpdate(crc: number, data: Uint8Array, start = 0, end = data.length): number {
  let c = crc >>> 0;
  let i = start;
  for (; i + 8 <= end; i += 8) {
    const lo = (c ^ (data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24))) >>> 0;
    c =
      T7[lo & 0xff]! ^
      T6[(lo >>> 8) & 0xff]! ^
      T5[(lo >>> 16) & 0xff]! ^
      T4[lo >>> 24]! ^
      T3[data[i + 4]!]! ^
      T2[data[i + 5]!]! ^
      T1[data[i + 6]!]! ^
      T0[data[i + 7]!]!;
  }
  for (; i < end; i++) c = (c >>> 8) ^ T0[(c ^ data[i]!) & 0xff]!;
  return c >>> 0;
}

export function crc32c(data: Uint8Array): number {
  return (crc32cUpdate(0xffffffff, data) ^ 0xffffffff) >>> 0;
}
