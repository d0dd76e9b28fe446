/**
 * VideoRoom hardening on a whole ferry (createFerry, default plugins): rooms
 * per client and the global max_rooms (433 naming the limit, counted in
 * /metrics; Admin message_plugin exempt), the description length cap (430),
 * and the rooms file written owner-only (0600) even over a world-readable one.
 */
import { mkdtempSync, rmSync, statSync, writeFileSync, chmodSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { JanusWs, type Json } from '../helpers/http.js';
import { ferryStatus, startFerry, type TestFerry } from '../helpers/ferry.js';

const VR = 'janus.plugin.videoroom';

class Client {
  private constructor(readonly ws: JanusWs, readonly session: number, readonly handle: number) {}

  static async open(f: TestFerry, localAddress: string): Promise<Client> {
    const ws = await JanusWs.connect(f.wsUrl, 'janus-protocol', { localAddress });
    const created = await ws.request({ janus: 'create' });
    const session = created['data'].id as number;
    const attached = await ws.request({ janus: 'attach', session_id: session, plugin: VR });
    return new Client(ws, session, attached['data'].id as number);
  }

  async sync(body: Json): Promise<Json> {
    const r = await this.ws.request({ janus: 'message', session_id: this.session, handle_id: this.handle, body });
    assert.is(r['janus'], 'success', JSON.stringify(r));
    return r['plugindata'].data as Json;
  }

  async close(): Promise<void> {
    await this.ws.request({ janus: 'destroy', session_id: this.session });
    await this.ws.close();
  }
}

function refusal(data: Json, code: number, pattern: RegExp): void {
  assert.is(data['videoroom'], 'event', JSON.stringify(data));
  assert.is(data['error_code'], code, JSON.stringify(data));
  assert.match(data['error'], pattern);
}

async function refusals(f: TestFerry, limit: string): Promise<number> {
  const text = await (await fetch(`${new URL(f.admin.base).origin}${f.config.metrics.path}`)).text();
  const m = new RegExp(`^ferry_quota_refusals_total\\{limit="${limit}"\\} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

test('rooms per client, max_rooms, description cap, rooms file 0600', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-room-quota-'));
  const roomsFile = join(dir, 'rooms.json');
  // A rooms file someone left world-readable: ferry's first write replaces it owner-only.
  writeFileSync(roomsFile, '{"rooms":[]}\n');
  chmodSync(roomsFile, 0o644);
  const f = await startFerry({
    quotas: { rooms_per_client: 2, max_rooms: 5 },
    videoroom: { rooms_file: roomsFile, demo_room: false, max_description_length: 40 },
  });
  const a = await Client.open(f, '127.0.0.1');
  const b = await Client.open(f, '127.0.0.2');
  const c = await Client.open(f, '127.0.0.3');
  try {
    // Description cap: at the limit is fine, one more is 430, on create and on edit.
    refusal(await a.sync({ request: 'create', description: 'x'.repeat(41) }), 430, /description/);
    const r1 = await a.sync({ request: 'create', room: 101, permanent: true, description: 'x'.repeat(40), secret: 's3cret', pin: '1234' });
    assert.equal(r1, { videoroom: 'created', room: 101, permanent: true });
    assert.is(statSync(roomsFile).mode & 0o777, 0o600, 'rooms file is owner-only');
    assert.match(readFileSync(roomsFile, 'utf8'), /s3cret/, 'secrets are in the rooms file (hence 0600)');
    refusal(await a.sync({ request: 'edit', room: 101, secret: 's3cret', new_description: 'y'.repeat(41) }), 430, /new_description/);
    assert.is((await a.sync({ request: 'edit', room: 101, secret: 's3cret', new_description: 'short', permanent: true }))['videoroom'], 'edited');
    assert.is(statSync(roomsFile).mode & 0o777, 0o600);

    // Rooms per client: the third room of 127.0.0.1 is refused; 127.0.0.2 has its own two.
    assert.is((await a.sync({ request: 'create', room: 102 }))['videoroom'], 'created');
    refusal(await a.sync({ request: 'create', room: 103 }), 433, /rooms_per_client = 2/);
    assert.is((await a.sync({ request: 'exists', room: 103 }))['exists'], false, 'a refused room does not exist');
    assert.is((await b.sync({ request: 'create', room: 201 }))['videoroom'], 'created');
    assert.is((await b.sync({ request: 'create', room: 202 }))['videoroom'], 'created');
    // Destroying a room gives its slot back to the client that created it.
    assert.is((await a.sync({ request: 'destroy', room: 102 }))['videoroom'], 'destroyed');
    assert.is((await a.sync({ request: 'create', room: 104 }))['videoroom'], 'created');

    // max_rooms over all clients: 101, 104, 201, 202 exist; 127.0.0.3 gets one more, then 433.
    assert.is((await c.sync({ request: 'create', room: 301 }))['videoroom'], 'created');
    refusal(await c.sync({ request: 'create', room: 302 }), 433, /max_rooms = 5/);
    // Admin message_plugin is not a client: exempt.
    const admin = await f.admin.post('', { janus: 'message_plugin', plugin: VR, request: { request: 'create', room: 900 }, admin_secret: f.config.auth.admin_secret });
    assert.is(admin['response']?.videoroom, 'created', JSON.stringify(admin));

    assert.is(await refusals(f, 'rooms_per_client'), 1);
    assert.is(await refusals(f, 'max_rooms'), 1);
    let status = await ferryStatus(f);
    assert.is(status['quotas'].rooms, 5, 'rooms counted per client (the Admin room is not)');

    // Rooms outlive sessions (they are the client's until destroyed); destroying them returns the counts to zero.
    for (const [client, room, secret] of [[a, 101, 's3cret'], [a, 104, undefined], [b, 201, undefined], [b, 202, undefined], [c, 301, undefined]] as const) {
      const d = await client.sync({ request: 'destroy', room, permanent: room === 101, ...(secret ? { secret } : {}) });
      assert.is(d['videoroom'], 'destroyed', JSON.stringify(d));
    }
    status = await ferryStatus(f);
    assert.is(status['quotas'].rooms, 0);
    assert.equal(JSON.parse(readFileSync(roomsFile, 'utf8')), { rooms: [] });
    assert.is(statSync(roomsFile).mode & 0o777, 0o600);
  } finally {
    for (const cl of [a, b, c]) await cl.close().catch(() => undefined);
    await f.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('remote publishers (plain RTP ports) count against the requesting client\'s PeerConnection quota', async () => {
  const f = await startFerry({ quotas: { peer_connections_per_client: 2 }, videoroom: { demo_room: false } });
  const a = await Client.open(f, '127.0.0.1');
  const b = await Client.open(f, '127.0.0.2');
  const AV = [{ type: 'audio', mindex: 0, mid: '0', codec: 'opus' }];
  try {
    assert.is((await a.sync({ request: 'create', room: 7, secret: 'r', publishers: 20 }))['videoroom'], 'created');
    const ids: number[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await a.sync({ request: 'add_remote_publisher', room: 7, secret: 'r', streams: AV });
      if (r['videoroom'] === 'success') ids.push(r['id']);
      else refusal(r, 433, /peer_connections_per_client = 2/);
    }
    assert.is(ids.length, 2);
    assert.is(f.ferry.leasedPorts(), 2, 'no port leased for a refused remote publisher');
    // Another client with the room's secret has its own share.
    assert.is((await b.sync({ request: 'add_remote_publisher', room: 7, secret: 'r', streams: AV }))['videoroom'], 'success');
    // Removing one gives the slot back to the client that added it.
    assert.equal(await a.sync({ request: 'remove_remote_publisher', room: 7, secret: 'r', id: ids[0] }), { videoroom: 'success' });
    assert.is((await a.sync({ request: 'add_remote_publisher', room: 7, secret: 'r', streams: AV }))['videoroom'], 'success');
    assert.is((await ferryStatus(f))['quotas'].peer_connections, 3);
    // Destroying the room closes every leg: the counts return to zero.
    assert.is((await a.sync({ request: 'destroy', room: 7, secret: 'r' }))['videoroom'], 'destroyed');
    const status = await ferryStatus(f);
    assert.is(status['quotas'].peer_connections, 0);
    assert.is(status['port_leases'], 0);
  } finally {
    for (const cl of [a, b]) await cl.close().catch(() => undefined);
    await f.stop();
  }
});

test.run();
