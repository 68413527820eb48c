// The connection pool (postgres.js + drizzle) and its circuit breaker.
//
// postgres.js on its own does not fail fast when the database goes away: a query waits for a
// connection, a connection waits for its reconnect backoff (shared by the pool, growing to 20 s),
// and a connection whose peer went silent (a black-holed network path) waits forever. So every
// connection of the pool is opened through our own socket factory, which lets this module
//
//   - fail a new connection at once while the database is known to be unreachable (the breaker is
//     open), so a request that needs the database gets its 503 in milliseconds, not after a backoff;
//   - keep the reconnect backoff small and bounded (none while open: nothing goes on the network);
//   - see every socket of the pool: bytes received prove the database alive; a connection error is
//     a reason to look; tripping the breaker destroys them all, so queries stuck on a silent
//     connection (and their transactions, which PostgreSQL then rolls back) fail at once;
//   - bound the TCP connect and the startup handshake (DB_CONNECT_TIMEOUT_MS) and every statement
//     on the server (statement_timeout, idle_in_transaction_session_timeout).
//
// The breaker's authority is a probe: `select 1` on a dedicated connection, answered within
// DB_HEALTH_TIMEOUT_MS. A probe runs when something looks wrong (a connection error, a request or
// query waiting longer than half the health timeout, /ready) and, while the breaker is open, every
// DB_HEALTH_INTERVAL_MS until the database answers again. A probe that fails trips the breaker; a
// probe that times out trips it only when no connection received a byte meanwhile (a busy database
// is slow, not gone).
//
// Alive but waiting, or silent? Pool connections are no evidence either way: a query waiting on a
// row lock (fifty logins of one address queued on its login_attempts row) receives nothing while
// PostgreSQL is perfectly alive, so under lock contention the probe is the only witness, and a
// probe that misses its deadline for a reason other than the database must not read as a black
// hole. The rule (probe() and probeDeadline() below):
//   1. The probe takes no lock (`select 1`) and runs on its own connection, which is kept open
//      (warmed by the first pool connection, no idle timeout): a probe is one round trip on an
//      established session, not a fork and an authentication on a loaded server.
//   2. Its budget is spent only while this process can run: the deadline advances in 25 ms ticks,
//      each counting at most two ticks, so time in which the event loop was starved (CPU load, a
//      long synchronous task) is not held against the database.
//   3. It is judged only after the event loop has polled its sockets once more (setImmediate after
//      the deadline): an answer, or any byte on any connection, that arrived in time is read before
//      the verdict, not after it.
//   4. Evidence of life is any byte from the server on any connection since the probe began.
// So the breaker trips only when PostgreSQL stayed silent on an established connection that waits
// on nothing, for DB_HEALTH_TIMEOUT_MS of time in which we were able to listen. A black-holed path
// meets that (the outage test: tripped within the budget); a live server under lock contention does
// not (test/db/breaker.test.ts). A server that cannot answer `select 1` on an open session within
// 600 ms of our attention is, for a service that promises an answer within 2 s, unavailable: the
// breaker then answers 503 at once instead of letting requests hang, and closes again within
// DB_HEALTH_INTERVAL_MS of the next answer.
import net from 'node:net';
import { AsyncLocalStorage } from 'node:async_hooks';
import { Duplex } from 'node:stream';
import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import path from 'node:path';
import postgres from 'postgres';
import { drizzle, type PostgresJsDatabase } from 'drizzle-orm/postgres-js';
import * as schema from './schema/index.js';

export type Database = PostgresJsDatabase<typeof schema>;
export type Sql = postgres.Sql;

export interface DbTimeouts {
  /** TCP connect plus the startup handshake, ms */
  connectTimeoutMs: number;
  /** server-side statement_timeout (and 2× as idle_in_transaction_session_timeout), ms; 0 = none */
  statementTimeoutMs: number;
  /** a probe must answer within this, ms; a request or query waiting half of it starts a probe */
  healthTimeoutMs: number;
  /** probe period while the breaker is open, ms */
  healthIntervalMs: number;
}

/** Production defaults (config.ts has the same values under DB_*). */
export const DEFAULT_DB_TIMEOUTS: DbTimeouts = { connectTimeoutMs: 2000, statementTimeoutMs: 5000, healthTimeoutMs: 600, healthIntervalMs: 250 };

/** The error every query gets while the breaker is open (errors.ts maps it to 503). */
export class DatabaseUnavailableError extends Error {
  readonly code = 'DATABASE_UNAVAILABLE';
  constructor(message = 'the database is unreachable') {
    super(message);
    this.name = 'DatabaseUnavailableError';
  }
}

export interface DbHealthEvent { state: 'up' | 'down'; at: number; reason: string }
/** Every probe's verdict: up (answered), busy (missed its deadline, but bytes arrived: slow, not gone), down. */
export interface DbProbeEvent { reason: string; outcome: 'up' | 'busy' | 'down'; ms: number; code?: string }

/**
 * The breaker of one pool. `up` is what requests rely on; `down` answers them at once. Events:
 * 'down' and 'up' with a DbHealthEvent; 'probe' with a DbProbeEvent.
 */
export interface DbHealth extends EventEmitter {
  readonly up: boolean;
  /** seconds a client should wait before retrying (Retry-After of a 503) */
  readonly retryAfterSeconds: number;
  /** something looks wrong: probe soon (at most one probe at a time) */
  suspect(reason: string): void;
  /** runs a probe now (or joins the one running); true when the database answered */
  check(): Promise<boolean>;
  /** resolves when up, or false after `ms` */
  waitUp(ms: number): Promise<boolean>;
  /** requests in flight and when they started (the HTTP layer reports them) */
  requestStarted(): () => void;
  /** how many reported requests have not ended */
  readonly requestsInFlight: number;
}

type SocketOptions = { host: string[]; port: number[]; path?: string | false };

/**
 * A socket that is already dead: postgres.js sees `err` as with a refused connect. It dies once
 * postgres.js has flushed its startup message into it: dying with that message still buffered
 * would leave postgres.js's write state behind, and the connection's next (real) socket would never
 * send its startup message.
 */
class DeadSocket extends Duplex {
  private readonly fallback: NodeJS.Timeout;
  constructor(private readonly err: Error) {
    super();
    this.fallback = setTimeout(() => this.destroy(err), 50);
  }
  override _read() {}
  override _write(_chunk: unknown, _enc: unknown, cb: () => void) {
    cb();
    clearTimeout(this.fallback);
    setImmediate(() => this.destroy(this.err));
  }
  setKeepAlive() { return this; }
  setNoDelay() { return this; }
  get readyState() { return 'closed'; }
}

/** A TCP connection within `timeoutMs` (the probe's: a starvation-proof probeDeadline), or a DeadSocket. */
function connectSocket(o: SocketOptions, timeoutMs: number, starvationProof = false): Promise<net.Socket | DeadSocket> {
  return new Promise((resolve) => {
    const socket = o.path ? net.connect(o.path) : net.connect({ host: o.host[0] ?? 'localhost', port: o.port[0] ?? 5432 });
    const expire = () => {
      socket.destroy();
      resolve(new DeadSocket(Object.assign(new Error(`connect timeout after ${timeoutMs} ms`), { code: 'CONNECT_TIMEOUT' })));
    };
    let stop: () => void;
    if (starvationProof) {
      const deadline = probeDeadline(timeoutMs);
      void deadline.timeout.then(expire);
      stop = deadline.cancel;
    } else {
      const timer = setTimeout(expire, timeoutMs);
      stop = () => clearTimeout(timer);
    }
    socket.once('connect', () => {
      stop();
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (err) => {
      stop();
      resolve(new DeadSocket(err));
    });
  });
}

class Breaker extends EventEmitter implements DbHealth {
  up = true;
  private readonly waiting = new Map<net.Socket, number>();
  private readonly fresh = new Map<net.Socket, number>();
  private staleCheck: Promise<void> | null = null;
  private lastReadAt = 0;
  private probing: Promise<boolean> | null = null;
  private lastProbeAt = 0;
  private recovery: NodeJS.Timeout | undefined;
  private readonly watchdog: NodeJS.Timeout;
  private readonly requests = new Set<number>();
  private requestSeq = 0;
  private readonly requestStarts = new Map<number, number>();
  private probeSql: Sql | undefined;
  private readonly probeSockets = new Set<net.Socket>();
  private warmed = false;
  private closed = false;

  constructor(private readonly url: string, private readonly t: DbTimeouts) {
    super();
    // Requests waiting longer than half the health timeout: look at the database.
    this.watchdog = setInterval(() => {
      if (!this.up) return;
      const now = Date.now();
      for (const since of this.fresh.values()) {
        // well past a healthy startup, before the connect timeout fails the request
        if (now - since > Math.max(this.t.healthTimeoutMs, 0.75 * this.t.connectTimeoutMs)) {
          this.checkStale();
          break;
        }
      }
      if (!this.requestStarts.size && !this.waiting.size) return;
      for (const started of [...this.requestStarts.values(), ...this.waiting.values()]) {
        if (now - started > this.t.healthTimeoutMs / 2) {
          this.suspect('a request or query has been waiting on the database');
          break;
        }
      }
    }, 100);
    this.watchdog.unref();
  }

  get retryAfterSeconds() {
    return Math.max(1, Math.ceil((this.t.healthIntervalMs + this.t.healthTimeoutMs) / 1000));
  }

  get requestsInFlight() {
    return this.requestStarts.size;
  }

  requestStarted(): () => void {
    const id = ++this.requestSeq;
    this.requests.add(id);
    this.requestStarts.set(id, Date.now());
    return () => {
      this.requests.delete(id);
      this.requestStarts.delete(id);
    };
  }

  /** The socket factory of a pool (and of postgres.js's LISTEN connection, which shares the options). */
  poolSocket(poolOptions: () => object | undefined, sockets: Set<net.Socket>) {
    return async (o: SocketOptions): Promise<net.Socket | DeadSocket> => {
      if (!this.up) {
        // The pool fails at once: a request is waiting. Any other client of these options (the
        // LISTEN connection) waits for the recovery instead of spinning through reconnects.
        if (o === poolOptions() || !(await this.waitUp(5000))) return new DeadSocket(new DatabaseUnavailableError());
      }
      const socket = await connectSocket(o, this.t.connectTimeoutMs);
      if (socket instanceof net.Socket) {
        this.track(socket, sockets, true);
        this.warmProbe();
      } else this.suspect('a connection could not be opened');
      return socket;
    };
  }

  private track(socket: net.Socket, set: Set<net.Socket>, pool: boolean) {
    set.add(socket);
    // The peer closed the connection (FIN: a restart, a proxy going away). Left alone, the socket
    // closes "without error" and postgres.js then fails the queries in flight after it has dropped
    // the socket: a transaction's ROLLBACK that follows is written to a null socket and the process
    // dies (TypeError in nextWrite). As an error, the queries fail while the socket still exists.
    socket.on('end', () => socket.destroy(Object.assign(new Error('the database closed the connection'), { code: 'CONNECTION_CLOSED' })));
    if (pool) {
      // A connection that never hears back from a database that answers the probe is broken on
      // our side: postgres.js, when a socket closes while it still has a write queued, keeps that
      // write and a stale timer, and the connection never sends a startup message again (every
      // later use is a CONNECT_TIMEOUT). The pool is then replaced (event 'stale').
      this.fresh.set(socket, Date.now());
      socket.on('data', () => { this.fresh.delete(socket); });
      socket.on('close', () => {
        if (this.fresh.delete(socket)) this.checkStale();
      });
      // waiting: bytes went out and nothing came back yet (plain TCP; a TLS socket writes below
      // this layer, and the request watchdog covers it)
      const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
      socket.write = ((...args: unknown[]) => {
        if (!this.waiting.has(socket)) this.waiting.set(socket, Date.now());
        return write(...args);
      }) as typeof socket.write;
      socket.on('data', () => { this.waiting.delete(socket); });
    }
    socket.on('data', () => { this.lastReadAt = Date.now(); });
    socket.on('error', () => { if (pool) this.suspect('a connection failed'); });
    socket.on('close', (hadError: boolean) => {
      set.delete(socket);
      this.waiting.delete(socket);
      if (hadError && pool) this.suspect('a connection closed with an error');
    });
  }

  suspect(reason: string) {
    if (this.closed || !this.up || this.probing) return;
    if (Date.now() - this.lastProbeAt < this.t.healthTimeoutMs / 2) return;
    void this.probe(reason);
  }

  /** A connection got no answer: if the database answers the probe, the pool is at fault. */
  private checkStale() {
    if (this.closed || !this.up || this.staleCheck) return;
    this.staleCheck = this.check().then((up) => {
      if (up && this.up) {
        this.fresh.clear();
        this.emit('stale');
      }
    }).finally(() => { this.staleCheck = null; });
  }

  check(): Promise<boolean> {
    return this.probing ?? this.probe('readiness check');
  }

  waitUp(ms: number): Promise<boolean> {
    if (this.up) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.off('up', onUp); resolve(false); }, ms);
      timer.unref();
      const onUp = () => { clearTimeout(timer); resolve(true); };
      this.once('up', onUp);
    });
  }

  private probeClient(): Sql {
    if (!this.probeSql) {
      this.probeSql = postgres(this.url, {
        max: 1,
        onnotice: () => undefined,
        fetch_types: false,
        // kept open: a probe is one round trip on an established session (rule 1 above)
        idle_timeout: 0,
        max_lifetime: null,
        // The probe's own deadline (probeDeadline: starvation-proof) decides. postgres.js's timer for
        // the startup handshake is a plain one, which a starved event loop fires first: it only
        // bounds the attempt. The TCP connect is bounded by a starvation-proof deadline too.
        connect_timeout: this.t.connectTimeoutMs / 1000,
        backoff: () => 0,
        connection: { application_name: 'county-services-probe' },
        socket: async (o: SocketOptions) => {
          const s = await connectSocket(o, this.t.healthTimeoutMs, true);
          if (s instanceof net.Socket) this.track(s, this.probeSockets, false);
          return s;
        },
      } as postgres.Options<Record<string, never>>);
    }
    return this.probeSql;
  }

  private retireProbeClient() {
    const old = this.probeSql;
    this.probeSql = undefined;
    const sockets = [...this.probeSockets];
    this.probeSockets.clear();
    void old?.end({ timeout: 0 }).catch(() => undefined);
    for (const s of sockets) s.destroy(new DatabaseUnavailableError());
  }

  /** Opens the probe's connection ahead of the first probe (rule 1), once, while nothing is wrong. */
  private warmProbe() {
    if (this.warmed || this.closed || this.probeSockets.size) return;
    this.warmed = true;
    this.probeClient()`select 1`.catch(() => undefined);
  }

  private probe(reason: string): Promise<boolean> {
    const started = Date.now();
    this.lastProbeAt = started;
    const run = (async () => {
      const deadline = probeDeadline(this.t.healthTimeoutMs);
      let outcome: 'ok' | 'timeout' | Error;
      try {
        const query = this.probeClient()`select 1`.then(() => 'ok' as const, (err: Error) => err);
        outcome = await Promise.race([query, deadline.timeout]);
      } finally {
        deadline.cancel();
      }
      const verdict = outcome === 'ok' ? 'up' : outcome === 'timeout' && this.up && this.lastReadAt >= started ? 'busy' : 'down';
      this.emit('probe', { reason, outcome: verdict, ms: Date.now() - started, ...(outcome instanceof Error ? { code: codeOf(outcome) } : {}) } satisfies DbProbeEvent);
      if (verdict === 'up') {
        this.markUp();
        return true;
      }
      // The probe's connection may be the silent one, or left half-reset by postgres.js (a socket
      // closed with a write queued never sends a startup message again; see track()): the next
      // probe runs on a new client, so a wedged one cannot keep the breaker open for good.
      this.retireProbeClient();
      if (verdict === 'busy') return true; // bytes arrived: slow, not gone
      this.markDown(`${reason}; probe ${outcome === 'timeout' ? `timed out after ${this.t.healthTimeoutMs} ms` : `failed (${codeOf(outcome as Error)})`}`);
      return false;
    })().finally(() => { this.probing = null; });
    this.probing = run;
    return run;
  }

  private markDown(reason: string) {
    if (this.closed) return;
    if (this.up) {
      this.up = false;
      this.waiting.clear();
      this.fresh.clear();
      // connect() retires the pool on 'down': everything in flight fails now
      this.emit('down', { state: 'down', at: Date.now(), reason } satisfies DbHealthEvent);
    }
    clearTimeout(this.recovery);
    this.recovery = setTimeout(() => { if (!this.closed) void this.probe('recovery'); }, this.t.healthIntervalMs);
    this.recovery.unref();
  }

  private markUp() {
    clearTimeout(this.recovery);
    if (this.up || this.closed) return;
    this.up = true;
    this.emit('up', { state: 'up', at: Date.now(), reason: 'the database answered' } satisfies DbHealthEvent);
  }

  backoff = (retries: number) => (this.up ? Math.min(0.5, 0.02 * 2 ** retries) * (0.5 + Math.random() / 2) : 0);

  async close() {
    this.closed = true;
    clearInterval(this.watchdog);
    clearTimeout(this.recovery);
    await this.probeSql?.end({ timeout: 0 }).catch(() => undefined);
  }
}

const PROBE_TICK_MS = 25;

/**
 * The probe's deadline (rules 2 and 3 of the header): resolves 'timeout' once `ms` of time in which
 * this process could run has passed — each tick counts at most two ticks, so a starved event loop
 * does not spend the budget — and only from setImmediate, after the event loop's poll phase has read
 * whatever the sockets received meanwhile (an answer that arrived in time settles the race first).
 */
export function probeDeadline(ms: number): { timeout: Promise<'timeout'>; cancel: () => void } {
  let timer: NodeJS.Timeout | undefined;
  let cancelled = false;
  const timeout = new Promise<'timeout'>((resolve) => {
    let spent = 0;
    let last = performance.now();
    const tick = () => {
      const now = performance.now();
      spent += Math.min(now - last, 2 * PROBE_TICK_MS);
      last = now;
      if (spent >= ms) setImmediate(() => { if (!cancelled) resolve('timeout'); });
      else timer = setTimeout(tick, Math.min(PROBE_TICK_MS, ms - spent));
    };
    timer = setTimeout(tick, Math.min(PROBE_TICK_MS, ms));
  });
  return { timeout, cancel: () => { cancelled = true; clearTimeout(timer); } };
}

function codeOf(err: Error): string {
  const e = err as { code?: unknown };
  return typeof e.code === 'string' ? e.code : err.name;
}

export interface DbHandle {
  url: string;
  sql: Sql;
  db: Database;
  health: DbHealth;
  close: () => Promise<void>;
}

/**
 * PostgreSQL's built-in array types (element oid → array oid), fixed in its catalog
 * (pg_type.dat) for every server version; test/db/array-types.test.ts compares them with pg_type.
 */
export const BUILTIN_ARRAY_TYPES: Readonly<Record<number, number>> = {
  16: 1000, 17: 1001, 18: 1002, 19: 1003, 20: 1016, 21: 1005, 23: 1007, 25: 1009, 26: 1028,
  114: 199, 700: 1021, 701: 1022, 1042: 1014, 1043: 1015, 1082: 1182, 1083: 1183, 1114: 1115,
  1184: 1185, 1186: 1187, 1700: 1231, 2950: 2951, 3802: 3807,
};

type ArrayCodec = {
  arrayParser: (x: string, parser: unknown, typarray: number) => unknown;
  arraySerializer: (xs: unknown, serializer: unknown, options: unknown, typarray: number) => string;
};
// postgres.js's own array (de)serialisers, the ones its type fetch installs; its package exports
// do not name the module, so it is loaded beside the entry point.
const arrayCodec: ArrayCodec = (() => {
  const require = createRequire(import.meta.url);
  return require(path.join(path.dirname(require.resolve('postgres')), 'types.js')) as ArrayCodec;
})();

type CodecOptions = {
  parsers: Record<number, ((x: string) => unknown) & { array?: boolean }>;
  serializers: Record<number, (x: unknown) => string>;
  shared: { typeArrayMap: Record<number, number> };
};
const codecOptions = (sql: Sql) => sql.options as unknown as CodecOptions;

const arraySerializer = (options: CodecOptions, element: number, typarray: number) =>
  (xs: unknown) => arrayCodec.arraySerializer(xs, options.serializers[element], options, typarray);

/** What postgres.js's type fetch does for each array type, for the built-in ones, with no query. */
function registerBuiltinArrayTypes(sql: Sql): void {
  const options = codecOptions(sql);
  for (const [element, typarray] of Object.entries(BUILTIN_ARRAY_TYPES).map(([e, a]) => [Number(e), a] as const)) {
    options.shared.typeArrayMap[element] = typarray;
    // the element's (de)serialiser is looked up per call: drizzle replaces some after this runs
    options.parsers[typarray] = Object.assign((xs: string) => arrayCodec.arrayParser(xs, options.parsers[element], typarray), { array: true });
    options.serializers[typarray] = arraySerializer(options, element, typarray);
  }
}

/**
 * Every serialiser hands postgres.js a string. drizzle (drizzle-orm/postgres-js) replaces the
 * serialisers of the date types, of their ARRAY types (date[] 1182, timestamp[] 1115, timestamptz[]
 * 1185, numeric[] 1231) and of json/jsonb with the identity: its own columns pass strings. A raw
 * statement (ctx.sql) whose parameter the server describes as one of those types — the session
 * toucher's `unnest(${ids}::uuid[], ${times}::timestamptz[])` — then reaches postgres.js's Bind
 * writer as a JS array and throws a TypeError there. On its own that fails the statement (the touches
 * were never written). Pipelined behind another statement on the same connection it is worse:
 * postgres.js rejects the statement in flight with the error, keeps the failed one as the next in
 * flight, and the connection's following statement waits forever for an answer (PostgreSQL waits for
 * the Bind that never comes: `active`, ClientRead). So: the array types get the array serialiser
 * back, the date types turn a Date into ISO text, and json takes a value as well as its text.
 * test/db/array-types.test.ts sends each of these types through a prepared, pipelined statement.
 */
function restoreSerializers(sql: Sql): void {
  const options = codecOptions(sql);
  for (const [element, typarray] of Object.entries(BUILTIN_ARRAY_TYPES).map(([e, a]) => [Number(e), a] as const)) {
    options.serializers[typarray] = arraySerializer(options, element, typarray);
  }
  const iso = (x: unknown) => (x instanceof Date ? x.toISOString() : x) as string;
  for (const type of [1114, 1184]) options.serializers[type] = iso;
  options.serializers[1082] = (x: unknown) => (x instanceof Date ? x.toISOString().slice(0, 10) : x) as string;
  const json = (x: unknown) => (typeof x === 'string' ? x : JSON.stringify(x));
  for (const type of [114, 3802]) options.serializers[type] = json;
}

/** Set while a transaction's callback runs: a statement on the pool from there needs a second connection. */
const inTransaction = new AsyncLocalStorage<true>();

/** What the pool did: a statement on the pool (not the transaction) from inside a transaction's callback. */
export class NestedPoolQueryError extends Error {
  constructor() {
    super('a statement on the pool inside a transaction: it waits for a second connection (a deadlock once every connection ' +
      'is held by such a transaction); run it on the transaction');
    this.name = 'NestedPoolQueryError';
  }
}

/**
 * The pool. `sql` (and `db` over it) forward to the current postgres.js instance: when the breaker
 * trips, that instance is retired at once (postgres.js's own termination: every query in flight or
 * queued fails, PostgreSQL rolls back the transactions of the closed connections) and a fresh one
 * takes its place, whose connections fail at once until the database answers the probe again.
 * Retiring the whole instance, rather than killing its sockets, leaves no connection of postgres.js
 * half-reset.
 */
export function connect(url: string, opts: {
  max?: number; timeouts?: Partial<DbTimeouts>;
  /**
   * Refuse a statement on the pool made from inside a transaction's callback (NestedPoolQueryError)
   * instead of letting it wait for another connection. Tests turn it on: with a small pool and a
   * burst of such requests, every connection is held by a transaction waiting for one more.
   */
  strictTransactions?: boolean;
  /** postgres.js's debug hook: sees every statement sent (tests count round trips with it) */
  debug?: (connection: number, query: string, parameters: unknown[]) => void;
} = {}): DbHandle {
  const t = { ...DEFAULT_DB_TIMEOUTS, ...opts.timeouts };
  const breaker = new Breaker(url, t);
  const connection: Record<string, string> = { application_name: 'county-services' };
  if (t.statementTimeoutMs > 0) {
    connection.statement_timeout = String(t.statementTimeoutMs);
    // a transaction left open by a vanished client holds its locks no longer than this
    connection.idle_in_transaction_session_timeout = String(2 * t.statementTimeoutMs);
  }
  type Pool = { sql: Sql; sockets: Set<net.Socket> };
  const first: { sql?: Sql } = {};
  const makePool = (): Pool => {
    const sockets = new Set<net.Socket>();
    const own: { options?: object } = {};
    const sql = postgres(url, {
      // The array types are PostgreSQL's built-in ones, registered below: postgres.js's own fetch
      // runs on every new connection, outside any request, and a connection lost during it is an
      // unhandled rejection (and a round trip per connection).
      fetch_types: false,
      max: opts.max ?? 10,
      onnotice: () => undefined,
      connect_timeout: t.connectTimeoutMs / 1000,
      idle_timeout: 60,
      backoff: breaker.backoff,
      connection,
      socket: breaker.poolSocket(() => own.options, sockets),
      ...(opts.debug ? { debug: opts.debug } : {}),
    } as postgres.Options<Record<string, never>>);
    own.options = sql.options;
    registerBuiltinArrayTypes(sql);
    if (first.sql) {
      // drizzle configured the first instance's (de)serialisers; every successor needs the same
      Object.assign(sql.options.parsers, first.sql.options.parsers);
      Object.assign(sql.options.serializers, first.sql.options.serializers);
    }
    return { sql, sockets };
  };
  let pool = makePool();
  first.sql = pool.sql;
  const retired = new Set<Sql>();
  const retire = () => {
    const old = pool;
    pool = makePool();
    retired.add(old.sql);
    void old.sql.end({ timeout: 0 }).catch(() => undefined).finally(() => {
      retired.delete(old.sql);
      // the peer may be silent: do not wait for a FIN it will never answer
      for (const s of old.sockets) s.destroy(new DatabaseUnavailableError());
    });
  };
  breaker.on('down', retire);
  breaker.on('stale', retire);

  const strict = opts.strictTransactions ?? false;
  const guard = () => {
    if (inTransaction.getStore()) throw new NestedPoolQueryError();
  };
  const forward = new Proxy(function pool() {} as unknown as Sql, {
    apply: (_target, _this, args: unknown[]) => {
      if (strict) guard();
      return (pool.sql as unknown as (...a: unknown[]) => unknown)(...args);
    },
    get: (_target, prop) => {
      if (strict && prop === 'begin') {
        return (...args: unknown[]) => {
          guard();
          const fn = args.pop() as (tx: unknown) => unknown;
          return (pool.sql.begin as (...a: unknown[]) => unknown)(...args, (tx: unknown) => inTransaction.run(true, () => fn(tx)));
        };
      }
      if (strict && (prop === 'unsafe' || prop === 'reserve' || prop === 'file')) guard();
      // postgres.js 3.4.9 never settles reserve() on a new connection when fetch_types is off
      // (porsager/postgres#751, #1219): a query first leaves an open connection for it to take.
      if (prop === 'reserve') return async () => { await pool.sql`select 1`; return pool.sql.reserve(); };
      const value = (pool.sql as unknown as Record<string | symbol, unknown>)[prop];
      return typeof value === 'function' ? value.bind(pool.sql) : value;
    },
  });
  const db = drizzle(forward, { schema });
  // drizzle has replaced some serialisers of the first instance (successors copy them from it)
  restoreSerializers(pool.sql);
  return {
    url, sql: forward, db, health: breaker,
    close: async () => {
      breaker.off('down', retire);
      breaker.off('stale', retire);
      await breaker.close();
      await Promise.all([pool.sql.end({ timeout: 5 }), ...[...retired].map((r) => r.end({ timeout: 0 }))]);
    },
  };
}
