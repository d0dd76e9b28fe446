// Single-port mode (`media.single_port`): WebRTC endpoints live on their media thread's shared
// UDP socket, told apart by ICE ufrag and then by the peer's validated address (the engine's
// shared_port.rs), so a PeerConnection takes a slot, not a port. A lease is still the one
// owner and the one release path of its native endpoint; the pool bounds how many are open.
import type { EndpointEvent, EndpointOptions, MediaEngine } from './MediaEngine.js';
import { LeasePoolBase, PortLease, PortPoolExhaustedError, type EndpointLeasePool, type PortPoolOptions } from './PortPool.js';

export class SlotPool extends LeasePoolBase implements EndpointLeasePool {
  readonly shared = true;
  /** `options.range`: shown by Admin; its size is the most endpoints open at once. Leases are by endpoint id. */
  constructor(
    private readonly engine: MediaEngine,
    options: PortPoolOptions,
    private readonly now: () => number = Date.now,
  ) {
    super(options);
  }

  /** Opens an endpoint on its media thread's shared port (it must have ICE: its ufrag routes it). */
  lease(owner: string, endpoint: Omit<EndpointOptions, 'port' | 'bindAddress'> = {}, listener?: (event: EndpointEvent) => void): PortLease {
    if (this.leases.size >= this.size) throw new PortPoolExhaustedError(this.options.name, this.options.range);
    const opened = this.engine.openEndpoint({ ...endpoint, bindAddress: this.options.bindAddress, port: 0, shared: true }, listener);
    const lease = new PortLease(this, opened.port, opened.id, owner, this.now());
    this.leases.set(opened.id, lease);
    return lease;
  }

  returnLease(lease: PortLease): void {
    if (this.leases.get(lease.endpoint) !== lease) return;
    this.leases.delete(lease.endpoint);
    try {
      this.engine.closeEndpoint(lease.endpoint);
    } catch {
      // already closed with the engine
    }
  }
}
