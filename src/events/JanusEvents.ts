// Janus's event handler format: what an event is, its type and subtype numbers, the type
// names a handler's `events` filter takes, and the body of each kind of event. Janus's
// event handlers (sampleevh, mqttevh, …) receive exactly these objects; a collector written
// for Janus reads ferry's unchanged.
import { ConfigError } from '../config/Config.js';

/** Event types: each one bit, so a handler's filter is a mask (Janus events.h). */
export const EventType = {
  session: 1,
  handle: 2,
  external: 4,
  jsep: 8,
  webrtc: 16,
  media: 32,
  plugin: 64,
  transport: 128,
  core: 256,
} as const;
export type EventTypeNumber = (typeof EventType)[keyof typeof EventType];

/** Every type's bit. */
export const ALL_EVENT_TYPES = 0x1ff;

/** The names a handler's `events` list takes, as Janus spells them, with their bits. */
export const EVENT_TYPE_NAMES: Readonly<Record<string, number>> = {
  sessions: EventType.session,
  handles: EventType.handle,
  external: EventType.external,
  jsep: EventType.jsep,
  webrtc: EventType.webrtc,
  media: EventType.media,
  plugins: EventType.plugin,
  transports: EventType.transport,
  core: EventType.core,
};

/** `webrtc` subtypes. */
export const WebRtcSubtype = { ice: 1, localCandidate: 2, remoteCandidate: 3, selectedPair: 4, dtls: 5, peerConnection: 6 } as const;
/** `media` subtypes. */
export const MediaSubtype = { state: 1, slowLink: 2, stats: 3 } as const;
/** `core` subtypes: `started` and the periodic `update` are 1, `shutdown` is 2. */
export const CoreSubtype = { startup: 1, shutdown: 2 } as const;

export type EventBody = Record<string, unknown>;

/** One event as handlers receive it. */
export interface JanusEvent {
  /** The server's name (`general.server_name`), so one collector can tell gateways apart. */
  emitter: string;
  type: number;
  /** Only for the types that have subtypes (webrtc, media, core). */
  subtype?: number;
  /** Wall-clock time in microseconds since the Unix epoch. */
  timestamp: number;
  session_id?: number;
  handle_id?: number;
  opaque_id?: string;
  event: EventBody;
}

/**
 * Parses a handler's filter: `all`, `none`, or a comma-separated list of type names
 * (`sessions,handles,media`). An unknown name is a configuration error that names it, where
 * Janus would silently subscribe to less than the operator wrote.
 */
export function parseEventMask(list: string, where: string): number {
  const text = list.trim().toLowerCase();
  if (text === 'all') return ALL_EVENT_TYPES;
  if (text === 'none' || text === '') return 0;
  let mask = 0;
  for (const raw of text.split(',')) {
    const name = raw.trim();
    if (name === '') continue;
    const bit = EVENT_TYPE_NAMES[name];
    if (bit === undefined) {
      throw new ConfigError(`config: ${where}: unknown event type "${name}" (known: all, none, ${Object.keys(EVENT_TYPE_NAMES).join(', ')})`);
    }
    mask |= bit;
  }
  return mask;
}

/** The type names a mask selects, for status pages. */
export function eventMaskNames(mask: number): string[] {
  if ((mask & ALL_EVENT_TYPES) === ALL_EVENT_TYPES) return ['all'];
  return Object.entries(EVENT_TYPE_NAMES).filter(([, bit]) => (mask & bit) !== 0).map(([name]) => name);
}

// ---- what the media layer reports, and its Janus bodies --------------------------------------

/** A transport step of one PeerConnection (Janus reports the same from its ICE and DTLS code). */
export type WebRtcTransportEvent =
  /**
   * ferry is ICE-lite (RFC 8445 §2.5): it gathers nothing, so there is no `gathering`.
   * `connecting` once a negotiation gives the peer's credentials, `connected` at the first
   * validated check, `ready` once DTLS is done over it (the transport is then in use),
   * `failed` when consent is lost or the connection never completes.
   */
  | { kind: 'ice'; state: 'connecting' | 'connected' | 'ready' | 'failed' }
  /** A candidate ferry announced, or one the peer trickled: the a=candidate value. */
  | { kind: 'local-candidate' | 'remote-candidate'; candidate: string }
  | { kind: 'selected-pair'; local: { address: string; port: number }; remote: { address: string; port: number } }
  | { kind: 'dtls'; state: 'trying' | 'connected' | 'failed' };

/** One m-line's counters over a stats period (engine counters are totals since it opened). */
export interface MediaLineStats {
  mid: string;
  mindex: number;
  media: 'audio' | 'video';
  codec: string | null;
  clockRate: number | null;
  /** Round trip from the peer's feedback (ms); null when the engine has none. */
  rttMs: number | null;
  /** Packets the peer sent ferry that never arrived (RFC 3550 §6.4.1, summed over periods). */
  lost: number;
  /** Cumulative loss the peer's receiver last reported on what ferry sends (RFC 3550 §6.4.1); null before any. */
  lostByRemote: number | null;
  packetsReceived: number;
  bytesReceived: number;
  packetsSent: number;
  bytesSent: number;
  /** Bytes per second over the last period. */
  bytesReceivedPerSecond: number;
  bytesSentPerSecond: number;
  /** Sequence numbers the peer asked again for (its generic NACKs, RFC 4585 §6.2.1). */
  nacksReceived: number;
  /** NACKs ferry sent the peer, and the RFC 4588 retransmissions it received (per PeerConnection). */
  nacksSent: number | null;
  retransmissionsReceived: number | null;
}

/** Janus's `webrtc` subtype and body for a transport step (stream and component are always 1: one bundled transport). */
export function webrtcEventBody(e: WebRtcTransportEvent): { subtype: number; body: EventBody } {
  const ids = { stream_id: 1, component_id: 1 };
  switch (e.kind) {
    case 'ice':
      return { subtype: WebRtcSubtype.ice, body: { ice: e.state, ...ids } };
    case 'local-candidate':
      return { subtype: WebRtcSubtype.localCandidate, body: { 'local-candidate': e.candidate, ...ids } };
    case 'remote-candidate':
      return { subtype: WebRtcSubtype.remoteCandidate, body: { 'remote-candidate': e.candidate, ...ids } };
    case 'selected-pair': {
      // The peer's address is learned from its checks: Janus calls such a candidate prflx.
      const family = (address: string) => (address.includes(':') ? 6 : 4);
      return {
        subtype: WebRtcSubtype.selectedPair,
        body: {
          'selected-pair': `${e.local.address}:${e.local.port} [host,udp] <-> ${e.remote.address}:${e.remote.port} [prflx,udp]`,
          candidates: {
            local: { address: e.local.address, port: e.local.port, type: 'host', transport: 'udp', family: family(e.local.address) },
            remote: { address: e.remote.address, port: e.remote.port, type: 'prflx', transport: 'udp', family: family(e.remote.address) },
          },
          ...ids,
        },
      };
    }
    case 'dtls':
      return { subtype: WebRtcSubtype.dtls, body: { dtls: e.state, ...ids } };
  }
}

/** Janus's `media` stats body (subtype 3) for one m-line. Jitter is left out: the engine does not measure it. */
export function mediaStatsBody(s: MediaLineStats): EventBody {
  const body: EventBody = { mid: s.mid, mindex: s.mindex, media: s.media };
  if (s.codec !== null) body['codec'] = s.codec;
  if (s.clockRate !== null) body['base'] = s.clockRate;
  if (s.rttMs !== null) body['rtt'] = s.rttMs;
  body['lost'] = s.lost;
  if (s.lostByRemote !== null) body['lost-by-remote'] = s.lostByRemote;
  body['packets-received'] = s.packetsReceived;
  body['packets-sent'] = s.packetsSent;
  body['bytes-received'] = s.bytesReceived;
  body['bytes-sent'] = s.bytesSent;
  body['bytes-received-lastsec'] = s.bytesReceivedPerSecond;
  body['bytes-sent-lastsec'] = s.bytesSentPerSecond;
  body['nacks-received'] = s.nacksReceived;
  if (s.nacksSent !== null) body['nacks-sent'] = s.nacksSent;
  if (s.retransmissionsReceived !== null) body['retransmissions-received'] = s.retransmissionsReceived;
  return body;
}
