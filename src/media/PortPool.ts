// The single owner of media UDP ports (lessons §5). A lease is one port in the
// configured range bound to one native endpoint, with an owner and a start
// time. Releasing the lease closes the native socket (before `release`
// returns) and puts the port back; no reference counting decides when a socket
// closes. Nothing else in ferry binds a media port.
import type { EndpointEvent, EndpointOptions, MediaEngine } from './MediaEngine.js';

export interface PortRange {
  min: number;
  max: number;
}

export interface PortPoolOptions {
  /** Name for errors and metrics, e.g. "rtp" or "sip". */
  name: string;
  range: PortRange;
  bindAddress: string;
}

export class PortPoolExhaustedError extends Error {
  constructor(
    readonly pool: string,
    readonly range: PortRange,
  ) {
    super(`no free UDP port in the ${pool} range ${range.min}-${range.max}`);
    this.name = 'PortPoolExhaustedError';
  }
}

export interface LeaseInfo {
  port: number;
  owner: string;
  since: number;
  endpoint: number;
}

/**
 * What hands out native endpoints with one owner each: a PortPool (a port per endpoint) or a
 * SlotPool (single-port mode: endpoints share their media thread's port, a lease is a slot).
 */
export interface EndpointLeasePool {
  readonly options: PortPoolOptions;
  /** Endpoints share their media thread's port (single-port mode). */
  readonly shared: boolean;
  readonly size: number;
  readonly leased: number;
  readonly free: number;
  list(): LeaseInfo[];
  lease(owner: string, endpoint?: Omit<EndpointOptions, 'port' | 'bindAddress'>, listener?: (event: EndpointEvent) => void, wantedPort?: number): PortLease;
  /** Called by PortLease.release only. */
  returnLease(lease: PortLease): void;
  releaseAll(): void;
}

export class PortLease {
  private released = false;

  constructor(
    private readonly pool: EndpointLeasePool,
    readonly port: number,
    readonly endpoint: number,
    readonly owner: string,
    readonly since: number,
  ) {}

  get active(): boolean {
    return !this.released;
  }

  /** Closes the native endpoint and returns the port. Idempotent. */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.pool.returnLease(this);
  }
}

/** What every pool shares: its leases (by a key: a port, or an endpoint id), counts and listing. */
export abstract class LeasePoolBase {
  protected readonly leases = new Map<number, PortLease>();

  constructor(readonly options: PortPoolOptions) {}

  /** Leases the pool may hold at once: the size of its range. */
  get size(): number {
    return this.options.range.max - this.options.range.min + 1;
  }

  get leased(): number {
    return this.leases.size;
  }

  get free(): number {
    return this.size - this.leases.size;
  }

  list(): LeaseInfo[] {
    return [...this.leases.values()].map((l) => ({ port: l.port, owner: l.owner, since: l.since, endpoint: l.endpoint }));
  }

  /** Releases every lease (shutdown). */
  releaseAll(): void {
    for (const lease of [...this.leases.values()]) lease.release();
  }
}

export class PortPool extends LeasePoolBase implements EndpointLeasePool {
  readonly shared = false;
  private nextPort: number;

  constructor(
    private readonly engine: MediaEngine,
    options: PortPoolOptions,
    private readonly now: () => number = Date.now,
  ) {
    super(options);
    const { min, max } = options.range;
    if (!Number.isInteger(min) || !Number.isInteger(max) || min < 1 || max > 65535 || min > max) {
      throw new Error(`invalid ${options.name} port range ${min}-${max}`);
    }
    this.nextPort = min;
  }

  /**
   * Leases a free port and opens a native endpoint on it. Ports are handed out
   * round-robin so a just-released port is not reused at once; a port another
   * process holds is skipped. Throws PortPoolExhaustedError when none is left.
   */
  lease(
    owner: string,
    endpoint: Omit<EndpointOptions, 'port' | 'bindAddress'> = {},
    listener?: (event: EndpointEvent) => void,
    wantedPort?: number,
  ): PortLease {
    const { min, max } = this.options.range;
    if (wantedPort) {
      if (wantedPort < min || wantedPort > max) throw new Error(`port ${wantedPort} is outside the ${this.options.name} range ${min}-${max}`);
      if (this.leases.has(wantedPort)) throw new Error(`port ${wantedPort} is already leased`);
      const opened = this.engine.openEndpoint({ ...endpoint, bindAddress: this.options.bindAddress, port: wantedPort }, listener);
      const lease = new PortLease(this, wantedPort, opened.id, owner, this.now());
      this.leases.set(wantedPort, lease);
      return lease;
    }
    for (let tried = 0; tried < this.size; tried++) {
      const port = this.nextPort;
      this.nextPort = port >= max ? min : port + 1;
      if (this.leases.has(port)) continue;
      let opened;
      try {
        opened = this.engine.openEndpoint({ ...endpoint, bindAddress: this.options.bindAddress, port }, listener);
      } catch (err) {
        if (/in use|EADDRINUSE|Address already/i.test(String(err))) continue;
        throw err;
      }
      const lease = new PortLease(this, port, opened.id, owner, this.now());
      this.leases.set(port, lease);
      return lease;
    }
    throw new PortPoolExhaustedError(this.options.name, this.options.range);
  }

  /** Called by PortLease.release only. */
  returnLease(lease: PortLease): void {
    if (this.leases.get(lease.port) !== lease) return;
    this.leases.delete(lease.port);
    try {
      this.engine.closeEndpoint(lease.endpoint);
    } catch {
      // The engine already closed it (engine shutdown); the port is free either way.
    }
  }

}
