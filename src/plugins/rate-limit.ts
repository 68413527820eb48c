// Per-IP rate limits with @fastify/rate-limit. Every request (the 404 handler included) counts
// against RATE_LIMIT_GLOBAL; routes that name a class in `config.rateLimitClass` also count against
// that class's stricter budget, one per route (auth: login, register, reset, confirm; refresh; totp:
// tf-validate and the setup confirmation). Both are
// checked, the tighter one is reported in the RateLimit-* headers, and an exceeded one answers
// 429 RATE_LIMITED with Retry-After.
//
// The counters live in PostgreSQL by default, so any number of instances behind one address enforce
// one budget per client. The class budgets are exact (a custom store: one atomic upsert per check,
// noise next to the bcrypt or token work they guard). The global budget, which every request pays,
// is counted per instance and flushed in batches (security/shared-budget.ts): no statement per
// request, exact near the limit, a stated tolerance past it. RATE_LIMIT_STORE=memory
// keeps them in this process (one instance only). Redis is not supported (REDIS_URL is ignored):
// PostgreSQL is the shared store. The client address is request.ip (X-Forwarded-For counts only
// with TRUST_PROXY), keyed by security/client-address.ts clientKey: IPv4-mapped, NAT64 and 6to4
// addresses as their IPv4 client, other IPv6 per /64.
import fp from 'fastify-plugin';
import rateLimit, { type FastifyRateLimitStore } from '@fastify/rate-limit';
import { clientKey } from '../security/client-address.js';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { RateLimit } from '../config.js';
import { AppError } from '../errors.js';
import type { Clock, SecurityContext } from '../security/context.js';
import { pruneSecurityState } from '../security/lockout.js';
import { SharedBudget, type BudgetDecision } from '../security/shared-budget.js';

export type RateLimitClass = 'auth' | 'refresh' | 'totp';

declare module 'fastify' {
  interface FastifyInstance {
    /** the batched global budget (RATE_LIMIT_STORE=postgres with limits on); tests and the bench read its stats */
    globalBudget?: SharedBudget;
  }
  interface FastifyContextConfig {
    /** a stricter per-IP budget for this route, on top of the global one */
    rateLimitClass?: RateLimitClass;
  }
}

type IncrCallback = (error: Error | null, result?: { current: number; ttl: number }) => void;

/** Hands a query's outcome to the store callback exactly once, whatever happens. */
function settle(query: Promise<{ hits: number | string; end_ms: string }[]>, now: number, cb: IncrCallback) {
  query.then((rows) => {
    const row = rows[0];
    const result = row ? { current: Number(row.hits), ttl: Math.max(0, Number(row.end_ms) - now) } : { current: 0, ttl: 0 };
    if (!Number.isFinite(result.current) || !Number.isFinite(result.ttl)) throw new Error('rate_limits: unexpected row');
    return result;
  }).then((result) => cb(null, result), (err: Error) => cb(err));
}

/** Fixed windows in the rate_limits table; the injected clock decides when a window ends. */
export function postgresStore(ctx: SecurityContext) {
  return class PostgresRateLimitStore implements FastifyRateLimitStore {
    incr(key: string, cb: IncrCallback, timeWindow: number) {
      const now = ctx.clock.now();
      const nowIso = now.toISOString();
      const end = new Date(now.getTime() + timeWindow).toISOString();
      // One statement: concurrent requests from any instance serialise on the row. The window's end
      // comes back as epoch milliseconds (text): the driver leaves timestamps unparsed.
      settle(ctx.sql<{ hits: number; end_ms: string }[]>`
        insert into rate_limits as r (key, hits, expires_at) values (${key}, 1, ${end}::timestamptz)
        on conflict (key) do update set
          hits = case when r.expires_at <= ${nowIso}::timestamptz then 1 else r.hits + 1 end,
          expires_at = case when r.expires_at <= ${nowIso}::timestamptz then excluded.expires_at else r.expires_at end
        returning hits, (extract(epoch from expires_at) * 1000)::bigint::text as end_ms`, now.getTime(), cb);
    }
    read(key: string, cb: IncrCallback) {
      const now = ctx.clock.now();
      settle(ctx.sql<{ hits: number; end_ms: string }[]>`
        select hits, (extract(epoch from expires_at) * 1000)::bigint::text as end_ms from rate_limits
        where key = ${key} and expires_at > ${now.toISOString()}::timestamptz`, now.getTime(), cb);
    }
    child() {
      return this;
    }
  };
}

/** This process only; the same fixed windows, on the injected clock. */
export function memoryStore(clock: Clock, maxKeys = 50_000) {
  const windows = new Map<string, { hits: number; end: number }>();
  return class MemoryRateLimitStore implements FastifyRateLimitStore {
    incr(key: string, cb: IncrCallback, timeWindow: number) {
      const now = clock.now().getTime();
      let w = windows.get(key);
      if (!w || w.end <= now) {
        if (windows.size >= maxKeys) {
          for (const [k, v] of windows) if (v.end <= now) windows.delete(k);
          if (windows.size >= maxKeys) windows.delete(windows.keys().next().value!);
        }
        w = { hits: 0, end: now + timeWindow };
        windows.set(key, w);
      }
      w.hits += 1;
      cb(null, { current: w.hits, ttl: w.end - now });
    }
    read(key: string, cb: IncrCallback) {
      const now = clock.now().getTime();
      const w = windows.get(key);
      cb(null, w && w.end > now ? { current: w.hits, ttl: w.end - now } : { current: 0, ttl: 0 });
    }
    child() {
      return this;
    }
  };
}

interface Outcome { max: number; remaining: number; ttlInSeconds: number; isExceeded: boolean }

async function rateLimitPlugin(app: FastifyInstance) {
  const ctx = app.security;
  const { config } = ctx;

  // Housekeeping for the shared brute-force state (expired windows, old failure records, dead
  // two-factor challenges), whether or not rate limiting is on. Any instance may run it.
  let prune: NodeJS.Timeout | undefined;
  app.addHook('onReady', async () => {
    prune = setInterval(() => {
      pruneSecurityState(ctx).catch((err: unknown) => app.log.debug({ err }, 'pruning security state failed'));
    }, 10 * 60_000);
    prune.unref();
  });
  app.addHook('onClose', async () => clearInterval(prune));

  if (config.REDIS_URL) app.log.warn('REDIS_URL is set but not used: rate limits are shared through PostgreSQL');
  if (!config.RATE_LIMIT_ENABLED) return;

  await app.register(rateLimit, {
    global: false,
    store: config.RATE_LIMIT_STORE === 'memory' ? memoryStore(ctx.clock) : postgresStore(ctx),
    // The database being down must not take /health down with it; routes that need the database
    // answer 503 by themselves.
    skipOnError: true,
  });

  // The global budget is one per client; a class budget is one per client and route (30 logins and
  // 30 registrations, not 30 of both together).
  const limiter = (name: string, rate: RateLimit) => {
    const check = app.createRateLimit({
      max: rate.max,
      timeWindow: rate.windowSeconds * 1000,
      keyGenerator: name === 'global'
        ? (req: FastifyRequest) => `global:${clientKey(req.ip)}`
        : (req: FastifyRequest) => `${name}:${req.routeOptions.url ?? ''}:${clientKey(req.ip)}`,
    });
    return async (req: FastifyRequest): Promise<Outcome | null> => {
      const r = await check(req);
      return r.isAllowed ? null : { max: r.max, remaining: r.remaining, ttlInSeconds: r.ttlInSeconds, isExceeded: r.isExceeded };
    };
  };
  const globalKey = (req: FastifyRequest) => `global:${clientKey(req.ip)}`;
  let global = limiter('global', config.RATE_LIMIT_GLOBAL);
  // The decision without a promise, when this instance can take it alone (the batched budget's fast path).
  let globalLocal: (req: FastifyRequest) => Outcome | null | undefined = () => undefined;
  // On a route with a class: the view's decision, counted for the next flush (SharedBudget.takeCounted).
  let globalCounted: (req: FastifyRequest) => Outcome | undefined = () => undefined;
  if (config.RATE_LIMIT_STORE === 'postgres') {
    const budget = new SharedBudget(ctx.sql, ctx.clock, { max: config.RATE_LIMIT_GLOBAL.max, windowMs: config.RATE_LIMIT_GLOBAL.windowSeconds * 1000 },
      config.RATE_LIMIT_FLUSH_INTERVAL_MS);
    app.decorate('globalBudget', budget);
    app.addHook('onReady', async () => budget.start());
    app.addHook('onClose', async () => budget.stop());
    const outcome = (d: BudgetDecision): Outcome => d.allowed
      ? { max: d.limit, remaining: d.remaining, ttlInSeconds: d.resetSeconds, isExceeded: false }
      : { max: d.limit, remaining: 0, ttlInSeconds: d.resetSeconds, isExceeded: true };
    global = async (req) => outcome(await budget.take(globalKey(req)));
    globalLocal = (req) => {
      const d = budget.takeLocal(globalKey(req));
      return d ? outcome(d) : undefined;
    };
    globalCounted = (req) => outcome(budget.takeCounted(globalKey(req)));
  }
  const classes: Record<RateLimitClass, ReturnType<typeof limiter>> = {
    auth: limiter('auth', config.RATE_LIMIT_AUTH),
    refresh: limiter('refresh', config.RATE_LIMIT_REFRESH),
    totp: limiter('totp', config.RATE_LIMIT_TOTP),
  };

  /** Reports the budget closest to running out (RateLimit header fields, IETF draft); throws 429 when one is exceeded. */
  const apply = (reply: FastifyReply, outcomes: (Outcome | null)[]) => {
    const live = outcomes.filter((o): o is Outcome => o !== null);
    if (!live.length) return;
    const exceeded = live.find((o) => o.isExceeded);
    const shown = exceeded ?? live.reduce((a, b) => (b.remaining < a.remaining ? b : a));
    reply.header('ratelimit-limit', shown.max);
    reply.header('ratelimit-remaining', shown.remaining);
    reply.header('ratelimit-reset', shown.ttlInSeconds);
    if (exceeded) {
      const retryAfter = String(Math.max(1, exceeded.ttlInSeconds));
      throw new AppError(429, 'RATE_LIMITED', 'Too many requests; slow down and retry later', { headers: { 'retry-after': retryAfter } });
    }
  };
  const checkAll = async (request: FastifyRequest, reply: FastifyReply, local: Outcome | null | undefined) => {
    const cls = request.routeOptions.config?.rateLimitClass;
    const outcomes = [local === undefined ? await global(request) : local];
    if (cls) outcomes.push(await classes[cls](request));
    apply(reply, outcomes);
  };

  // Every request passes here: a request the global budget decides locally, on a route without a
  // class, costs no promise and no statement; on a route with a class, the class's exact count is
  // the one statement.
  app.addHook('onRequest', (request, reply, done) => {
    const cls = request.routeOptions.config?.rateLimitClass;
    const local = cls ? globalCounted(request) : globalLocal(request);
    if (local !== undefined && !cls) {
      try {
        apply(reply, [local]);
      } catch (err) {
        return done(err as Error);
      }
      return done();
    }
    checkAll(request, reply, local).then(() => done(), done);
  });
}

export default fp(rateLimitPlugin, { name: 'rate-limits', dependencies: ['errors', 'authentication'] });
