// Janus's media stats events (type 32, subtype 3) for ferry's PeerConnections: once per stats
// period, one read of the engine's counters serves every PeerConnection, and each m-line of
// each connected one whose handle wants them gets its packets, bytes, loss, NACKs and RTT.
import type { MediaEvents, MediaStreamInfo } from '../core/Media.js';
import type { MediaLineStats } from '../events/JanusEvents.js';
import type { MediaEngine } from '../media/MediaEngine.js';
import type { PeerConnection } from './PeerConnection.js';

type Counters = ReturnType<MediaEngine['stats']>;
type EndpointCounters = Counters['endpoints'][number];
type StreamCounters = Counters['sources'][number];

export class MediaStatsReader {
  /** Bytes each m-line had received and sent at the last report, for the per-second rates. */
  private readonly previous = new WeakMap<PeerConnection, Map<string, { received: number; sent: number }>>();

  constructor(private readonly engine: MediaEngine) {}

  forget(pc: PeerConnection): void {
    this.previous.delete(pc);
  }

  report(connections: Iterable<{ pc: PeerConnection; events: MediaEvents }>, periodMs: number): void {
    const wanted: Array<{ pc: PeerConnection; emit: (stats: MediaLineStats) => void }> = [];
    for (const c of connections) {
      const emit = c.events.mediaStats;
      if (emit && c.pc.currentState === 'connected') wanted.push({ pc: c.pc, emit: emit.bind(c.events) });
    }
    if (wanted.length === 0) return;
    let counters: Counters;
    try {
      counters = this.engine.stats();
    } catch {
      return; // engine closed meanwhile: shutting down
    }
    const endpoints = new Map<number, EndpointCounters>();
    for (const e of counters.endpoints) endpoints.set(e.id, e);
    const sources = new Map<number, StreamCounters>();
    for (const s of counters.sources) sources.set(s.id, s);
    const outputs = new Map<number, StreamCounters>();
    for (const o of counters.outputs) outputs.set(o.id, o);
    for (const { pc, emit } of wanted) {
      const endpoint = pc.endpoint !== null ? endpoints.get(pc.endpoint) : undefined;
      const loss = pc.lossCounters();
      let previous = this.previous.get(pc);
      if (!previous) {
        previous = new Map();
        this.previous.set(pc, previous);
      }
      const before = previous;
      pc.forEachStream((info: Readonly<MediaStreamInfo>) => {
        let packetsReceived = 0;
        let bytesReceived = 0;
        let lost = 0;
        for (const s of info.sources) {
          const c = sources.get(s.source);
          packetsReceived += c?.packets ?? 0;
          bytesReceived += c?.bytes ?? 0;
          lost += loss.bySource.get(s.source) ?? 0;
        }
        const out = info.output !== null ? outputs.get(info.output) : undefined;
        const last = before.get(info.mid) ?? { received: 0, sent: 0 };
        const bytesSent = out?.bytes ?? 0;
        before.set(info.mid, { received: bytesReceived, sent: bytesSent });
        // NACKs ferry sends and RTX it receives are counted per PeerConnection (one bundled
        // transport); ferry NACKs video only, so they are told on the m-lines receiving video.
        const receivesVideo = info.kind === 'video' && info.sources.length > 0;
        emit({
          mid: info.mid,
          mindex: info.index,
          media: info.kind,
          codec: info.codec?.name.toLowerCase() ?? null,
          clockRate: info.codec?.clockRate ?? null,
          rttMs: endpoint && endpoint.rttMs > 0 ? endpoint.rttMs : null,
          lost,
          lostByRemote: info.outputSsrc !== null ? (loss.remoteBySsrc.get(info.outputSsrc) ?? null) : null,
          packetsReceived,
          bytesReceived,
          packetsSent: out?.packets ?? 0,
          bytesSent,
          bytesReceivedPerSecond: Math.max(0, Math.round(((bytesReceived - last.received) * 1000) / periodMs)),
          bytesSentPerSecond: Math.max(0, Math.round(((bytesSent - last.sent) * 1000) / periodMs)),
          nacksReceived: out?.nacked ?? 0,
          nacksSent: receivesVideo && endpoint ? endpoint.nacksSent : null,
          retransmissionsReceived: receivesVideo && endpoint ? endpoint.rtxIn : null,
        });
      });
    }
  }
}
