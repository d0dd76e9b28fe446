// WHIP from Chromium with nothing but fetch and RTCPeerConnection (its fake camera and microphone)
// into the demo room 1234; the VideoRoom demo page (janus.js) in another Chromium context
// subscribes to that publisher like to any other and decodes its video; DELETE ends it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pageErrors, pollUntil, saveScreenshot, useFerryAndChromium } from '../helpers/browser.js';
import { JanusClient } from '../streaming/harness.js';

const env = useFerryAndChromium(test);

test('a fetch-only WHIP publisher in Chromium is played by the janus.js VideoRoom page; DELETE ends it', async () => {
  const whipContext = await env.browser.newContext();
  const whipPage = await whipContext.newPage();
  const whipErrors = pageErrors(whipPage);
  await whipPage.goto(`${env.gw.origin}${env.gw.config.demos.path}/`);
  const location = await whipPage.evaluate(async () => {
    const g = globalThis as any;
    const stream = await g.navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 320, height: 240 } });
    const pc = new g.RTCPeerConnection();
    for (const track of stream.getTracks()) pc.addTransceiver(track, { direction: 'sendonly' });
    await pc.setLocalDescription(await pc.createOffer());
    const r = await fetch('/whip/endpoint/1234?display=chromium-whip', { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: pc.localDescription.sdp });
    if (r.status !== 201) throw new Error(`WHIP POST: ${r.status} ${await r.text()}`);
    await pc.setRemoteDescription({ type: 'answer', sdp: await r.text() });
    (globalThis as any).whipPc = pc;
    return r.headers.get('Location');
  });
  assert.match(String(location), /^\/whip\/resource\//);
  const connected = await pollUntil(() => whipPage.evaluate(() => String((globalThis as any).whipPc.connectionState)), (s) => s === 'connected', 15_000);
  assert.is(connected, 'connected', `WHIP page errors: ${whipErrors.join(' | ')}`);
  const api = await JanusClient.open(env.gw, 'janus.plugin.videoroom');
  const participants = (await api.sync({ request: 'listparticipants', room: 1234 }))['participants'] as Record<string, unknown>[];
  const feed = participants.find((p) => p['display'] === 'chromium-whip');
  assert.ok(feed?.['publisher'] === true, JSON.stringify(participants));

  const viewerContext = await env.browser.newContext({ viewport: { width: 1100, height: 760 } });
  const viewer = await viewerContext.newPage();
  const errors = pageErrors(viewer);
  await viewer.goto(`${env.gw.origin}${env.gw.config.demos.path}/videoroom.html?room=1234&display=viewer&autostart=1`);
  const frames = () =>
    viewer.evaluate(async (feedId: number) => {
      const demo = (globalThis as any).ferryVideoRoom;
      const slot = [...demo.slots.values()].find((s: any) => s.type === 'video' && s.feedId === feedId) as any;
      const pc: any = demo.subscriber?.webrtcStuff?.pc;
      if (!slot || !pc) return 0;
      let n = 0;
      (await pc.getStats()).forEach((s: any) => {
        if (s.type === 'inbound-rtp' && s.kind === 'video' && String(s.mid) === String(slot.mid)) n = s.framesDecoded ?? 0;
      });
      return n;
    }, feed!['id'] as number);
  const decoded = await pollUntil(frames, (n) => n > 20, 30_000);
  assert.ok(decoded > 20, `the janus.js page decodes the WHIP publisher: ${decoded} frames; page errors: ${errors.join(' | ')}`);
  await saveScreenshot(viewer, 'whip-in-videoroom');

  const pcsBefore = env.gw.ferry.webrtc.count;
  const deleted = await whipPage.evaluate(async (url: string) => (await fetch(url, { method: 'DELETE' })).status, location!);
  assert.is(deleted, 200);
  const after = await pollUntil(async () => env.gw.ferry.webrtc.count, (n) => n === pcsBefore - 1, 10_000);
  assert.is(after, pcsBefore - 1, 'the WHIP PeerConnection is gone');
  const left = (await api.sync({ request: 'listparticipants', room: 1234 }))['participants'] as Record<string, unknown>[];
  assert.not.ok(left.some((p) => p['display'] === 'chromium-whip'), 'the publisher left the room');
  assert.equal(env.gw.ferry.gateway.whipWhep?.status(), { whip: 0, whep: 0 });
  await api.close();
  await whipContext.close();
  await viewerContext.close();
});

test.run();
