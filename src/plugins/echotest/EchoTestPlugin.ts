/**
 * `janus.plugin.echotest`: signalling of Janus's EchoTest plugin. Requests are
 * asynchronous as in Janus (`ack` with a hint, then an `event`), validated
 * field by field, answered `{"echotest":"event","result":"ok"}`; a jsep offer
 * is answered through the handle's PeerConnection (`PluginContext.media`).
 *
 * Media: once the PeerConnection is up, each m-line's output (what ferry
 * sends back) is fed from that m-line's source (what the client sends) inside
 * the native engine; `audio`/`video` false pause the output. Data-channel
 * messages go back as they came, on the channel of the same label (text or
 * binary, as Janus's EchoTest relays them). A gateway built
 * without a media layer (unit tests of the core) answers an offer with the
 * plugin error 499 "WebRTC media is not available in this build".
 */
import type { JsonObject, JsonValue } from '../../core/Json.js';
import type { DataMessage, Jsep } from '../../core/Media.js';
import type { MediaRouter } from '../../media/Routing.js';
import type { Plugin, PluginContext, PluginHandle, PluginInfo, PluginMessage, PluginReply } from '../../core/Plugin.js';
import { RequestQueue } from '../../core/RequestQueue.js';

/** janus_echotest.c error codes (sent inside plugindata, never as core errors). */
export const EchoTestError = {
  NO_MESSAGE: 411,
  INVALID_JSON: 412,
  INVALID_ELEMENT: 413,
  INVALID_SDP: 414,
  UNKNOWN: 499,
} as const;

type FieldKind = 'boolean' | 'integer' | 'string';

/** Fields Janus's EchoTest accepts, with their types and ranges. */
const REQUEST_FIELDS: Readonly<Record<string, { kind: FieldKind; min?: number; max?: number }>> = {
  audio: { kind: 'boolean' },
  video: { kind: 'boolean' },
  bitrate: { kind: 'integer', min: 0 },
  record: { kind: 'boolean' },
  filename: { kind: 'string' },
  substream: { kind: 'integer', min: 0, max: 2 },
  temporal: { kind: 'integer', min: 0, max: 2 },
  fallback: { kind: 'integer', min: 0 },
  spatial_layer: { kind: 'integer', min: 0, max: 2 },
  temporal_layer: { kind: 'integer', min: 0, max: 2 },
  min_delay: { kind: 'integer', min: 0 },
  max_delay: { kind: 'integer', min: 0 },
};

class EchoTestRequestError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

/** Per-handle EchoTest state, as Janus's `janus_echotest_session` keeps it. */
class EchoTestSession implements PluginHandle {
  audioActive = true;
  videoActive = true;
  bitrate = 0;
  substream = -1;
  temporal = -1;
  hasMedia = false;
  private destroyed = false;
  private recordNoted = false;
  /** Requests are processed one at a time, after the `ack` went out (Janus uses a handler thread). */
  private readonly requests = new RequestQueue((err, message) => {
    this.ctx.logger.error({ err }, 'echotest request failed');
    this.ctx.pushEvent(
      { echotest: 'event', error_code: EchoTestError.UNKNOWN, error: err instanceof Error ? err.message : String(err) },
      { transaction: message.transaction },
    );
  });

  private unsubscribeStreams: (() => void) | null = null;
  /** Data-channel messages echoed, and those the PeerConnection refused to send. */
  private echoedData = 0;
  private droppedData = 0;

  constructor(
    private readonly ctx: PluginContext,
    private readonly router: MediaRouter | null,
  ) {}

  /** Feeds every m-line's output from its own source: the echo, done natively. */
  private route(): void {
    const media = this.ctx.media;
    if (!this.router || !media?.streams || !this.hasMedia) return;
    for (const stream of media.streams()) {
      if (stream.output === null) continue;
      const source = stream.sources[0]?.source ?? null;
      try {
        this.router.switchOutput(stream.output, source);
        const active = stream.kind === 'audio' ? this.audioActive : this.videoActive;
        this.router.pauseOutput(stream.output, !active);
      } catch (err) {
        this.ctx.logger.warn({ err, mid: stream.mid }, 'echotest: could not route stream');
      }
    }
  }

  handleMessage(message: PluginMessage): PluginReply {
    this.requests.push(message, (m) => this.process(m));
    return { kind: 'wait', hint: "I'm taking my time!" };
  }

  private async process(message: PluginMessage): Promise<void> {
    if (this.destroyed) return;
    const transaction = message.transaction;
    try {
      this.applySettings(message.body);
    } catch (err) {
      if (err instanceof EchoTestRequestError) {
        this.ctx.pushEvent({ echotest: 'event', error_code: err.code, error: err.message }, { transaction });
        return;
      }
      throw err;
    }
    let answer: Jsep | undefined;
    if (message.jsep) {
      if (message.jsep.type !== 'offer') {
        this.ctx.pushEvent(
          { echotest: 'event', error_code: EchoTestError.INVALID_SDP, error: 'EchoTest only answers offers' },
          { transaction },
        );
        return;
      }
      const media = this.ctx.media;
      if (!media) {
        // Marked limitation: see the file header.
        this.ctx.pushEvent(
          { echotest: 'event', error_code: EchoTestError.UNKNOWN, error: 'WebRTC media is not available in this build' },
          { transaction },
        );
        return;
      }
      answer = await media.createAnswer(message.jsep, { audio: true, video: true, data: true });
      if (this.destroyed) return;
      this.hasMedia = true;
    }
    this.ctx.pushEvent({ echotest: 'event', result: 'ok' }, { transaction, jsep: answer });
  }

  /** Validates every known field before changing anything (a bad request changes nothing). */
  private applySettings(body: JsonObject): void {
    for (const [key, spec] of Object.entries(REQUEST_FIELDS)) {
      if (!Object.prototype.hasOwnProperty.call(body, key)) continue;
      const value: JsonValue | undefined = body[key];
      const ok =
        spec.kind === 'boolean' ? typeof value === 'boolean'
        : spec.kind === 'string' ? typeof value === 'string'
        : typeof value === 'number' && Number.isInteger(value) && (spec.min === undefined || value >= spec.min) && (spec.max === undefined || value <= spec.max);
      if (!ok) {
        throw new EchoTestRequestError(EchoTestError.INVALID_ELEMENT, `Invalid element type (${key} should be ${describeKind(spec)})`);
      }
    }
    if (typeof body['audio'] === 'boolean') this.audioActive = body['audio'];
    if (typeof body['video'] === 'boolean') this.videoActive = body['video'];
    if (typeof body['bitrate'] === 'number') this.bitrate = body['bitrate'];
    if (typeof body['audio'] === 'boolean' || typeof body['video'] === 'boolean') this.route();
    if (typeof body['substream'] === 'number') this.substream = body['substream'];
    if (typeof body['temporal'] === 'number') this.temporal = body['temporal'];
    if (body['record'] === true && !this.recordNoted) {
      // Recording is not a ferry feature: accepted for compatibility, ignored.
      this.recordNoted = true;
      this.ctx.logger.info('echotest: "record" requested; recording is not supported by ferry and is ignored');
    }
  }

  setupMedia(): void {
    this.hasMedia = true;
    const media = this.ctx.media;
    if (media?.onStreamsChanged && !this.unsubscribeStreams) {
      // An SSRC learned after setup (no a=ssrc in the offer) gets routed when it appears.
      this.unsubscribeStreams = media.onStreamsChanged(() => this.route());
    }
    this.route();
  }

  /** Janus's EchoTest relays each message back unchanged: same label, protocol and type. */
  incomingData(message: DataMessage): void {
    if (this.destroyed) return;
    this.echoedData++;
    if (!this.ctx.media?.sendData?.({ label: message.label, protocol: message.protocol, binary: message.binary, data: message.data })) this.droppedData++;
  }

  hangupMedia(): void {
    this.unsubscribeStreams?.();
    this.unsubscribeStreams = null;
    if (this.destroyed || !this.hasMedia) return;
    this.hasMedia = false;
    this.audioActive = true;
    this.videoActive = true;
    this.bitrate = 0;
    this.ctx.pushEvent({ echotest: 'event', result: 'done' });
  }

  destroy(): void {
    this.destroyed = true;
    this.unsubscribeStreams?.();
    this.unsubscribeStreams = null;
  }

  query(): JsonObject {
    return {
      audio_active: this.audioActive,
      video_active: this.videoActive,
      bitrate: this.bitrate,
      substream: this.substream,
      temporal: this.temporal,
      has_media: this.hasMedia,
      data_echoed: this.echoedData,
      data_dropped: this.droppedData,
      destroyed: this.destroyed,
    };
  }
}

function describeKind(spec: { kind: FieldKind; min?: number; max?: number }): string {
  if (spec.kind !== 'integer') return `a ${spec.kind}`;
  if (spec.min !== undefined && spec.max !== undefined) return `an integer between ${spec.min} and ${spec.max}`;
  return 'a non-negative integer';
}

export class EchoTestPlugin implements Plugin {
  readonly info: PluginInfo = {
    package: 'janus.plugin.echotest',
    name: 'JANUS EchoTest plugin',
    description: 'A simple Echo Test plugin: it echoes back media sent to it (ferry implementation).',
    author: 'ferry',
    version: 7,
    versionString: '0.0.7',
  };

  constructor(private readonly router: MediaRouter | null = null) {}

  attach(context: PluginContext): PluginHandle {
    return new EchoTestSession(context, this.router);
  }

  destroy(): void {
    // Per-handle state is released by each handle's destroy(); nothing global to free.
  }
}
