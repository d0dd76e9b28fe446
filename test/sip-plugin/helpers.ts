// Shared pieces of the SIP-plugin tests: a ferry with the SIP plugin on
// loopback, a Janus API client for one SIP handle (WebSocket), sipp runs,
// and bounded waits. Every process started here is killed by its caller.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Test } from 'uvu';
import * as assert from 'uvu/assert';

import { SipPlugin, type SipPluginConfig } from '../../src/plugins/sip/SipPlugin.js';
import { startFerry, type TestFerry } from '../helpers/ferry.js';
import { JanusWs, type Json } from '../helpers/http.js';
import { requireBinary, spawnPeer, withTimeout, type Peer } from '../sip/helpers.js';
import type { ConfigOverrides } from '../../src/config/Config.js';

const here = dirname(fileURLToPath(import.meta.url));
export const pluginScenario = (name: string) => join(here, 'scenarios', name);
export const stackScenario = (name: string) => join(here, '..', 'sip', 'scenarios', name);

export interface SipFerry {
  f: TestFerry;
  sip: SipPlugin;
}

export async function startSipFerry(config: SipPluginConfig = {}, overrides: ConfigOverrides = {}): Promise<SipFerry> {
  let sip: SipPlugin | undefined;
  const f = await startFerry(overrides, (services) => {
    sip = new SipPlugin({ media: services, config: { bind: '127.0.0.1', close_grace_ms: 50, ...config } });
    return [sip];
  });
  if (!sip) throw new Error('SIP plugin not created');
  return { f, sip };
}

/** One Janus session with one janus.plugin.sip handle, over WebSocket. */
export class SipClient {
  private constructor(
    readonly ws: JanusWs,
    readonly session: number,
    readonly handle: number,
    private readonly f: TestFerry,
  ) {}

  static async open(f: TestFerry, ws?: JanusWs): Promise<SipClient> {
    const socket = ws ?? (await JanusWs.connect(f.wsUrl));
    const created = await socket.request({ janus: 'create' });
    const session = created['data'].id as number;
    const attached = await socket.request({ janus: 'attach', session_id: session, plugin: 'janus.plugin.sip' });
    return new SipClient(socket, session, attached['data'].id as number, f);
  }

  /** Sends a plugin message; asserts Janus acknowledged it. */
  async send(body: Json, jsep?: Json): Promise<void> {
    const r = await this.ws.request({ janus: 'message', session_id: this.session, handle_id: this.handle, body, ...(jsep ? { jsep } : {}) });
    assert.ok(r['janus'] === 'ack' || r['janus'] === 'success', JSON.stringify(r));
  }

  /** Next plugin event of this handle whose result.event is `name` (or an error event when name is 'error'). */
  event(name: string, ms = 10_000): Promise<Json> {
    return this.ws.nextEvent((e) => {
      if (e['janus'] !== 'event' || e['sender'] !== this.handle) return false;
      const data = e['plugindata']?.['data'];
      if (name === 'error') return data?.['error_code'] !== undefined;
      return data?.['result']?.['event'] === name;
    }, ms);
  }

  /** Next core event (webrtcup, hangup, media, detached) of this handle. */
  core(name: string, ms = 10_000): Promise<Json> {
    return this.ws.nextEvent((e) => e['janus'] === name && e['sender'] === this.handle, ms);
  }

  /** Admin handle_info → plugin_specific. */
  async info(): Promise<Json> {
    const r = await this.f.admin.post(`/${this.session}/${this.handle}`, { janus: 'handle_info', admin_secret: 'janusoverlord' });
    return r['info']['plugin_specific'] as Json;
  }

  async destroy(): Promise<void> {
    await this.ws.request({ janus: 'destroy', session_id: this.session });
  }

  async close(): Promise<void> {
    await this.destroy().catch(() => undefined);
    await this.ws.close();
  }
}

export function sipp(args: string[], workdir: string, limitMs = 25_000): Peer {
  return spawnPeer(requireBinary('sipp'), [...args, '-i', '127.0.0.1', '-nostdin', '-timeout', `${Math.floor(limitMs / 1000) - 2}s`, '-timeout_error', '-trace_err'], limitMs, workdir);
}

/**
 * The sipp runs of one suite: requires sipp, gives each test a fresh working
 * folder (`workdir`, prefixed `dirPrefix`), and after each test kills what is
 * left in `peers` and removes the folder.
 */
export function useSippRuns(test: Test, dirPrefix: string): { readonly workdir: string; readonly peers: Peer[] } {
  let workdir = '';
  const peers: Peer[] = [];
  test.before(() => {
    requireBinary('sipp');
  });
  test.before.each(() => {
    workdir = mkdtempSync(join(tmpdir(), dirPrefix));
  });
  test.after.each(() => {
    for (const p of peers.splice(0)) p.kill();
    rmSync(workdir, { recursive: true, force: true });
  });
  return { get workdir() { return workdir; }, peers };
}

export async function expectSippSuccess(peer: Peer, what: string): Promise<void> {
  const code = await withTimeout(peer.exited, 30_000, `${what}: sipp exit`);
  assert.is(code, 0, `${what}: sipp exit code ${code}\n${peer.output().slice(-3000)}`);
}

export async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Registers the handle as a guest account (no REGISTER sent) and waits for `registered`. */
export async function registerGuest(client: SipClient): Promise<Json> {
  await client.send({ request: 'register', type: 'guest', username: 'sip:ferry@127.0.0.1' });
  return client.event('registered');
}

/**
 * The end of a call test: every port lease released and no call slot busy;
 * with `noPeerConnection`, no PeerConnection left either.
 */
export async function expectCallsReleased(s: SipFerry, options: { noPeerConnection?: boolean } = {}): Promise<void> {
  await until(() => s.f.ferry.leasedPorts() === 0, 5000, 'every port released');
  assert.is(s.sip.stats().activeCalls, 0);
  if (options.noPeerConnection) assert.is(s.f.ferry.webrtc.count, 0);
}

/** A churn's tally: `calls` calls in all, spread evenly over `paths`. */
export function expectEvenPaths(counts: Map<string, number>, paths: readonly string[], calls: number): void {
  assert.is([...counts.values()].reduce((a, b) => a + b, 0), calls);
  for (const p of paths) assert.is(counts.get(p), calls / paths.length, p);
}

/**
 * After a churn: every call slot idle, no port lease, PeerConnection or native endpoint left, and
 * (the handles being gone) every account closed.
 */
export async function expectChurnReleased(s: SipFerry): Promise<void> {
  await until(() => s.sip.stats().activeCalls === 0, 5000, 'every call slot idle');
  await until(() => s.f.ferry.leasedPorts() === 0, 5000, `every port lease released (still ${s.f.ferry.leasedPorts()})`);
  assert.is(s.f.ferry.webrtc.count, 0, 'no PeerConnection left');
  assert.is(s.f.ferry.engine.endpointCount(), 0, 'no native endpoint left');
  await until(() => s.sip.stats().accounts === 0 && s.sip.stats().sessions === 0, 5000, 'every account closed with its handle');
}

const FINGERPRINT = Array.from({ length: 32 }, (_, i) => ((i * 37 + 11) & 0xff).toString(16).padStart(2, '0').toUpperCase()).join(':');

/**
 * A browser-like WebRTC description without a browser behind it (signalling-only
 * tests: ICE never completes, so every call must end before the connect timeout).
 */
export function webrtcSdp(type: 'offer' | 'answer', options: { mid?: string; pt?: number; codec?: string; ssrc?: number } = {}): string {
  const mid = options.mid ?? '0';
  const codecs = type === 'offer' && options.pt === undefined
    ? [[111, 'opus/48000/2'], [0, 'PCMU/8000']] as const
    : [[options.pt ?? 0, options.codec ?? 'PCMU/8000']] as const;
  return [
    'v=0', `o=- ${Date.now()} 1 IN IP4 127.0.0.1`, 's=-', 't=0 0', `a=group:BUNDLE ${mid}`,
    `m=audio 9 UDP/TLS/RTP/SAVPF ${codecs.map((c) => c[0]).join(' ')}`, 'c=IN IP4 0.0.0.0', `a=mid:${mid}`,
    'a=ice-ufrag:frag', 'a=ice-pwd:passwordpasswordpassword', `a=fingerprint:sha-256 ${FINGERPRINT}`,
    `a=setup:${type === 'offer' ? 'actpass' : 'active'}`, 'a=rtcp-mux',
    ...codecs.map(([pt, name]) => `a=rtpmap:${pt} ${name}`),
    `a=ssrc:${options.ssrc ?? 4242} cname:test`, 'a=sendrecv', '',
  ].join('\r\n');
}
