/**
 * The SIP demo page in headless Chromium, through ferry's janus.plugin.sip, to
 * real sipp peers on 127.0.0.1:
 * - a sipp registrar challenges the page's REGISTER (401, digest checked by
 *   sipp's verifyauth) and later takes the un-REGISTER;
 * - a sipp UAS answers the page's call with PCMU and echoes RTP back
 *   (-rtp_echo), so the browser's inbound audio counts real packets that
 *   went browser → ferry → sipp → ferry → browser;
 * - a dial-pad click reaches sipp as SIP INFO (application/dtmf-relay,
 *   Signal=5), checked by the scenario;
 * - Hang up sends BYE, which the scenario needs to finish; then ferry holds
 *   no port, call or account, and no session once the page leaves.
 * - as a guest, an offerless INVITE from sipp (the SIP-plugin tests'
 *   scenario) rings the page; Accept sends the browser's offer, whose answer
 *   comes in sipp's ACK; sipp echoes the RTP; Hang up ends it with BYE.
 * The registrar and UAS scenarios are written to a temporary directory from this file.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { waitUntilIdle } from '../helpers/ferry.js';
import { launchChromium, pageErrors, pollUntil, saveScreenshot } from '../helpers/browser.js';
import { freePort, requireBinary, type Peer } from '../sip/helpers.js';
import { expectSippSuccess, pluginScenario, sipp, stackScenario, startSipFerry, type SipFerry } from '../sip-plugin/helpers.js';

// The digest registrar scenario (scenarios/registrar-digest.xml) checks exactly these credentials.
const USER = 'alice';
const PASSWORD = 'demo-secret';

const demoScenario = (name: string): string => fileURLToPath(new URL(`./scenarios/${name}`, import.meta.url));




interface PageState {
  registration: string;
  call: string;
  events: string[];
  errors: { error_code: number; error: string }[];
  lastHangup: { code: number; reason: string } | null;
  audioIn: number;
  audioOut: number;
  codec: string | null;
  connectionState: string;
}

function readPage(page: Page): Promise<PageState> {
  return page.evaluate(async (): Promise<PageState> => {
    const demo = (globalThis as any).ferrySip;
    const pc: any = demo?.handle?.webrtcStuff?.pc;
    const out: PageState = {
      registration: demo?.registration ?? 'none',
      call: demo?.call ?? 'none',
      events: (demo?.events ?? []).map((e: any) => e.event),
      errors: demo?.errors ?? [],
      lastHangup: demo?.lastHangup ?? null,
      audioIn: 0,
      audioOut: 0,
      codec: null,
      connectionState: pc?.connectionState ?? 'none',
    };
    if (!pc) return out;
    const report = await pc.getStats();
    report.forEach((s: any) => {
      if (s.kind !== 'audio') return;
      if (s.type === 'inbound-rtp') {
        out.audioIn += s.packetsReceived ?? 0;
        out.codec = report.get(s.codecId)?.mimeType ?? out.codec;
      } else if (s.type === 'outbound-rtp') out.audioOut += s.packetsSent ?? 0;
    });
    return out;
  });
}

let s: SipFerry;
let browser: Browser;
let workdir: string;
const peers: Peer[] = [];

test.before(async () => {
  requireBinary('sipp');
  workdir = mkdtempSync(join(tmpdir(), 'ferry-sip-demo-'));
  s = await startSipFerry({}, { log: { level: 'warn' } });
  browser = await launchChromium();
});

test.after(async () => {
  for (const p of peers.splice(0)) p.kill();
  await browser?.close();
  await s?.f.stop();
  rmSync(workdir, { recursive: true, force: true });
});

test('SIP page: register with digest, call sipp, RTP echoed back, DTMF as INFO, hang up, unregister', async () => {
  const registrarPort = await freePort();
  const registrar = sipp(['-sf', demoScenario('registrar-digest.xml'), '-p', String(registrarPort), '-m', '1'], workdir, 40_000);
  peers.push(registrar);
  const uasPort = await freePort();
  const mediaPort = await freePort();
  const uas = sipp(['-sf', demoScenario('uas-echo-dtmf.xml'), '-p', String(uasPort), '-m', '1', '-rtp_echo', '-mp', String(mediaPort), '-mi', '127.0.0.1'], workdir, 40_000);
  peers.push(uas);

  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const errors = pageErrors(page);
  const query = new URLSearchParams({
    username: `sip:${USER}@127.0.0.1`,
    display: 'Alice (ferry demo)',
    authuser: USER,
    proxy: `sip:127.0.0.1:${registrarPort}`,
    uri: `sip:echo@127.0.0.1:${uasPort}`,
  });
  await page.goto(`${s.f.origin}${s.f.config.demos.path}/sip.html?${query}`);
  await page.waitForSelector('#register:not([disabled])', { timeout: 10_000 });

  // REGISTER, as a person does it: the secret typed, never in the URL.
  await page.fill('#secret', PASSWORD);
  await page.click('#register');
  const registered = await pollUntil(() => readPage(page), (v) => v.registration === 'registered' || v.registration === 'failed', 10_000);
  assert.is(registered.registration, 'registered', `registration: ${JSON.stringify(registered)}; page errors: ${errors.join(' | ')}\n${registrar.output().slice(-1500)}`);
  assert.match(await page.textContent('#reg') ?? '', /registered/);

  // The call: sipp answers PCMU and echoes every RTP packet back.
  await page.click('#callbtn');
  const inCall = await pollUntil(() => readPage(page), (v) => (v.call === 'incall' && v.audioIn > 25) || v.call === 'idle', 15_000);
  assert.is(inCall.call, 'incall', `call state: ${JSON.stringify(inCall)}\n${uas.output().slice(-1500)}`);
  assert.ok(inCall.events.includes('calling') && inCall.events.includes('accepted'), inCall.events.join(','));
  assert.is(inCall.connectionState, 'connected');
  assert.is(inCall.codec, 'audio/PCMU', 'the browser got the codec sipp chose');
  assert.ok(inCall.audioIn > 25, `echoed audio arrives: ${inCall.audioIn} packets`);
  const later = await pollUntil(() => readPage(page), (v) => v.audioIn >= inCall.audioIn + 25, 5_000);
  assert.ok(later.audioIn >= inCall.audioIn + 25, `echoed audio keeps arriving: ${inCall.audioIn} → ${later.audioIn}`);
  assert.match(await page.textContent('#call') ?? '', /in call/);
  // The page's own stats panel shows the inbound stream people see.
  const shown = await pollUntil(
    () => page.evaluate(() => (globalThis as any).ferrySip.stats?.latest ?? {}) as Promise<Record<string, { packets: number; kbps: number }>>,
    (latest) => Object.entries(latest).some(([k, f]) => k.startsWith('in audio') && f.packets > 0 && f.kbps > 0),
    5_000,
  );
  assert.ok(Object.keys(shown).some((k) => k.startsWith('in audio')), `stats panel rows: ${JSON.stringify(shown)}`);

  // DTMF: the dial pad's 5 becomes SIP INFO; the UAS scenario requires it before it takes the BYE.
  await page.click('button[data-digit="5"]');
  const dtmf = await pollUntil(() => readPage(page), (v) => v.events.includes('dtmfsent'), 5_000);
  assert.ok(dtmf.events.includes('dtmfsent'), dtmf.events.join(','));
  assert.is(await page.textContent('#dtmf-sent'), '5');
  // A few seconds of plots for the people looking at the screenshot.
  await pollUntil(() => readPage(page), (v) => v.audioIn >= later.audioIn + 250, 8_000);
  await saveScreenshot(page, 'sip');

  // Hang up: ferry sends BYE, sipp answers 200 and its scenario completes.
  await page.click('#hangup');
  const ended = await pollUntil(() => readPage(page), (v) => v.call === 'idle', 10_000);
  assert.is(ended.call, 'idle');
  assert.is(ended.lastHangup?.code, 200, JSON.stringify(ended.lastHangup));
  await expectSippSuccess(uas, 'UAS: answer, RTP echo, DTMF INFO, BYE');
  const released = await pollUntil(async () => s.f.ferry.leasedPorts(), (n) => n === 0, 5_000);
  assert.is(released, 0, 'RTP leg and PeerConnection ports released after the call');
  assert.is(s.sip.stats().activeCalls, 0);
  assert.is(s.f.ferry.webrtc.count, 0, 'PeerConnection closed with the call');

  // Unregister: REGISTER with expiry 0 reaches the registrar, whose scenario then completes.
  await page.click('#unregister');
  const unreg = await pollUntil(() => readPage(page), (v) => v.registration === 'unregistered', 10_000);
  assert.is(unreg.registration, 'unregistered');
  await expectSippSuccess(registrar, 'registrar: challenge, digest, un-REGISTER');
  assert.equal(unreg.errors, [], JSON.stringify(unreg.errors));

  // Leaving the page ends its Janus session: janus.js sends `destroy` with sendBeacon on beforeunload.
  // (Navigating, not page.close(): headless Chromium drops a beacon sent while its page is closing.)
  await page.goto('about:blank');
  const status = await waitUntilIdle(s.f);
  assert.is(status['sessions'], 0, JSON.stringify(status));
  assert.is(status['peer_connections'], 0, JSON.stringify(status));
  assert.is(status['port_leases'], 0);
  const accounts = await pollUntil(async () => s.sip.stats().accounts, (n) => n === 0, 5_000);
  assert.is(accounts, 0, 'the SIP account and its sockets are closed');
  assert.equal(errors, [], errors.join(' | '));
  await page.close();
});

test('SIP page: as a guest, an offerless incoming call rings, is accepted with our offer, carries echoed RTP, and hangs up', async () => {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const errors = pageErrors(page);
  const uaPort = await openAsGuest(page, 'ferry');
  assert.match(await page.textContent('#reg') ?? '', /guest/);

  // sipp's ACK answer points media at its own RTP echo port.
  const mediaPort = await freePort();
  const caller = sipp(
    ['-sf', pluginScenario('uac-offerless-media.xml'), '-key', 'sink_port', String(mediaPort), '-rtp_echo', '-mp', String(mediaPort), '-mi', '127.0.0.1',
      '-p', String(await freePort()), '-m', '1', `127.0.0.1:${uaPort}`],
    workdir,
    30_000,
  );
  peers.push(caller);
  await page.waitForSelector('#incoming:not([hidden])', { timeout: 10_000 });
  assert.match(await page.textContent('#caller') ?? '', /sip:sipp@127\.0\.0\.1/);
  assert.match(await page.textContent('#incoming-detail') ?? '', /no SDP offer/);
  const ringing = await readPage(page);
  assert.is(ringing.call, 'incoming');

  await page.click('#accept');
  const inCall = await pollUntil(() => readPage(page), (v) => (v.call === 'incall' && v.audioIn > 25) || v.call === 'idle', 15_000);
  assert.is(inCall.call, 'incall', `call state: ${JSON.stringify(inCall)}\n${caller.output().slice(-1500)}`);
  assert.ok(inCall.events.includes('accepting') && inCall.events.includes('accepted'), inCall.events.join(','));
  assert.is(inCall.codec, 'audio/PCMU');
  assert.ok(inCall.audioIn > 25, `echoed audio arrives: ${inCall.audioIn} packets`);

  await page.click('#hangup');
  const ended = await pollUntil(() => readPage(page), (v) => v.call === 'idle', 10_000);
  assert.is(ended.lastHangup?.code, 200, JSON.stringify(ended.lastHangup));
  await expectSippSuccess(caller, 'UAC: offerless INVITE, answer in ACK, BYE from ferry');
  const released = await pollUntil(async () => s.f.ferry.leasedPorts(), (n) => n === 0, 5_000);
  assert.is(released, 0, 'ports released after the call');
  assert.is(s.sip.stats().activeCalls, 0);
  assert.equal(ended.errors, []);

  await page.goto('about:blank');
  const status = await waitUntilIdle(s.f);
  assert.is(status['sessions'], 0, JSON.stringify(status));
  assert.is(status['peer_connections'], 0, JSON.stringify(status));
  const accounts = await pollUntil(async () => s.sip.stats().accounts, (n) => n === 0, 5_000);
  assert.is(accounts, 0, 'the guest account is closed with its handle');
  assert.equal(errors, [], errors.join(' | '));
  await page.close();
});

/** Opens the page as a guest and returns the port of its SIP account (from Admin handle_info). */
async function openAsGuest(page: Page, user: string): Promise<number> {
  await page.goto(`${s.f.origin}${s.f.config.demos.path}/sip.html?guest=1&username=sip:${user}@127.0.0.1&autoregister=1`);
  const guest = await pollUntil(() => readPage(page), (v) => v.registration === 'guest', 10_000);
  assert.is(guest.registration, 'guest', JSON.stringify(guest));
  const ids = await page.evaluate(() => {
    const demo = (globalThis as any).ferrySip;
    return { session: demo.janus.getSessionId() as number, handle: demo.handle.getId() as number };
  });
  const info = await s.f.admin.post(`/${ids.session}/${ids.handle}`, { janus: 'handle_info', admin_secret: s.f.config.auth.admin_secret });
  const port = info['info']['plugin_specific']['sip_udp_port'] as number;
  assert.ok(port > 0, JSON.stringify(info['info']['plugin_specific']));
  return port;
}

test('SIP page: Decline answers 603; an INVITE with an SDP offer is answered by the browser, carries echoed RTP, and hangs up', async () => {
  const page = await browser.newPage();
  const errors = pageErrors(page);
  const uaPort = await openAsGuest(page, 'carol');

  // Decline: the stack tests' scenario fails unless the final answer is exactly 603.
  const declined = sipp(['-sf', stackScenario('uac-offerless-decline.xml'), '-p', String(await freePort()), '-m', '1', `127.0.0.1:${uaPort}`], workdir, 20_000);
  peers.push(declined);
  await page.waitForSelector('#incoming:not([hidden])', { timeout: 10_000 });
  await page.click('#decline');
  await expectSippSuccess(declined, 'UAC: declined with 603');
  const afterDecline = await pollUntil(() => readPage(page), (v) => v.call === 'idle', 5_000);
  assert.is(afterDecline.lastHangup?.code, 603, JSON.stringify(afterDecline.lastHangup));
  assert.ok(afterDecline.events.includes('declining'));

  // An INVITE with an offer: janus.js answers ferry's WebRTC offer, ferry answers sipp in the 200.
  const mediaPort = await freePort();
  const caller = sipp(
    ['-sf', demoScenario('uac-offer.xml'), '-rtp_echo', '-mp', String(mediaPort), '-mi', '127.0.0.1', '-p', String(await freePort()), '-m', '1', `127.0.0.1:${uaPort}`],
    workdir,
    30_000,
  );
  peers.push(caller);
  await page.waitForSelector('#incoming:not([hidden])', { timeout: 10_000 });
  assert.match(await page.textContent('#caller') ?? '', /"Bob" sip:bob@127\.0\.0\.1/);
  assert.match(await page.textContent('#incoming-detail') ?? '', /offers audio/);
  await page.click('#accept');
  const inCall = await pollUntil(() => readPage(page), (v) => (v.call === 'incall' && v.audioIn > 25) || v.call === 'idle', 15_000);
  assert.is(inCall.call, 'incall', `call state: ${JSON.stringify(inCall)}\n${caller.output().slice(-1500)}`);
  assert.is(inCall.codec, 'audio/PCMU');
  assert.ok(inCall.audioIn > 25, `echoed audio arrives: ${inCall.audioIn} packets`);
  assert.ok(inCall.audioOut > 0);

  await page.click('#hangup');
  const ended = await pollUntil(() => readPage(page), (v) => v.call === 'idle', 10_000);
  assert.is(ended.lastHangup?.code, 200, JSON.stringify(ended.lastHangup));
  await expectSippSuccess(caller, 'UAC with offer: answered, BYE from ferry');
  assert.is(await pollUntil(async () => s.f.ferry.leasedPorts(), (n) => n === 0, 5_000), 0, 'ports released after the call');
  assert.equal(ended.errors, []);
  await page.goto('about:blank');
  const status = await waitUntilIdle(s.f);
  assert.is(status['sessions'], 0, JSON.stringify(status));
  assert.is(status['peer_connections'], 0, JSON.stringify(status));
  assert.equal(errors, [], errors.join(' | '));
  await page.close();
});

test.run();
