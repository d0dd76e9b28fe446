// The EchoTest demo page in headless Chromium: janus.js (from the janus-gateway
// package) against ferry on 127.0.0.1; the browser decodes the echoed video.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ferryStatus, waitUntilIdle } from '../helpers/ferry.js';
import { pageErrors, pollUntil, saveScreenshot, useFerryAndChromium } from '../helpers/browser.js';

const env = useFerryAndChromium(test);

interface InboundFigures {
  videoFramesDecoded: number;
  videoPackets: number;
  audioPackets: number;
  connectionState: string;
}

async function echoTestThrough(transport: 'http' | 'ws'): Promise<void> {
  const page = await env.browser.newPage({ viewport: { width: 1280, height: 720 } });
  const errors = pageErrors(page);
  await page.goto(`${env.gw.origin}${env.gw.config.demos.path}/echotest.html?autostart=1&transport=${transport}`);
  const server = await pollUntil(() => page.evaluate(() => String((globalThis as any).ferryEchoTest.janus?.getServer?.() ?? '')), (s) => s !== '', 10_000);
  assert.ok(server.startsWith(transport === 'ws' ? 'ws://127.0.0.1:' : `${env.gw.origin}/janus`), `janus.js talks to ${server}`);
  const read = () =>
    page.evaluate(async (): Promise<InboundFigures> => {
      const pc: any = (globalThis as any).ferryEchoTest?.handle?.webrtcStuff?.pc;
      const out = { videoFramesDecoded: 0, videoPackets: 0, audioPackets: 0, connectionState: pc?.connectionState ?? 'none' };
      if (!pc) return out;
      (await pc.getStats()).forEach((s: any) => {
        if (s.type !== 'inbound-rtp') return;
        if (s.kind === 'video') {
          out.videoFramesDecoded += s.framesDecoded ?? 0;
          out.videoPackets += s.packetsReceived ?? 0;
        } else if (s.kind === 'audio') out.audioPackets += s.packetsReceived ?? 0;
      });
      return out;
    });
  const first = await pollUntil(read, (f) => f.videoFramesDecoded > 10 && f.audioPackets > 10, 30_000);
  assert.ok(first.videoFramesDecoded > 10, `frames decoded ${JSON.stringify(first)}; page errors: ${errors.join(' | ')}`);
  assert.ok(first.audioPackets > 10, `audio packets ${JSON.stringify(first)}`);
  assert.is(first.connectionState, 'connected');
  // Still decoding a moment later: the stream plays, not just a first frame.
  const later = await pollUntil(read, (f) => f.videoFramesDecoded >= first.videoFramesDecoded + 20, 15_000);
  assert.ok(later.videoFramesDecoded >= first.videoFramesDecoded + 20, `frames decoded stalled: ${first.videoFramesDecoded} → ${later.videoFramesDecoded}`);
  assert.ok(later.audioPackets > first.audioPackets, 'audio keeps arriving');
  // The page's own figures (what people see) agree: an inbound video row with decoded frames.
  const shown = await pollUntil(
    () => page.evaluate(() => (globalThis as any).ferryEchoTest.stats?.latest ?? {}) as Promise<Record<string, { kbps: number; framesDecoded?: number }>>,
    (latest) => Object.entries(latest).some(([k, f]) => k.startsWith('in video') && f.kbps > 50 && (f.framesDecoded ?? 0) > 0),
    8_000,
  );
  const shownVideo = Object.entries(shown).find(([k]) => k.startsWith('in video'));
  assert.ok(shownVideo && shownVideo[1].kbps > 50, `the page shows the inbound video rate: ${JSON.stringify(shown)}`);
  // ferry's transport-cc feedback reaches Chrome's bandwidth estimator: without any, Chrome
  // keeps its start estimate of exactly 300 kbit/s (measured); with it the estimate moves.
  const estimate = await pollUntil(
    () => page.evaluate(async () => {
      let bps = 0;
      (await (globalThis as any).ferryEchoTest.handle.webrtcStuff.pc.getStats()).forEach((s: any) => {
        if (s.type === 'candidate-pair' && s.nominated && s.availableOutgoingBitrate) bps = s.availableOutgoingBitrate;
      });
      return bps;
    }),
    (bps) => bps > 0 && bps !== 300_000,
    20_000,
  );
  assert.ok(estimate > 0 && estimate !== 300_000, `Chrome's send estimate ${estimate} bit/s moved off its start value`);
  const feedback = env.gw.ferry.engine.stats().endpoints.reduce((n, e) => n + e.transportFeedbackSent, 0);
  assert.ok(feedback > 0, 'the engine sent transport-cc feedback');
  if (transport === 'http') await saveScreenshot(page, 'echotest');

  // ICE restart (RFC 8445 §9) from the page: Chrome offers new credentials, ferry answers with
  // its own; a new pair is checked and selected, DTLS goes on, and video keeps decoding.
  const transportState = () =>
    page.evaluate(async () => {
      const pc: any = (globalThis as any).ferryEchoTest.handle.webrtcStuff.pc;
      let frames = 0;
      let ufrag = '';
      let dtls = '';
      (await pc.getStats()).forEach((s: any) => {
        if (s.type === 'inbound-rtp' && s.kind === 'video') frames = s.framesDecoded ?? 0;
        if (s.type === 'transport') {
          ufrag = s.iceLocalUsernameFragment ?? '';
          dtls = s.dtlsState ?? '';
        }
      });
      return { frames, ufrag, dtls, ice: String(pc.iceConnectionState) };
    });
  const beforeRestart = await transportState();
  await page.evaluate(async () => {
    const demo = (globalThis as any).ferryEchoTest;
    const pc = demo.handle.webrtcStuff.pc;
    const offer = await pc.createOffer({ iceRestart: true });
    await pc.setLocalDescription(offer);
    demo.handle.send({ message: { audio: true, video: true }, jsep: { type: offer.type, sdp: offer.sdp } });
  });
  const afterRestart = await pollUntil(
    transportState,
    (t) => t.ufrag !== beforeRestart.ufrag && t.ice === 'connected' && t.frames >= beforeRestart.frames + 30,
    20_000,
  );
  assert.is.not(afterRestart.ufrag, beforeRestart.ufrag, 'Chrome restarted ICE');
  assert.is(afterRestart.dtls, 'connected', 'the same DTLS session');
  assert.ok(afterRestart.frames >= beforeRestart.frames + 30, `video keeps decoding: ${JSON.stringify([beforeRestart, afterRestart])}`);

  // Ferry's side: one session, one PeerConnection; after Stop, none and no leases.
  const before = await ferryStatus(env.gw);
  assert.is(before['sessions'], 1, JSON.stringify(before));
  assert.is(before['peer_connections'], 1, JSON.stringify(before));
  await page.click('#stop');
  const after = await waitUntilIdle(env.gw);
  assert.is(after['sessions'], 0, JSON.stringify(after));
  assert.is(after['peer_connections'], 0, JSON.stringify(after));
  assert.equal(env.gw.ferry.leasedPorts(), 0);
  await page.close();
}

test('the index page links every demo', async () => {
  const page = await env.browser.newPage({ viewport: { width: 1100, height: 420 } });
  await page.goto(`${env.gw.origin}/`);
  const links = await page.locator('main a.panel').evaluateAll((as) => as.map((a: any) => String(a.getAttribute('href'))));
  assert.equal(links, ['echotest.html', 'videoroom.html', 'streaming.html', 'textroom.html', 'sip.html', 'admin.html']);
  await saveScreenshot(page, 'index');
  await page.close();
});

test('EchoTest page over HTTP long polls: the echoed video is decoded and audio arrives', () => echoTestThrough('http'));
test('EchoTest page over WebSocket: the echoed video is decoded and audio arrives', () => echoTestThrough('ws'));

test.run();
