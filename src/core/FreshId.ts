// The ids plugins pick when a request names none: rooms, mountpoints, participants, forwarders.
import { randomInt } from 'node:crypto';

/** Janus ids are 64-bit; ferry's stay below 2^48 so they survive JSON and JS numbers. */
export const ID_LIMIT = 2 ** 48;

/** A random id in [1, 2^48) that `taken` does not know; undefined when 1000 draws all were taken. */
export function freshId(taken: (id: number) => boolean): number | undefined {
  for (let i = 0; i < 1000; i++) {
    const id = randomInt(1, ID_LIMIT);
    if (!taken(id)) return id;
  }
  return undefined;
}
