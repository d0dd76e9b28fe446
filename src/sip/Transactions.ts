/**
 * SIP transactions (RFC 3261 §17), sans-IO: each transaction is given a
 * `transmit` function and a `Clock`, and reports to its transaction user
 * (TU) through callbacks. Each kind is an explicit state table
 * `state × input → (next state, actions)`, interpreted by one small loop, so
 * every transition is visible in one place and testable on a fake clock.
 *
 * The UA core's 2xx-to-INVITE retransmitter (§13.3.1.4) is not here but in
 * InviteOkRetransmitter.ts: a 2xx terminates the INVITE server transaction.
 */
import type { Clock, Timer } from '../time/Clock.js';
import {
  BRANCH_COOKIE, SipHeaders, cseqOf, headerNameAddr, tagOf, topVia,
  type SipRequest, type SipResponse,
} from './SipMessage.js';

/** §17.1.1.1 / Table 4 defaults. */
export interface TimerConfig {
  t1: number;
  t2: number;
  t4: number;
}
export const DEFAULT_TIMERS: TimerConfig = { t1: 500, t2: 4000, t4: 5000 };

type Table<S extends string, I extends string, A extends string> = Record<S, Partial<Record<I, { to: S; do: readonly A[] }>>>;

/** Common machinery: current state, named timers, the table interpreter. */
abstract class TransactionBase<S extends string, I extends string, A extends string> {
  protected timers = new Map<string, Timer>();
  private terminatedReported = false;
  /** Every transition taken, for tests and debugging: `state --input--> next`. */
  readonly history: string[] = [];

  protected constructor(
    protected readonly table: Table<S, I, A>,
    public state: S,
    protected readonly clock: Clock,
    protected readonly config: TimerConfig,
    readonly reliable: boolean,
    private readonly onTerminated: () => void,
  ) {}

  protected abstract perform(action: A, input: I, msg?: SipRequest | SipResponse): void;
  protected abstract readonly terminalState: S;

  /** Feeds one input; inputs the current state does not list are ignored (absorbed). */
  protected input(input: I, msg?: SipRequest | SipResponse): boolean {
    const row = this.table[this.state][input];
    if (!row) return false;
    this.history.push(`${this.state} --${input}--> ${row.to}`);
    this.state = row.to;
    for (const a of row.do) this.perform(a, input, msg);
    if (this.state === this.terminalState) this.terminate();
    return true;
  }

  protected startTimer(name: string, ms: number, input: I): void {
    this.timers.get(name)?.cancel();
    this.timers.set(name, this.clock.setTimeout(() => {
      this.timers.delete(name);
      this.input(input);
    }, ms));
  }

  protected stopTimer(name: string): void {
    this.timers.get(name)?.cancel();
    this.timers.delete(name);
  }

  private terminate(): void {
    for (const t of this.timers.values()) t.cancel();
    this.timers.clear();
    if (!this.terminatedReported) {
      this.terminatedReported = true;
      this.onTerminated();
    }
  }

  /** Transport failure reported by the transport layer (§17.1.4, §17.2.4). */
  abstract transportError(): void;
}

export interface ClientTransactionUser {
  onResponse(res: SipResponse): void;
  /** Timer B/F fired: the TU treats it as a 408 (§8.1.3.1). */
  onTimeout(): void;
  /** §17.1.4: the TU treats it as a 503. */
  onTransportError(): void;
}

/** A TU for requests nothing waits on (BYE, CANCEL): their outcome is dropped. */
export const IGNORE_OUTCOME: ClientTransactionUser = { onResponse: () => {}, onTimeout: () => {}, onTransportError: () => {} };

// ---------------------------------------------------------------- client INVITE (§17.1.1, Figure 5)
export type ClientInviteState = 'calling' | 'proceeding' | 'completed' | 'terminated';
export type ClientInviteInput = 'timerA' | 'timerB' | 'timerD' | 'provisional' | 'success' | 'failure' | 'transportError';
type ClientInviteAction = 'retransmit' | 'stopRetransmit' | 'passUp' | 'sendAck' | 'startD' | 'reportTimeout' | 'reportTransportError';

export const CLIENT_INVITE_TABLE: Table<ClientInviteState, ClientInviteInput, ClientInviteAction> = {
  calling: {
    timerA: { to: 'calling', do: ['retransmit'] },
    timerB: { to: 'terminated', do: ['reportTimeout'] },
    provisional: { to: 'proceeding', do: ['stopRetransmit', 'passUp'] },
    success: { to: 'terminated', do: ['passUp'] },
    failure: { to: 'completed', do: ['stopRetransmit', 'sendAck', 'passUp', 'startD'] },
    transportError: { to: 'terminated', do: ['reportTransportError'] },
  },
  proceeding: {
    provisional: { to: 'proceeding', do: ['passUp'] },
    success: { to: 'terminated', do: ['passUp'] },
    failure: { to: 'completed', do: ['sendAck', 'passUp', 'startD'] },
    transportError: { to: 'terminated', do: ['reportTransportError'] },
  },
  completed: {
    // §17.1.1.2: retransmitted final responses are answered with the same ACK, not passed up.
    failure: { to: 'completed', do: ['sendAck'] },
    timerD: { to: 'terminated', do: [] },
    transportError: { to: 'terminated', do: ['reportTransportError'] },
  },
  terminated: {},
};

export class ClientInviteTransaction extends TransactionBase<ClientInviteState, ClientInviteInput, ClientInviteAction> {
  protected readonly terminalState = 'terminated' as const;
  private intervalA: number;
  private ack?: SipRequest;

  constructor(
    readonly request: SipRequest,
    private readonly transmit: (msg: SipRequest) => void,
    private readonly tu: ClientTransactionUser,
    clock: Clock, config: TimerConfig, reliable: boolean, onTerminated: () => void,
  ) {
    super(CLIENT_INVITE_TABLE, 'calling', clock, config, reliable, onTerminated);
    this.intervalA = config.t1;
    transmit(request);
    if (!reliable) this.startTimer('A', this.intervalA, 'timerA');
    this.startTimer('B', 64 * config.t1, 'timerB');
  }

  receive(res: SipResponse): void {
    this.input(res.status < 200 ? 'provisional' : res.status < 300 ? 'success' : 'failure', res);
  }

  transportError(): void {
    this.input('transportError');
  }

  protected perform(action: ClientInviteAction, _input: ClientInviteInput, msg?: SipRequest | SipResponse): void {
    switch (action) {
      case 'retransmit':
        // §17.1.1.2: INVITE retransmissions double every time; only Timer B bounds them.
        this.transmit(this.request);
        this.intervalA *= 2;
        this.startTimer('A', this.intervalA, 'timerA');
        break;
      case 'stopRetransmit':
        this.stopTimer('A');
        this.stopTimer('B');
        break;
      case 'passUp':
      case 'reportTimeout':
      case 'reportTransportError':
        reportToClientTu(this.tu, action, msg);
        break;
      case 'sendAck':
        if (msg?.kind === 'response') {
          this.ack ??= buildAckForFailure(this.request, msg);
          this.transmit(this.ack);
        }
        break;
      case 'startD':
        // §17.1.1.2: Timer D absorbs retransmitted finals; 0 on reliable transports.
        this.startTimer('D', this.reliable ? 0 : Math.max(32_000, 64 * this.config.t1), 'timerD');
        break;
    }
  }
}

/** What both client transaction kinds hand to their TU the same way (§17.1.1.2, §17.1.2.2, §17.1.4). */
function reportToClientTu(tu: ClientTransactionUser, action: 'passUp' | 'reportTimeout' | 'reportTransportError', msg?: SipRequest | SipResponse): void {
  if (action === 'passUp') {
    if (msg?.kind === 'response') tu.onResponse(msg);
  } else if (action === 'reportTimeout') {
    tu.onTimeout();
  } else {
    tu.onTransportError();
  }
}

/** §17.1.1.3: the ACK for a non-2xx final response, built by the transaction. */
export function buildAckForFailure(invite: SipRequest, res: SipResponse): SipRequest {
  const headers = new SipHeaders();
  const via = invite.headers.getAll('Via')[0];
  if (via !== undefined) headers.add('Via', via);
  for (const name of ['Route', 'Max-Forwards', 'From', 'Call-ID'] as const) {
    for (const v of invite.headers.getAll(name)) headers.add(name, v);
  }
  headers.add('To', res.headers.get('To') ?? invite.headers.get('To') ?? '');
  headers.add('CSeq', `${cseqOf(invite)?.seq ?? 0} ACK`);
  return { kind: 'request', method: 'ACK', uri: invite.uri, headers, body: Buffer.alloc(0) };
}

// ---------------------------------------------------------------- client non-INVITE (§17.1.2, Figure 6)
export type ClientNonInviteState = 'trying' | 'proceeding' | 'completed' | 'terminated';
export type ClientNonInviteInput = 'timerE' | 'timerF' | 'timerK' | 'provisional' | 'final' | 'transportError';
type ClientNonInviteAction = 'retransmit' | 'passUp' | 'startK' | 'reportTimeout' | 'reportTransportError' | 'stopRetransmit';

export const CLIENT_NON_INVITE_TABLE: Table<ClientNonInviteState, ClientNonInviteInput, ClientNonInviteAction> = {
  trying: {
    timerE: { to: 'trying', do: ['retransmit'] },
    timerF: { to: 'terminated', do: ['reportTimeout'] },
    provisional: { to: 'proceeding', do: ['passUp'] },
    final: { to: 'completed', do: ['stopRetransmit', 'passUp', 'startK'] },
    transportError: { to: 'terminated', do: ['reportTransportError'] },
  },
  proceeding: {
    timerE: { to: 'proceeding', do: ['retransmit'] },
    timerF: { to: 'terminated', do: ['reportTimeout'] },
    provisional: { to: 'proceeding', do: ['passUp'] },
    final: { to: 'completed', do: ['stopRetransmit', 'passUp', 'startK'] },
    transportError: { to: 'terminated', do: ['reportTransportError'] },
  },
  completed: {
    // Retransmitted finals are absorbed (listed so the absorption is explicit).
    final: { to: 'completed', do: [] },
    timerK: { to: 'terminated', do: [] },
  },
  terminated: {},
};

export class ClientNonInviteTransaction extends TransactionBase<ClientNonInviteState, ClientNonInviteInput, ClientNonInviteAction> {
  protected readonly terminalState = 'terminated' as const;
  private intervalE: number;

  constructor(
    readonly request: SipRequest,
    private readonly transmit: (msg: SipRequest) => void,
    private readonly tu: ClientTransactionUser,
    clock: Clock, config: TimerConfig, reliable: boolean, onTerminated: () => void,
  ) {
    super(CLIENT_NON_INVITE_TABLE, 'trying', clock, config, reliable, onTerminated);
    this.intervalE = config.t1;
    transmit(request);
    if (!reliable) this.startTimer('E', this.intervalE, 'timerE');
    this.startTimer('F', 64 * config.t1, 'timerF');
  }

  receive(res: SipResponse): void {
    this.input(res.status < 200 ? 'provisional' : 'final', res);
  }

  transportError(): void {
    this.input('transportError');
  }

  protected perform(action: ClientNonInviteAction, _input: ClientNonInviteInput, msg?: SipRequest | SipResponse): void {
    switch (action) {
      case 'retransmit':
        this.transmit(this.request);
        // §17.1.2.2: doubling up to T2 in Trying; in Proceeding always T2.
        this.intervalE = this.state === 'proceeding' ? this.config.t2 : Math.min(2 * this.intervalE, this.config.t2);
        this.startTimer('E', this.intervalE, 'timerE');
        break;
      case 'stopRetransmit':
        this.stopTimer('E');
        this.stopTimer('F');
        break;
      case 'passUp':
      case 'reportTimeout':
      case 'reportTransportError':
        reportToClientTu(this.tu, action, msg);
        break;
      case 'startK':
        this.startTimer('K', this.reliable ? 0 : this.config.t4, 'timerK');
        break;
    }
  }
}

// ---------------------------------------------------------------- server INVITE (§17.2.1, Figure 7)
export interface ServerTransactionUser {
  /** Timer H fired without an ACK (§17.2.1), or the transport failed (§17.2.4). */
  onFailure(reason: 'timeout' | 'transportError'): void;
}

export type ServerInviteState = 'proceeding' | 'completed' | 'confirmed' | 'terminated';
export type ServerInviteInput = 'requestRetransmit' | 'sendProvisional' | 'sendSuccess' | 'sendFailure' | 'ack' | 'timerG' | 'timerH' | 'timerI' | 'transportError';
type ServerInviteAction = 'send' | 'resendLast' | 'startGH' | 'retransmitFinal' | 'stopG' | 'startI' | 'reportTimeout' | 'reportTransportError';

export const SERVER_INVITE_TABLE: Table<ServerInviteState, ServerInviteInput, ServerInviteAction> = {
  proceeding: {
    requestRetransmit: { to: 'proceeding', do: ['resendLast'] },
    sendProvisional: { to: 'proceeding', do: ['send'] },
    // §17.2.1: a 2xx ends the transaction; the UA core retransmits it (§13.3.1.4).
    sendSuccess: { to: 'terminated', do: ['send'] },
    sendFailure: { to: 'completed', do: ['send', 'startGH'] },
    transportError: { to: 'terminated', do: ['reportTransportError'] },
  },
  completed: {
    requestRetransmit: { to: 'completed', do: ['resendLast'] },
    timerG: { to: 'completed', do: ['retransmitFinal'] },
    timerH: { to: 'terminated', do: ['reportTimeout'] },
    // The ACK for a non-2xx final stays inside the transaction (§17.2.1): it is never passed to the TU.
    ack: { to: 'confirmed', do: ['stopG', 'startI'] },
    transportError: { to: 'terminated', do: ['reportTransportError'] },
  },
  confirmed: {
    ack: { to: 'confirmed', do: [] },
    requestRetransmit: { to: 'confirmed', do: [] },
    timerI: { to: 'terminated', do: [] },
  },
  terminated: {},
};

export class ServerInviteTransaction extends TransactionBase<ServerInviteState, ServerInviteInput, ServerInviteAction> {
  protected readonly terminalState = 'terminated' as const;
  private last?: SipResponse;
  private intervalG: number;

  constructor(
    readonly request: SipRequest,
    private readonly transmit: (msg: SipResponse) => void,
    private readonly tu: ServerTransactionUser,
    clock: Clock, config: TimerConfig, reliable: boolean, onTerminated: () => void,
  ) {
    super(SERVER_INVITE_TABLE, 'proceeding', clock, config, reliable, onTerminated);
    this.intervalG = config.t1;
  }

  /** The TU's response; returns false when the state does not allow it (e.g. after a final). */
  respond(res: SipResponse): boolean {
    return this.input(res.status < 200 ? 'sendProvisional' : res.status < 300 ? 'sendSuccess' : 'sendFailure', res);
  }

  /** A retransmitted INVITE (§17.2.1) or the ACK for our non-2xx final. */
  receive(req: SipRequest): void {
    this.input(req.method === 'ACK' ? 'ack' : 'requestRetransmit', req);
  }

  transportError(): void {
    this.input('transportError');
  }

  get lastResponse(): SipResponse | undefined {
    return this.last;
  }

  protected perform(action: ServerInviteAction, _input: ServerInviteInput, msg?: SipRequest | SipResponse): void {
    switch (action) {
      case 'send':
        if (msg?.kind === 'response') {
          this.last = msg;
          this.transmit(msg);
        }
        break;
      case 'resendLast':
        if (this.last) this.transmit(this.last);
        break;
      case 'startGH':
        if (!this.reliable) this.startTimer('G', this.intervalG, 'timerG');
        this.startTimer('H', 64 * this.config.t1, 'timerH');
        break;
      case 'retransmitFinal':
        if (this.last) this.transmit(this.last);
        this.intervalG = Math.min(2 * this.intervalG, this.config.t2);
        this.startTimer('G', this.intervalG, 'timerG');
        break;
      case 'stopG':
        this.stopTimer('G');
        this.stopTimer('H');
        break;
      case 'startI':
        this.startTimer('I', this.reliable ? 0 : this.config.t4, 'timerI');
        break;
      case 'reportTimeout':
        this.tu.onFailure('timeout');
        break;
      case 'reportTransportError':
        this.tu.onFailure('transportError');
        break;
    }
  }
}

// ---------------------------------------------------------------- server non-INVITE (§17.2.2, Figure 8)
export type ServerNonInviteState = 'trying' | 'proceeding' | 'completed' | 'terminated';
export type ServerNonInviteInput = 'requestRetransmit' | 'sendProvisional' | 'sendFinal' | 'timerJ' | 'transportError';
type ServerNonInviteAction = 'send' | 'resendLast' | 'startJ' | 'reportTransportError';

export const SERVER_NON_INVITE_TABLE: Table<ServerNonInviteState, ServerNonInviteInput, ServerNonInviteAction> = {
  trying: {
    // §17.2.2: retransmissions in Trying are discarded (nothing to resend yet).
    requestRetransmit: { to: 'trying', do: [] },
    sendProvisional: { to: 'proceeding', do: ['send'] },
    sendFinal: { to: 'completed', do: ['send', 'startJ'] },
    transportError: { to: 'terminated', do: ['reportTransportError'] },
  },
  proceeding: {
    requestRetransmit: { to: 'proceeding', do: ['resendLast'] },
    sendProvisional: { to: 'proceeding', do: ['send'] },
    sendFinal: { to: 'completed', do: ['send', 'startJ'] },
    transportError: { to: 'terminated', do: ['reportTransportError'] },
  },
  completed: {
    requestRetransmit: { to: 'completed', do: ['resendLast'] },
    timerJ: { to: 'terminated', do: [] },
    transportError: { to: 'terminated', do: [] },
  },
  terminated: {},
};

export class ServerNonInviteTransaction extends TransactionBase<ServerNonInviteState, ServerNonInviteInput, ServerNonInviteAction> {
  protected readonly terminalState = 'terminated' as const;
  private last?: SipResponse;

  constructor(
    readonly request: SipRequest,
    private readonly transmit: (msg: SipResponse) => void,
    private readonly tu: ServerTransactionUser,
    clock: Clock, config: TimerConfig, reliable: boolean, onTerminated: () => void,
  ) {
    super(SERVER_NON_INVITE_TABLE, 'trying', clock, config, reliable, onTerminated);
  }

  respond(res: SipResponse): boolean {
    return this.input(res.status < 200 ? 'sendProvisional' : 'sendFinal', res);
  }

  receive(_req: SipRequest): void {
    this.input('requestRetransmit');
  }

  transportError(): void {
    this.input('transportError');
  }

  get responded(): boolean {
    return this.state === 'completed' || this.state === 'terminated';
  }

  protected perform(action: ServerNonInviteAction, _input: ServerNonInviteInput, msg?: SipRequest | SipResponse): void {
    switch (action) {
      case 'send':
        if (msg?.kind === 'response') {
          this.last = msg;
          this.transmit(msg);
        }
        break;
      case 'resendLast':
        if (this.last) this.transmit(this.last);
        break;
      case 'startJ':
        // §17.2.2: Timer J = 64*T1 on unreliable transports, 0 on reliable ones.
        this.startTimer('J', this.reliable ? 0 : 64 * this.config.t1, 'timerJ');
        break;
      case 'reportTransportError':
        this.tu.onFailure('transportError');
        break;
    }
  }
}

export type ClientTransaction = ClientInviteTransaction | ClientNonInviteTransaction;
export type ServerTransaction = ServerInviteTransaction | ServerNonInviteTransaction;

// ---------------------------------------------------------------- matching (§17.1.3, §17.2.3)
/** §17.1.3: a response matches the client transaction with the same top-Via branch and CSeq method. */
export function clientKeyOf(msg: SipRequest | SipResponse): string | null {
  const branch = topVia(msg)?.params.get('branch');
  const cseq = cseqOf(msg);
  if (!branch || !cseq) return null;
  return `${branch}|${cseq.method}`;
}

/**
 * §17.2.3: branch + sent-by + method, with ACK matching its INVITE. Requests
 * without the magic cookie (RFC 2543 peers) fall back to dialog identifiers.
 */
export function serverKeyOf(req: SipRequest): string | null {
  const via = topVia(req);
  const cseq = cseqOf(req);
  if (!via || !cseq) return null;
  const method = req.method === 'ACK' ? 'INVITE' : req.method;
  const branch = via.params.get('branch');
  const sentBy = `${via.host}:${via.port ?? ''}`;
  if (branch && branch.startsWith(BRANCH_COOKIE)) return `${branch}|${sentBy}|${method}`;
  const fromTag = tagOf(headerNameAddr(req, 'From')) ?? '';
  return `2543|${req.headers.get('Call-ID') ?? ''}|${cseq.seq}|${fromTag}|${sentBy}|${method}|${req.uri}`;
}

/** Holds live transactions and routes incoming messages to them. */
export class TransactionLayer {
  private readonly clients = new Map<string, ClientTransaction>();
  private readonly servers = new Map<string, ServerTransaction>();

  constructor(readonly clock: Clock, readonly config: TimerConfig = DEFAULT_TIMERS) {}

  get clientCount(): number {
    return this.clients.size;
  }

  get serverCount(): number {
    return this.servers.size;
  }

  sendRequest(request: SipRequest, transmit: (m: SipRequest) => void, reliable: boolean, tu: ClientTransactionUser): ClientTransaction {
    const key = clientKeyOf(request) ?? '';
    const done = () => { if (this.clients.get(key) === tx) this.clients.delete(key); };
    let tx: ClientTransaction;
    if (request.method === 'INVITE') tx = new ClientInviteTransaction(request, transmit, tu, this.clock, this.config, reliable, done);
    else tx = new ClientNonInviteTransaction(request, transmit, tu, this.clock, this.config, reliable, done);
    if (tx.state !== 'terminated') this.clients.set(key, tx);
    return tx;
  }

  /** Hands a response to its client transaction; false when none matches (stray, or 2xx retransmission). */
  receiveResponse(res: SipResponse): boolean {
    const key = clientKeyOf(res);
    const tx = key === null ? undefined : this.clients.get(key);
    if (!tx) return false;
    tx.receive(res);
    return true;
  }

  /** Hands a request to an existing server transaction (retransmission, ACK of non-2xx); false when new. */
  receiveRequest(req: SipRequest): boolean {
    const key = serverKeyOf(req);
    const tx = key === null ? undefined : this.servers.get(key);
    if (!tx) return false;
    // An ACK only belongs to an INVITE transaction that sent a non-2xx final (§17.2.3);
    // an ACK for a 2xx has its own branch and never reaches here.
    if (req.method === 'ACK' && !(tx instanceof ServerInviteTransaction)) return false;
    tx.receive(req);
    return true;
  }

  createServer(req: SipRequest, transmit: (m: SipResponse) => void, reliable: boolean, tu: ServerTransactionUser): ServerTransaction {
    const key = serverKeyOf(req) ?? '';
    const done = () => { if (this.servers.get(key) === tx) this.servers.delete(key); };
    const tx: ServerTransaction = req.method === 'INVITE'
      ? new ServerInviteTransaction(req, transmit, tu, this.clock, this.config, reliable, done)
      : new ServerNonInviteTransaction(req, transmit, tu, this.clock, this.config, reliable, done);
    this.servers.set(key, tx);
    return tx;
  }

  /** §9.2: the INVITE server transaction a CANCEL refers to (same branch and sent-by). */
  findInviteForCancel(cancel: SipRequest): ServerInviteTransaction | undefined {
    const key = serverKeyOf({ ...cancel, method: 'INVITE' });
    const tx = key === null ? undefined : this.servers.get(key);
    return tx instanceof ServerInviteTransaction ? tx : undefined;
  }

  /** Transport loss: every transaction sending over it fails (§17.1.4). */
  failAll(filter: (tx: ClientTransaction | ServerTransaction) => boolean): void {
    for (const tx of [...this.clients.values(), ...this.servers.values()]) if (filter(tx)) tx.transportError();
  }
}
