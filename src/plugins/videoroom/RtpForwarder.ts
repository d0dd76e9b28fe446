/**
 * A plain RTP leg sending a feed's streams to a fixed address: `rtp_forward`
 * (one stream, chosen SSRC/PT) and `publish_remotely` (every stream, with the
 * Janus cascading SSRC scheme). The forwarder owns its leg: `close()` releases
 * the port lease (lessons §5), and nothing else closes it.
 */
import type { JsonObject } from '../../core/Json.js';
import type { MediaRouter, RtpLeg } from '../../media/Routing.js';
import { relayable, type Feed } from './Feed.js';

/** What one output of the leg carries: a stream's simulcast layer with an SSRC and optional PT. */
export interface ForwardTarget {
  mid: string;
  layer: number;
  ssrc: number;
  payloadType?: number;
}

/** Janus cascading SSRCs: REMOTE_PUBLISHER_BASE_SSRC + mindex × REMOTE_PUBLISHER_SSRC_STEP + layer. */
export const REMOTE_BASE_SSRC = 1000;
export const REMOTE_SSRC_STEP = 10;
export function cascadeSsrc(mindex: number, layer: number): number {
  return REMOTE_BASE_SSRC + mindex * REMOTE_SSRC_STEP + layer;
}

export class RtpForwarder {
  private readonly outputs = new Map<string, number>();
  private closed = false;

  constructor(
    readonly leg: RtpLeg,
    private readonly router: MediaRouter | null,
    /** null: follow every stream of the feed with the cascading SSRC scheme (publish_remotely). */
    private readonly targets: ForwardTarget[] | null,
    /** Reply fields this forwarder was created with (listforwarders / listremotes). */
    readonly info: JsonObject,
  ) {}

  get isClosed(): boolean {
    return this.closed;
  }

  /** Number of outputs currently on the leg (tests check nothing leaks). */
  get outputCount(): number {
    return this.outputs.size;
  }

  /** Connects (or re-points) each output to the feed's current source for it. */
  refresh(feed: Feed): void {
    if (this.closed) return;
    const wanted = new Map<string, { target: ForwardTarget; source: number | null }>();
    for (const target of this.targets ?? this.cascadeTargets(feed)) {
      const stream = feed.stream(target.mid);
      const source = stream && relayable(stream) ? (stream.layers[target.layer] ?? null) : null;
      wanted.set(`${target.mid}/${target.layer}`, { target, source });
    }
    for (const [key, output] of this.outputs) {
      if (!wanted.has(key)) {
        this.leg.removeOutput(output);
        this.outputs.delete(key);
      }
    }
    for (const [key, { target, source }] of wanted) {
      const output = this.outputs.get(key);
      if (output === undefined) {
        const options: { ssrc: number; payloadType?: number; source: number | null } = { ssrc: target.ssrc, source };
        if (target.payloadType !== undefined) options.payloadType = target.payloadType;
        this.outputs.set(key, this.leg.addOutput(options));
      } else {
        this.router?.switchOutput(output, source);
      }
    }
  }

  private cascadeTargets(feed: Feed): ForwardTarget[] {
    const out: ForwardTarget[] = [];
    for (const s of feed.streams) {
      if (s.disabled || s.type === 'data') continue;
      const layers = s.simulcast ? Math.max(1, s.layers.length) : 1;
      for (let layer = 0; layer < layers; layer++) out.push({ mid: s.mid, layer, ssrc: cascadeSsrc(s.mindex, layer) });
    }
    return out;
  }

  /** Releases the leg and its port. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.outputs.clear();
    this.leg.close();
  }
}
