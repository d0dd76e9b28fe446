/**
 * Prometheus metrics (prom-client, own registry). Gauges are computed when
 * scraped from the same sources the Admin API reads, so they cannot drift.
 */
import { Counter, Gauge, Registry } from 'prom-client';

export interface MetricsSources {
  sessions(): number;
  handles(): number;
  longPollWaiters(): number;
  queuedEvents(): number;
  peerConnections(): number;
  nativeEndpoints(): number | null;
  portLeases(): number | null;
  /** Free ports over all pools; null until the media side is wired. */
  freePorts?(): number | null;
}

export class Metrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'api' | 'verb' | 'code'>;
  private readonly droppedEvents: Counter;
  private readonly endedSessions: Counter<'reason'>;

  constructor(sources: MetricsSources) {
    const gauge = (name: string, help: string, read: () => number | null) =>
      new Gauge({
        name,
        help,
        registers: [this.registry],
        collect() {
          const value = read();
          // A resource nobody reports yet is absent rather than a made-up 0.
          if (value === null) this.reset();
          else this.set(value);
        },
      });
    gauge('ferry_sessions', 'Janus sessions in the registry', () => sources.sessions());
    gauge('ferry_handles', 'Handles attached across all sessions', () => sources.handles());
    gauge('ferry_long_poll_waiters', 'HTTP long polls waiting for events', () => sources.longPollWaiters());
    gauge('ferry_event_backlog', 'Events queued for sessions, not yet polled', () => sources.queuedEvents());
    gauge('ferry_peer_connections', 'Handles with a PeerConnection', () => sources.peerConnections());
    gauge('ferry_native_endpoints', 'Native media engine endpoints', () => sources.nativeEndpoints());
    gauge('ferry_port_leases', 'UDP port leases held', () => sources.portLeases());
    gauge('ferry_ports_free', 'UDP ports free in the port pools', () => sources.freePorts?.() ?? null);
    this.requests = new Counter({
      name: 'ferry_requests_total',
      help: 'Janus and Admin API requests by verb and result code (0 = success)',
      labelNames: ['api', 'verb', 'code'],
      registers: [this.registry],
    });
    this.droppedEvents = new Counter({
      name: 'ferry_events_dropped_total',
      help: 'Events dropped because a session queue was full (client not polling)',
      registers: [this.registry],
    });
    this.endedSessions = new Counter({
      name: 'ferry_sessions_ended_total',
      help: 'Sessions ended, by reason',
      labelNames: ['reason'],
      registers: [this.registry],
    });
  }

  request(api: 'janus' | 'admin', verb: string, code: number): void {
    this.requests.inc({ api, verb, code: String(code) });
  }

  eventDropped(): void {
    this.droppedEvents.inc();
  }

  sessionEnded(reason: string): void {
    this.endedSessions.inc({ reason });
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
