/**
 * Test doubles at the core's documented seams: a plugin whose behaviour each
 * request selects, and a media provider that records calls and lets the test
 * fire media events (standing in for the WebRTC transport of the next issue).
 */
import type { JsonObject } from '../../src/core/Json.js';
import { JanusError, JanusErrorCode } from '../../src/core/JanusError.js';
import type { HandleMedia, Jsep, MediaEvents, MediaProvider, TrickleCandidate } from '../../src/core/Media.js';
import type { Plugin, PluginContext, PluginHandle, PluginMessage, PluginReply } from '../../src/core/Plugin.js';

export const TEST_PLUGIN = 'test.plugin.scripted';

export class ScriptedPlugin implements Plugin {
  readonly info = { package: TEST_PLUGIN, name: 'scripted', description: 'test', author: 'test', version: 1, versionString: '0.0.1' };
  readonly calls: string[] = [];
  destroyed = false;

  attach(ctx: PluginContext): PluginHandle {
    if (ctx.opaqueId === 'fail-attach') throw new Error('attach refused');
    const calls = this.calls;
    return {
      handleMessage(message: PluginMessage): PluginReply {
        const req = message.body['request'];
        calls.push(`message:${String(req)}${message.jsep ? `:${message.jsep.type}` : ''}`);
        switch (req) {
          case 'sync':
            return { kind: 'ok', data: { scripted: 'ok', echo: message.body } };
          case 'sync-error':
            return { kind: 'ok', data: { scripted: 'event', error_code: 499, error: 'plugin says no' } };
          case 'async':
            setImmediate(() => ctx.pushEvent({ scripted: 'event', n: 1 }, { transaction: message.transaction }));
            return { kind: 'wait', hint: 'later' };
          case 'offer':
            setImmediate(() => ctx.pushEvent({ scripted: 'offering' }, { transaction: message.transaction, jsep: { type: 'offer', sdp: 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\n' } }));
            return { kind: 'wait' };
          case 'burst':
            for (let i = 0; i < Number(message.body['count'] ?? 3); i++) ctx.pushEvent({ scripted: 'burst', i });
            return { kind: 'ok', data: { scripted: 'bursting' } };
          case 'close-pc':
            ctx.closePeerConnection('plugin closed it');
            return { kind: 'ok', data: {} };
          case 'end-handle':
            ctx.endHandle('plugin ended it');
            return { kind: 'ok', data: {} };
          case 'error':
            return { kind: 'error', reason: 'scripted failure' };
          case 'throw':
            throw new Error('scripted exception');
          case 'bad-reply':
            return { nonsense: true } as unknown as PluginReply;
          default:
            return { kind: 'ok', data: { scripted: 'unknown' } };
        }
      },
      setupMedia: () => { calls.push('setupMedia'); },
      hangupMedia: (reason: string) => { calls.push(`hangupMedia:${reason}`); },
      destroy: (reason: string) => {
        calls.push(`destroy:${reason}`);
        if (ctx.opaqueId === 'fail-detach') throw new Error('detach refused');
      },
      query: () => ({ scripted: true }),
    };
  }

  handleAdminMessage(request: JsonObject): JsonObject {
    if (request['fail'] === true) throw new Error('admin refused');
    return { scripted: 'admin', got: request };
  }

  destroy(): void {
    this.destroyed = true;
  }
}

export class FakeMedia implements HandleMedia {
  readonly remote: Jsep[] = [];
  readonly candidates: TrickleCandidate[] = [];
  closedWith: string | null = null;

  constructor(readonly owner: { sessionId: number; handleId: number }, readonly events: MediaEvents) {}

  setRemoteDescription(jsep: Jsep): void {
    if (jsep.sdp.includes('a=reject-me')) throw new JanusError(JanusErrorCode.JSEP_INVALID_SDP, 'JSEP error: invalid SDP (fake media refused it)');
    this.remote.push(jsep);
  }

  prepareLocalDescription(jsep: Jsep): Jsep {
    return { ...jsep, sdp: `${jsep.sdp}a=ice-ufrag:fake\r\n` };
  }

  createAnswer(offer: Jsep): Jsep {
    return { type: 'answer', sdp: offer.sdp.replace('a=sendrecv', 'a=sendrecv\r\na=setup:passive') };
  }

  addRemoteCandidates(candidates: TrickleCandidate[]): void {
    this.candidates.push(...candidates);
  }

  close(reason: string): void {
    this.closedWith ??= reason;
  }

  describe(): JsonObject {
    return { fake: true, remote: this.remote.length };
  }
}

export class FakeMediaProvider implements MediaProvider {
  readonly opened: FakeMedia[] = [];

  open(owner: { sessionId: number; handleId: number }, events: MediaEvents): HandleMedia {
    const media = new FakeMedia(owner, events);
    this.opened.push(media);
    return media;
  }

  forHandle(handleId: number): FakeMedia | undefined {
    return [...this.opened].reverse().find((m) => m.owner.handleId === handleId);
  }

  get open_count(): number {
    return this.opened.filter((m) => m.closedWith === null).length;
  }
}
