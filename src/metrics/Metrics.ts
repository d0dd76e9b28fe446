/**
 * Prometheus metrics (prom-client, own registry). Gauges are computed when
 * scraped from the same sources the Admin API reads, so they cannot drift.
 */
import { Counter, Gauge, Registry } from 'prom-client';

import type { MediaThreadStatus } from '../core/Status.js';
import type { EventHandlerStatus } from '../events/EventBus.js';

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
  /** Per media thread figures (the same Admin ferry_status reports). */
  mediaThreads?(): MediaThreadStatus[];
  /** Janus event handlers' counters (the same Admin ferry_status reports). */
  eventHandlers?(): EventHandlerStatus[];
  /** Data-channel counters (the same Admin ferry_status reports as data_channels); null without WebRTC. */
  dataChannels?(): Record<string, unknown> | null;
  /** Cluster figures (the same Admin ferry_status reports under `cluster`); null when standing alone. */
  cluster?(): Record<string, number> | null;
}

/** Cluster gauges: metric name, help, and the figure of MetricsSources.cluster it reads. */
const CLUSTER_SERIES: ReadonlyArray<[string, string, string]> = [
  ['ferry_cluster_redis_up', 'Whether the cluster directory (Redis) is reachable (1) or not (0)', 'redis_up'],
  ['ferry_cluster_nodes', 'Live cluster nodes this node sees, itself included', 'nodes'],
  ['ferry_cluster_rooms', 'VideoRoom rooms of the cluster known here', 'rooms'],
  ['ferry_cluster_rooms_owned', 'Rooms whose lease this node holds', 'rooms_owned'],
  ['ferry_cluster_remote_participants', 'Participants of other nodes shown in rooms here', 'remote_participants'],
  ['ferry_cluster_cascades_in', 'Feeds cascaded into this node from others (one leg each)', 'cascades_in'],
  ['ferry_cluster_cascades_out', 'Feeds this node cascades to other nodes (one forwarder each)', 'cascades_out'],
];

/** Per media thread series: metric name, help, and the field of MediaThreadStatus it reads. */
const THREAD_SERIES: ReadonlyArray<[string, string, keyof MediaThreadStatus]> = [
  ['ferry_media_thread_load_pps', 'Packets received and sent per second by a media thread (last second)', 'load_pps'],
  ['ferry_media_thread_busy_ratio', 'Share of the last second a media thread worked', 'busy'],
  ['ferry_media_thread_endpoints', 'Endpoints (sockets) a media thread owns', 'endpoints'],
  ['ferry_media_thread_packets_in_total', 'Packets received on a media thread\'s endpoints', 'packets_in'],
  ['ferry_media_thread_packets_out_total', 'Packets sent from a media thread\'s endpoints', 'packets_out'],
  ['ferry_media_thread_drops_total', 'Packets dropped on a media thread, every reason', 'drops'],
  ['ferry_media_thread_queue_depth', 'Packets from other media threads waiting in this one\'s queue', 'queue_depth'],
  ['ferry_media_thread_queue_overflows_total', 'Packets a media thread could not hand to another (queue full)', 'queue_overflows'],
  ['ferry_media_thread_coalescing_wakes', '1 while a media thread wakes itself every ms instead of per hand-over (busy hand-over traffic)', 'coalescing_wakes'],
  ['ferry_media_thread_cross_sent_total', 'Packets a media thread handed to other threads', 'cross_sent'],
  ['ferry_media_thread_cross_received_total', 'Packets a media thread received from other threads', 'cross_received'],
];

/** Per event handler series, read from its status like the thread series. */
const EVENT_HANDLER_SERIES: ReadonlyArray<[string, string, 'backlog' | 'sent' | 'dropped' | 'failed_attempts']> = [
  ['ferry_event_handler_backlog', 'Events an event handler holds for delivery', 'backlog'],
  ['ferry_event_handler_sent_total', 'Events an event handler delivered', 'sent'],
  ['ferry_event_handler_dropped_total', 'Events an event handler dropped (backlog full, or undelivered at shutdown)', 'dropped'],
  ['ferry_event_handler_failed_attempts_total', 'Failed delivery attempts of an event handler (each is retried)', 'failed_attempts'],
];

export class Metrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'api' | 'verb' | 'code'>;
  private readonly droppedEvents: Counter;
  private readonly endedSessions: Counter<'reason'>;
  private readonly quotaRefusals: Counter<'limit'>;

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
    const dc = (key: string) => () => {
      const v = sources.dataChannels?.()?.[key];
      return typeof v === 'number' ? v : null;
    };
    gauge('ferry_sctp_associations', 'SCTP associations (data channels) existing now', dc('associations'));
    gauge('ferry_data_channels', 'Data channels open now', dc('channels'));
    gauge('ferry_data_channel_messages_in_total', 'Data-channel messages received from clients', dc('messages_in'));
    gauge('ferry_data_channel_messages_out_total', 'Data-channel messages sent to clients', dc('messages_out'));
    gauge('ferry_data_channel_drops_total', 'Malformed or refused SCTP input, DCEP and messages on unknown streams', () => {
      const s = sources.dataChannels?.();
      if (!s) return null;
      return ['sctp_drops', 'dcep_drops', 'unknown_stream_drops'].reduce((n, k) => n + (typeof s[k] === 'number' ? (s[k] as number) : 0), 0);
    });
    gauge('ferry_sctp_associations_aborted_total', 'SCTP associations ended by a protocol violation or an unresponsive peer', () => {
      const closed = sources.dataChannels?.()?.['closed'] as Record<string, number> | undefined;
      return closed ? (closed['protocol-violation'] ?? 0) + (closed['timeout'] ?? 0) : null;
    });
    if (sources.cluster) {
      for (const [name, help, key] of CLUSTER_SERIES) gauge(name, help, () => sources.cluster?.()?.[key] ?? null);
    }
    if (sources.mediaThreads) {
      const read = sources.mediaThreads.bind(sources);
      this.labelledSeries(THREAD_SERIES, 'thread', read, (t) => String(t.thread));
    }
    if (sources.eventHandlers) {
      const read = sources.eventHandlers.bind(sources);
      this.labelledSeries(EVENT_HANDLER_SERIES, 'handler', read, (h) => h.handler);
    }
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
    this.quotaRefusals = new Counter({
      name: 'ferry_quota_refusals_total',
      help: 'Requests refused by a quota, by limit (session_create_rate, sessions_per_client, peer_connections_per_client, rooms_per_client, max_rooms)',
      labelNames: ['limit'],
      registers: [this.registry],
    });
  }

  /**
   * One gauge per series, labelled per row of what `read` lists (a media thread, an event
   * handler …), rebuilt at each scrape so a row that is gone leaves no stale value.
   */
  private labelledSeries<Row, Field extends keyof Row>(
    series: ReadonlyArray<[string, string, Field]>,
    label: string,
    read: () => Row[],
    labelOf: (row: Row) => string,
  ): void {
    for (const [name, help, field] of series) {
      new Gauge({
        name,
        help,
        labelNames: [label],
        registers: [this.registry],
        collect() {
          this.reset();
          for (const row of read()) this.set({ [label]: labelOf(row) }, Number(row[field]));
        },
      });
    }
  }

  quotaRefused(limit: string): void {
    this.quotaRefusals.inc({ limit });
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
