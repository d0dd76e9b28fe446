/**
 * One handle attached to the Streaming plugin: a viewer in the making.
 * Synchronous requests (list, info, create, …) are answered at once by the
 * plugin; a viewer's requests (watch, start, pause, configure, switch, stop)
 * are acknowledged and processed one at a time, their result pushed as a
 * `{"streaming":"event","result":{…}}` event carrying the request's
 * transaction, as janus_streaming.c's handler thread does.
 */
import type { JsonObject } from '../../core/Json.js';
import { field } from '../../core/Json.js';
import type { HandleMedia, Jsep } from '../../core/Media.js';
import type { PluginContext, PluginHandle, PluginMessage, PluginReply } from '../../core/Plugin.js';
import { RequestQueue } from '../../core/RequestQueue.js';
import { assignDefined } from '../../core/RequestTable.js';
import { StreamingError, StreamingErrorCode, checkSecret, errorData, invalid, missing, noSuchMountpoint } from './errors.js';
import type { Mountpoint } from './Mountpoint.js';
import * as R from './requests.js';
import type { StreamingPlugin } from './StreamingPlugin.js';
import { Viewer, type MediaChoice } from './Viewer.js';

export class StreamingHandle implements PluginHandle {
  private readonly viewer: Viewer;
  private destroyed = false;
  private readonly requests = new RequestQueue((err, message) => {
    if (!this.destroyed) this.ctx.pushEvent(errorData(err, this.ctx.logger), { transaction: message.transaction });
  });

  constructor(private readonly plugin: StreamingPlugin, private readonly ctx: PluginContext) {
    this.viewer = new Viewer(
      {
        push: (data, options) => this.push(data, options?.transaction, options?.jsep),
        media: () => this.ctx.media,
        openMedia: () => this.openMedia(),
        closePeerConnection: (reason) => {
          if (!this.destroyed) this.ctx.closePeerConnection(reason);
        },
      },
      plugin.services,
    );
  }

  get sessionId(): number {
    return this.ctx.sessionId;
  }

  /** A viewer's media sits with its mountpoint's ingest ports (engine placement). */
  placementGroup(body: JsonObject): string | undefined {
    const id = this.viewer.mountpoint?.id ?? body['id'];
    return typeof id === 'number' ? placementGroup(id) : undefined;
  }

  private openMedia(): HandleMedia | null {
    if (this.destroyed) return null;
    return this.ctx.media ?? this.ctx.openMedia();
  }

  handleMessage(message: PluginMessage): PluginReply {
    const request = field(message.body, 'request');
    if (typeof request !== 'string') {
      return { kind: 'ok', data: errorData(request === undefined || request === null ? missing('request') : invalid('request', 'a string'), this.ctx.logger) };
    }
    const name = request.toLowerCase();
    if (R.SYNC_REQUESTS.has(name)) return { kind: 'ok', data: this.plugin.handleSync(message.body, this) };
    if (!R.ASYNC_REQUESTS.has(name)) {
      return { kind: 'ok', data: errorData(new StreamingError(StreamingErrorCode.INVALID_REQUEST, `Unknown request '${request.slice(0, 64)}'`), this.ctx.logger) };
    }
    this.requests.push(message, (m) => this.process(name, m));
    return { kind: 'wait' };
  }

  private push(data: JsonObject, transaction: string | undefined, jsep?: Jsep): void {
    if (!this.destroyed) this.ctx.pushEvent(data, { transaction, jsep });
  }

  private result(result: JsonObject, transaction: string, jsep?: Jsep): void {
    this.push({ streaming: 'event', result }, transaction, jsep);
  }

  private async process(name: string, message: PluginMessage): Promise<void> {
    if (this.destroyed) return;
    const { body, transaction, jsep } = message;
    const viewer = this.viewer;
    switch (name) {
      case 'watch':
        return this.watch(body, transaction, jsep);
      case 'start': {
        if (!viewer.mountpoint) throw new StreamingError(StreamingErrorCode.NO_SUCH_MOUNTPOINT, "Can't start: no mountpoint set");
        if (jsep) {
          if (jsep.type !== 'answer') throw new StreamingError(StreamingErrorCode.INVALID_SDP, 'Invalid SDP type (viewers answer with start)');
          viewer.answered();
        }
        viewer.paused = false;
        viewer.reconcile();
        this.result({ status: viewer.mediaUp ? 'started' : 'starting' }, transaction);
        return;
      }
      case 'pause': {
        if (!viewer.mountpoint) throw new StreamingError(StreamingErrorCode.NO_SUCH_MOUNTPOINT, "Can't pause: no mountpoint set");
        viewer.paused = true;
        viewer.reconcile();
        this.result({ status: 'pausing' }, transaction);
        return;
      }
      case 'configure': {
        if (!viewer.mountpoint) throw new StreamingError(StreamingErrorCode.NO_SUCH_MOUNTPOINT, "Can't configure: not on a mountpoint");
        R.validate(body, R.CONFIGURE);
        const options: Parameters<Viewer['configure']>[0] = {};
        assignDefined(options, {
          mid: R.optString(body, 'mid'),
          send: R.optBool(body, 'send'),
          substream: R.optNumber(body, 'substream'),
          temporal: R.optNumber(body, 'temporal'),
          audio: R.optBool(body, 'audio'),
          video: R.optBool(body, 'video'),
        });
        const current = viewer.configure(options);
        if (current !== null) this.push({ streaming: 'event', result: { substream: current } }, undefined);
        this.result({ event: 'configured' }, transaction);
        return;
      }
      case 'switch': {
        if (!viewer.mountpoint) throw new StreamingError(StreamingErrorCode.NO_SUCH_MOUNTPOINT, "Can't switch: not on a mountpoint");
        R.validate(body, R.SWITCH);
        const next = this.plugin.mountpoint(body['id'] as number);
        if (!next.config.enabled) throw disabled(next);
        viewer.switchTo(next);
        this.result({ switched: 'ok', id: next.id }, transaction);
        return;
      }
      case 'stop': {
        this.result({ status: 'stopping' }, transaction);
        viewer.teardown();
        // The PeerConnection goes through the core's one ending; hangupMedia finds the viewer idle.
        if (this.ctx.media) this.ctx.closePeerConnection('Stopped');
        return;
      }
      default:
        throw new StreamingError(StreamingErrorCode.INVALID_REQUEST, `Unknown request '${name}'`);
    }
  }

  private async watch(body: JsonObject, transaction: string, jsep: Jsep | undefined): Promise<void> {
    R.validate(body, R.WATCH);
    const mids = field(body, 'media');
    if (Array.isArray(mids) && mids.some((m) => typeof m !== 'string')) {
      throw new StreamingError(StreamingErrorCode.INVALID_ELEMENT, 'The media array must only contain strings (mid values)');
    }
    const id = body['id'] as number;
    const mp = this.plugin.mountpoints.get(id);
    if (!mp || mp.destroyed) throw noSuchMountpoint(id);
    checkSecret(mp.config.pin, body, 'pin');
    if (!mp.config.enabled) throw disabled(mp);
    const viewer = this.viewer;
    const choice: MediaChoice = {
      mids: Array.isArray(mids) ? (mids as string[]) : null,
      audio: R.optBool(body, 'offer_audio') ?? true,
      video: R.optBool(body, 'offer_video') ?? true,
    };
    assignDefined(choice, { substream: R.optNumber(body, 'substream'), temporal: R.optNumber(body, 'temporal') });
    if (viewer.mountpoint) {
      if (viewer.mountpoint !== mp) throw new StreamingError(StreamingErrorCode.INVALID_STATE, `Already watching mountpoint ${viewer.mountpoint.id}`);
      // The same mountpoint again: a renegotiation (an ICE restart), once the PeerConnection is up;
      // ferry offers again (`restart`), or answers the client's new offer (a WHEP player's restart).
      if (!viewer.mediaUp) throw new StreamingError(StreamingErrorCode.INVALID_STATE, `Already watching mountpoint ${mp.id}`);
      if (jsep) {
        if (jsep.type !== 'offer') throw new StreamingError(StreamingErrorCode.INVALID_SDP, 'User provided SDP for a watch request must be an offer');
        this.result({ status: 'updating' }, transaction, await viewer.reanswer(jsep));
        return;
      }
      const offer = await viewer.offer();
      this.result({ status: 'updating' }, transaction, offer);
      return;
    }
    if (jsep) {
      if (jsep.type !== 'offer') throw new StreamingError(StreamingErrorCode.INVALID_SDP, 'User provided SDP for a watch request must be an offer');
      const answer = await this.guard(mp, () => viewer.answerOffer(mp, jsep, choice));
      this.result({ status: 'starting' }, transaction, answer);
      return;
    }
    const offer = await this.guard(mp, () => viewer.watch(mp, choice));
    this.result({ status: 'preparing' }, transaction, offer);
  }

  /** A watch that fails (or whose handle or mountpoint went meanwhile) leaves the viewer idle. */
  private async guard(mp: Mountpoint, step: () => Promise<Jsep>): Promise<Jsep> {
    let jsep: Jsep;
    try {
      jsep = await step();
    } catch (err) {
      this.viewer.teardown();
      throw err;
    }
    if (this.destroyed || mp.destroyed) {
      this.viewer.teardown();
      throw new StreamingError(StreamingErrorCode.NO_SUCH_MOUNTPOINT, `No such mountpoint/stream ${mp.id}`);
    }
    return jsep;
  }

  setupMedia(): void {
    if (this.destroyed || !this.viewer.mountpoint) return;
    this.viewer.setMediaUp();
    this.push({ streaming: 'event', result: { status: 'started' } }, undefined);
  }

  /** The PeerConnection is gone (stop, hangup, failure): the viewer leaves its mountpoint. Idempotent. */
  hangupMedia(_reason: string): void {
    this.viewer.teardown();
  }

  destroy(_reason: string): void {
    if (this.destroyed) return;
    this.viewer.teardown();
    this.destroyed = true;
    this.plugin.forgetHandle(this);
  }

  query(): JsonObject {
    return this.viewer.query();
  }
}

/** The media-thread placement group of a mountpoint: its ingest and its viewers stay on few threads. */
export function placementGroup(id: number): string {
  return `streaming:${id}`;
}

function disabled(mp: Mountpoint): StreamingError {
  return new StreamingError(StreamingErrorCode.NO_SUCH_MOUNTPOINT, `Mountpoint ${mp.id} is disabled`);
}
