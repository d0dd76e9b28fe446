// Data channels from a real browser: janus.js in headless Chromium against
// ferry. The EchoTest page sends over its data channel (`data()`) and gets
// each message back (`ondata`); two TextRoom pages chat, in public and in a
// whisper; two VideoRoom pages chat over their publishers' data channels.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Page } from 'playwright-core';

import { waitUntilIdle } from '../helpers/ferry.js';
import { pageErrors, pollUntil, saveScreenshot, useFerryAndChromium } from '../helpers/browser.js';

const env = useFerryAndChromium(test);

async function open(path: string): Promise<{ page: Page; errors: string[] }> {
  const context = await env.browser.newContext({ viewport: { width: 1200, height: 800 } });
  const page = await context.newPage();
  const errors = pageErrors(page);
  await page.goto(`${env.gw.origin}${env.gw.config.demos.path}/${path}`);
  return { page, errors };
}

test('EchoTest page: janus.js sends text over its data channel and ondata gets it back', async () => {
  const { page, errors } = await open('echotest.html?autostart=1');
  const opened = await pollUntil(() => page.evaluate(() => !(globalThis as any).document.getElementById('datatext').disabled as boolean), (on) => on, 30_000);
  assert.ok(opened, `the data channel opened; page errors: ${errors.join(' | ')}`);
  const sent = ['hello ferry', 'ünïcødé ✓', 'x'.repeat(20_000)];
  for (const text of sent) {
    await page.fill('#datatext', text);
    await page.click('#datasend');
  }
  const echoed = await pollUntil(() => page.evaluate(() => (globalThis as any).ferryEchoTest.data as string[]), (d) => d.length >= sent.length, 15_000);
  assert.equal(echoed, sent);
  await saveScreenshot(page, 'echotest-data');
  await page.click('#stop');
  const idle = await waitUntilIdle(env.gw);
  await page.context().close();
  assert.is(idle['sessions'], 0);
  assert.is(idle['data_channels'].associations, 0);
});

test('TextRoom pages: two people join room 1234, talk to everyone and whisper; a leave is seen', async () => {
  const alice = await open('textroom.html?autostart=1&username=alice');
  const bob = await open('textroom.html?autostart=1&username=bob');
  const joined = (p: Page) => page(p).then((d) => d.joined);
  const page = (p: Page) => p.evaluate(() => {
    const d = (globalThis as any).ferryTextRoom;
    return { joined: d.joined as boolean, people: [...d.people.keys()] as string[], events: d.events as Record<string, any>[] };
  });
  // What a page that did not join shows: its errors, its Log panel and what the plugin sent it.
  const why = async (p: { page: Page; errors: string[] }) =>
    `${p.errors.join(' | ')} log: ${await p.page.evaluate(() => (globalThis as any).document.getElementById('log').innerText as string)} events: ${JSON.stringify((await page(p.page)).events)}`;
  assert.ok(await pollUntil(() => joined(alice.page), (j) => j, 30_000), `alice joined; ${await why(alice)}`);
  assert.ok(await pollUntil(() => joined(bob.page), (j) => j, 30_000), `bob joined; ${await why(bob)}`);
  assert.ok((await pollUntil(() => page(alice.page), (d) => d.people.includes('bob'), 10_000)).people.includes('bob'), 'alice sees bob join');
  // Public message from alice: both see it.
  await alice.page.fill('#text', 'hi all');
  await alice.page.click('#send');
  for (const who of [alice, bob]) {
    const view = await pollUntil(() => page(who.page), (d) => d.events.some((e) => e['textroom'] === 'message' && e['text'] === 'hi all'), 10_000);
    const m = view.events.find((e) => e['textroom'] === 'message' && e['text'] === 'hi all')!;
    assert.is(m['from'], 'alice');
    assert.is(m['whisper'], undefined);
  }
  // A whisper from bob to alice only.
  await bob.page.selectOption('#to', 'alice');
  await bob.page.fill('#text', 'just you');
  await bob.page.click('#send');
  const whisper = await pollUntil(() => page(alice.page), (d) => d.events.some((e) => e['text'] === 'just you'), 10_000);
  assert.is(whisper.events.find((e) => e['text'] === 'just you')!['whisper'], true);
  await saveScreenshot(alice.page, 'textroom');
  // Bob leaves: alice hears it.
  await bob.page.click('#leave');
  const left = await pollUntil(() => page(alice.page), (d) => d.events.some((e) => e['textroom'] === 'leave' && e['username'] === 'bob'), 10_000);
  assert.not.ok(left.people.includes('bob'));
  await alice.page.click('#leave');
  // The pages end their sessions (janus.js destroy) before they close.
  const idle = await waitUntilIdle(env.gw);
  for (const p of [alice, bob]) await p.page.context().close();
  assert.is(idle['sessions'], 0);
  assert.is(idle['data_channels'].associations, 0);
});

test('VideoRoom pages chat: each publisher\'s message reaches the other page on its subscription', async () => {
  const alice = await open('videoroom.html?room=1234&display=alice&autostart=1');
  const bob = await open('videoroom.html?room=1234&display=bob&autostart=1');
  const view = (p: Page) => p.evaluate(() => {
    const d = (globalThis as any).ferryVideoRoom;
    return { myId: d.myId as number | null, chat: d.chat as { from: number; text: string }[], chatOpen: !(globalThis as any).document.getElementById('chattext').disabled as boolean };
  });
  const a = await pollUntil(() => view(alice.page), (v) => v.myId !== null && v.chatOpen, 30_000);
  const b = await pollUntil(() => view(bob.page), (v) => v.myId !== null && v.chatOpen, 30_000);
  assert.ok(a.chatOpen && b.chatOpen, `both chats open; ${alice.errors.join(' | ')} ${bob.errors.join(' | ')}`);
  // The other's subscription (and its data channel) may come up a little later: send until it arrives.
  const deliver = async (from: Page, to: Page, text: string, fromId: number) => {
    const got = await pollUntil(
      async () => {
        await from.evaluate((t) => (globalThis as any).ferryVideoRoom.sendChat(t), text);
        return view(to);
      },
      (v) => v.chat.some((m) => m.text === text),
      30_000,
      1000,
    );
    const m = got.chat.find((x) => x.text === text);
    assert.ok(m, `"${text}" arrived`);
    assert.is(m!.from, fromId, 'labelled with the sender\'s feed id');
  };
  await deliver(alice.page, bob.page, 'hello bob', a.myId!);
  await deliver(bob.page, alice.page, 'hello alice', b.myId!);
  await saveScreenshot(bob.page, 'videoroom-chat');
  for (const p of [alice, bob]) await p.page.click('#leave');
  const idle = await waitUntilIdle(env.gw);
  for (const p of [alice, bob]) await p.page.context().close();
  assert.is(idle['sessions'], 0);
  assert.is(idle['data_channels'].associations, 0);
});

test.run();
