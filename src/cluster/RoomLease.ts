/**
 * Room ownership as leases with fencing tokens (Kleppmann, "How to do distributed locking"):
 * `ferry:lease:<room>` holds "<node>|<token>" with a TTL. Taking a free lease increments the
 * room's `fence` (so a token is never handed out twice), and renewing or releasing compares the
 * whole value first, in one Lua script: a node that paused past its TTL and lost the room can
 * neither renew nor delete the new owner's lease, nor keep the room alive.
 *
 * The owner renews its rooms every third of the TTL, and with them the TTL of a non-permanent
 * room's config: the room lives while some node owns it. When the owner stops heartbeating its
 * leases expire and the next live node takes the rooms over (ClusterNode's tick).
 */
import type { Redis } from 'ioredis';

import { keys } from './ClusterDirectory.js';

/** Takes the lease when free (new token) or renews it when this node holds it; -1 held by another, -2 no such room. */
const ACQUIRE = `
if redis.call('EXISTS', KEYS[2]) == 0 then return -2 end
local cur = redis.call('GET', KEYS[1])
if cur then
  local sep = string.find(cur, '|', 1, true)
  if sep and string.sub(cur, 1, sep - 1) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return tonumber(string.sub(cur, sep + 1))
  end
  return -1
end
local fence = redis.call('HINCRBY', KEYS[2], 'fence', 1)
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. fence, 'PX', ARGV[2])
if redis.call('HGET', KEYS[2], 'permanent') ~= '1' then redis.call('PEXPIRE', KEYS[2], ARGV[3]) end
return fence`;

/** Compare-and-renew: 1 when the lease still holds this value (and the room is kept alive), else 0. */
const RENEW = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if redis.call('HGET', KEYS[2], 'permanent') == '0' then redis.call('PEXPIRE', KEYS[2], ARGV[3]) end
return 1`;

/** Compare-and-delete. */
const RELEASE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])`;

type Scripted = Redis & {
  ferryLeaseAcquire(lease: string, room: string, node: string, leaseTtl: number, roomTtl: number): Promise<number>;
  ferryLeaseRenew(lease: string, room: string, value: string, leaseTtl: number, roomTtl: number): Promise<number>;
  ferryLeaseRelease(lease: string, value: string): Promise<number>;
};

export function defineLeaseScripts(redis: Redis): void {
  redis.defineCommand('ferryLeaseAcquire', { numberOfKeys: 2, lua: ACQUIRE });
  redis.defineCommand('ferryLeaseRenew', { numberOfKeys: 2, lua: RENEW });
  redis.defineCommand('ferryLeaseRelease', { numberOfKeys: 1, lua: RELEASE });
}

/** Parses a lease value; null when malformed. */
export function parseLease(value: string | null): { node: string; fence: number } | null {
  if (value === null) return null;
  const sep = value.lastIndexOf('|');
  const fence = Number(value.slice(sep + 1));
  if (sep <= 0 || !Number.isSafeInteger(fence)) return null;
  return { node: value.slice(0, sep), fence };
}

/** The leases this node holds: room → fencing token. */
export class RoomLeases {
  readonly owned = new Map<number, number>();
  private readonly redis: Scripted;

  constructor(
    redis: Redis,
    private readonly nodeId: string,
    private readonly leaseTtlMs: number,
    private readonly roomTtlMs: number,
  ) {
    this.redis = redis as Scripted;
    defineLeaseScripts(redis);
  }

  /** A lease a room creation took (token 1 from the create script). */
  adopt(room: number, fence: number): void {
    this.owned.set(room, fence);
  }

  /** Tries to own `room`; its token, or null when another node holds it or the room is gone. */
  async acquire(room: number): Promise<number | null> {
    const fence = await this.redis.ferryLeaseAcquire(keys.lease(room), keys.room(room), this.nodeId, this.leaseTtlMs, this.roomTtlMs);
    if (fence > 0) {
      this.owned.set(room, fence);
      return fence;
    }
    this.owned.delete(room);
    return null;
  }

  /** Renews every owned lease; those lost (expired and taken, or the room destroyed) are forgotten and returned. */
  async renewAll(): Promise<number[]> {
    const lost: number[] = [];
    await Promise.all(
      [...this.owned].map(async ([room, fence]) => {
        const ok = await this.redis.ferryLeaseRenew(keys.lease(room), keys.room(room), `${this.nodeId}|${fence}`, this.leaseTtlMs, this.roomTtlMs);
        if (ok !== 1 && this.owned.get(room) === fence) {
          this.owned.delete(room);
          lost.push(room);
        }
      }),
    );
    return lost;
  }

  /** Gives up one room (destroyed here) without touching another owner's lease. */
  forget(room: number): void {
    this.owned.delete(room);
  }

  /** Releases every owned lease (node stop): the rooms are free for the others at once. */
  async releaseAll(): Promise<void> {
    const owned = [...this.owned];
    this.owned.clear();
    await Promise.all(owned.map(([room, fence]) => this.redis.ferryLeaseRelease(keys.lease(room), `${this.nodeId}|${fence}`)));
  }
}
