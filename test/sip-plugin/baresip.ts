// baresip 1.0 (Debian package `baresip`) as a headless SIP phone for the SIP-plugin tests:
// a config directory made per test (no audio device: a 440 Hz sine from `ausine` as the
// microphone, `aubridge` as a loudspeaker that plays nowhere), its SIP socket, RTP ports and
// ctrl_tcp control socket on 127.0.0.1, started and killed by the test. Commands and events
// go over ctrl_tcp (JSON in netstrings). What it received is read from its status line
// (`audio=<tx>/<rx> (bit/s)`), what it heard as DTMF from CALL_DTMF_START events.
import { execFileSync } from 'node:child_process';
import { connect, createServer, type Socket } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { freePort, requireBinary, spawnPeer, until, withTimeout, type Peer } from '../sip/helpers.js';

export interface BaresipEvent {
  type: string;
  param?: string;
  peeruri?: string;
  id?: string;
  [key: string]: unknown;
}

export interface BaresipOptions {
  user?: string;
  /** Account parameters after the AOR, e.g. `mediaenc=srtp-mand;answermode=auto`. */
  accountParams?: string;
  /** Extra config lines. */
  config?: string[];
  /** Transport of baresip's own SIP socket ('udp' default, or 'tls' with `tls` files). */
  transport?: 'udp' | 'tcp' | 'tls';
  /** TLS: baresip's certificate (cert+key PEM in one file) and the CA file it trusts; it listens on sipPort + 1. */
  tls?: { certificate: string; cafile: string };
  /** Account parameters replacing the default `regint=0` (e.g. a registration through a proxy). */
  registration?: string;
  /** The account's AOR (default sip:<user>@127.0.0.1). */
  aor?: string;
  limitMs?: number;
}

export class Baresip {
  readonly events: BaresipEvent[] = [];
  private buffer = '';
  private token = 0;
  private readonly waiting = new Map<string, (r: { ok: boolean; data: string }) => void>();

  private constructor(
    readonly peer: Peer,
    private readonly ctrl: Socket,
    readonly dir: string,
    readonly user: string,
    readonly sipPort: number,
    /** baresip's TLS listener (its SIP port + 1), when it has a certificate. */
    readonly tlsPort: number | undefined,
  ) {
    ctrl.on('data', (d) => this.onData(d.toString('utf8')));
  }

  get uri(): string {
    return `sip:${this.user}@127.0.0.1:${this.sipPort}`;
  }

  static async start(options: BaresipOptions = {}): Promise<Baresip> {
    requireBinary('baresip');
    const dir = mkdtempSync(join(tmpdir(), 'ferry-baresip-'));
    // TLS listens on the SIP port + 1: both must be free.
    const sipPort = options.tls ? await freePortPair() : await freePort();
    const ctrlPort = await freePort();
    const rtp = await freePort();
    const user = options.user ?? 'bob';
    const transport = options.transport ?? 'udp';
    writeFileSync(join(dir, 'config'), [
      'poll_method epoll',
      `sip_listen 127.0.0.1:${sipPort}`,
      `sip_trans_def ${transport}`,
      ...(options.tls ? [`sip_certificate ${options.tls.certificate}`, `sip_cafile ${options.tls.cafile}`] : []),
      'net_interface 127.0.0.1',
      // ausine makes 48 kHz stereo only; baresip resamples to the codec's 8 kHz.
      'audio_source ausine,440',
      'audio_player aubridge,nowhere',
      'audio_alert aubridge,nowhere',
      'ausrc_srate 48000',
      'ausrc_channels 2',
      'auplay_srate 48000',
      'auplay_channels 1',
      `rtp_ports ${rtp}-${rtp + 9}`,
      'module_path /usr/lib/baresip/modules',
      'module g711.so',
      'module ausine.so',
      'module aubridge.so',
      'module srtp.so',
      'module_app account.so',
      'module_app menu.so',
      'module_app ctrl_tcp.so',
      `ctrl_tcp_listen 127.0.0.1:${ctrlPort}`,
      ...(options.config ?? []),
      '',
    ].join('\n'));
    const transportParam = transport === 'udp' ? '' : `;transport=${transport}`;
    const aor = options.aor ?? `sip:${user}@127.0.0.1`;
    writeFileSync(join(dir, 'accounts'), `<${aor}${transportParam}>;${options.registration ?? 'regint=0'};audio_codecs=PCMU${options.accountParams ? `;${options.accountParams}` : ''}\n`);
    const limitMs = options.limitMs ?? 60_000;
    const peer = spawnPeer(requireBinary('baresip'), ['-f', dir, ...(process.env['FERRY_BARESIP_VERBOSE'] ? ['-v'] : []), '-t', String(Math.floor(limitMs / 1000))], limitMs, dir);
    try {
      await until(() => peer.output().includes('baresip is ready') || peer.child.exitCode !== null, 8000, `baresip ready\n${peer.output()}`);
      if (peer.child.exitCode !== null) throw new Error(`baresip exited: ${peer.output()}`);
      const ctrl = await new Promise<Socket>((resolve, reject) => {
        const s = connect(ctrlPort, '127.0.0.1', () => resolve(s));
        s.once('error', reject);
      });
      return new Baresip(peer, ctrl, dir, user, sipPort, options.tls ? sipPort + 1 : undefined);
    } catch (err) {
      peer.kill();
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  private onData(text: string): void {
    this.buffer += text;
    // Netstrings: <length>:<payload>, (bounded: a broken stream stops the parse).
    for (let guard = 0; guard < 1000; guard++) {
      const colon = this.buffer.indexOf(':');
      if (colon <= 0) return;
      const length = Number(this.buffer.slice(0, colon));
      if (!Number.isInteger(length) || this.buffer.length < colon + 1 + length + 1) return;
      const payload = this.buffer.slice(colon + 1, colon + 1 + length);
      this.buffer = this.buffer.slice(colon + 1 + length + 1);
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(payload) as Record<string, unknown>;
      } catch {
        continue;
      }
      if (msg['event'] === true) this.events.push(msg as BaresipEvent);
      else if (msg['response'] === true && typeof msg['token'] === 'string') {
        this.waiting.get(msg['token'])?.({ ok: msg['ok'] === true, data: String(msg['data'] ?? '') });
        this.waiting.delete(msg['token']);
      }
    }
  }

  /** Runs a baresip command (menu's long commands: dial, accept, hangup, sndcode …). */
  command(command: string, params = ''): Promise<{ ok: boolean; data: string }> {
    const token = `t${++this.token}`;
    const json = JSON.stringify({ command, params, token });
    this.ctrl.write(`${Buffer.byteLength(json)}:${json},`);
    return withTimeout(new Promise((resolve) => this.waiting.set(token, resolve)), 5000, `baresip ${command}`);
  }

  /** The next event of `type` (from the start, events already seen included), within `ms`. */
  async event(type: string, ms = 10_000, from = 0): Promise<BaresipEvent> {
    let found: BaresipEvent | undefined;
    await until(() => (found = this.events.slice(from).find((e) => e.type === type)) !== undefined, ms, `baresip event ${type}\n${this.peer.output().slice(-2000)}`);
    return found!;
  }

  /** Resolves once its account is registered (it may register before ctrl_tcp is connected: its log says so too). */
  async registered(ms = 15_000): Promise<void> {
    await until(() => this.events.some((e) => e.type === 'REGISTER_OK') || /\} 200 OK .*\[\d+ bindings?\]/.test(this.peer.output()), ms, `baresip registered\n${this.peer.output().slice(-2000)}`);
  }

  /** Digits baresip heard (CALL_DTMF_START), in order. */
  dtmfHeard(): string {
    return this.events.filter((e) => e.type === 'CALL_DTMF_START').map((e) => e.param ?? '').join('');
  }

  /** The receive bitrate of baresip's last status line (`audio=<tx>/<rx> (bit/s)`), 0 before any. */
  rxBitrate(): number {
    const all = [...this.peer.output().matchAll(/audio=(\d+)\/(\d+) \(bit\/s\)/g)];
    return all.length ? Number(all[all.length - 1]![2]) : 0;
  }

  txBitrate(): number {
    const all = [...this.peer.output().matchAll(/audio=(\d+)\/(\d+) \(bit\/s\)/g)];
    return all.length ? Number(all[all.length - 1]![1]) : 0;
  }

  async stop(): Promise<void> {
    this.ctrl.destroy();
    this.peer.kill('SIGTERM');
    await withTimeout(this.peer.exited, 3000, 'baresip exit').catch(() => this.peer.kill('SIGKILL'));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A free TCP port whose next port is free too (baresip's SIP and TLS listeners). */
async function freePortPair(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await freePort();
    const free = await new Promise<boolean>((resolve) => {
      const srv = createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port + 1, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error('no free port pair');
}

/**
 * A self-signed certificate for 127.0.0.1 (subjectAltName IP, so hostname checks pass), made by
 * openssl in `dir`: cert.pem, key.pem, and agent.pem (both, as baresip and Janus want them).
 */
export function makeCertificate(dir: string): { cert: string; key: string; agent: string } {
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync(requireBinary('openssl'), [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert,
    '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
  ], { stdio: 'ignore' });
  const agent = join(dir, 'agent.pem');
  writeFileSync(agent, Buffer.concat([readFileSync(cert), readFileSync(key)]));
  return { cert, key, agent };
}

/** Ports baresip may use, for tests that pick their own. */
export { freePort };
