// buildApp(config, deps): the whole application, registered in order, top to bottom.
import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions, type FastifyReply, type FastifyRequest } from 'fastify';
import { TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox';
import cors from '@fastify/cors';
import { randomUUID } from 'node:crypto';
import type { Config } from './config.js';
import type { DbHandle } from './db/client.js';
import { securityContext, type Clock } from './security/context.js';
import { lazyChildLogger, logDestination } from './logging.js';
import { registerFormats } from './schemas/formats.js';
import { SHARED_SCHEMAS } from './schemas/common.js';
import { ADMIN_SCHEMAS } from './schemas/admin.js';
import errorsPlugin, { clientErrorHandler, handleError, serializeError } from './plugins/errors.js';
import databasePlugin from './plugins/database.js';
import requestBodyPlugin from './plugins/request-body.js';
import securityHeaders, { securityHeaderSet } from './plugins/security-headers.js';
import openapiPlugin from './plugins/openapi.js';
import authenticationPlugin from './plugins/authentication.js';
import outboxWorkerPlugin from './plugins/outbox-worker.js';
import rateLimitPlugin from './plugins/rate-limit.js';
import idempotencyPlugin from './plugins/idempotency.js';
import authRoutes from './routes/auth/index.js';
import accountRoutes from './routes/auth/account.js';
import tokenRoutes from './routes/auth/personal-tokens.js';
import twoFactorRoutes from './routes/auth/two-factor.js';
import passwordlessRoutes from './routes/auth/passwordless.js';
import userPasskeyRoutes from './routes/users/passkeys.js';
import oidcRoutes from './routes/auth/oidc.js';
import mainRoutes from './routes/main/index.js';
import userRoutes from './routes/users/index.js';
import roleRoutes from './routes/roles/index.js';
import orgRoutes from './routes/org/index.js';
import auditRoutes from './routes/audit/index.js';
import { trustProxyOption } from './security/client-address.js';

export interface AppDeps {
  db: DbHandle;
  clock?: Clock;
  /** false: no logging at all (the OpenAPI generator); a stream: where log lines go (tests); default stdout */
  logger?: false | { write: (line: string) => void };
}

const REQUEST_ID_RE = /^[A-Za-z0-9._-]{1,64}$/;
/** Path segments that carry secrets (one-time links); masked in logs. */
const SECRET_PATH_RE = /\/(reset|confirm|change-email|tf-setup|us-signin\/link)\/[^/?#]+/g;
/** Query parameters that carry secrets (the OIDC callback's code and state); masked in logs. */
const SECRET_QUERY_RE = /([?&](?:code|state|login_code)=)[^&#]*/g;

/** How long a closing app lets requests in flight finish before it closes their connections (server.ts exits after 15 s). */
export const SHUTDOWN_DRAIN_MS = 5000;

/**
 * Readable development logs: one line per request ("GET /users 200 3.1 ms", the request on the
 * completion line) instead of Fastify's "incoming request" + "request completed" pair.
 */
class OneLinePerRequest extends LogController {
  override incomingRequest(request: FastifyRequest): void {
    request.log.debug({ req: request }, 'incoming request');
  }
  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (error) reply.log.error({ req: request, res: reply, err: error, responseTime: reply.elapsedTime }, 'request errored');
    else reply.log.info({ req: request, res: reply, responseTime: reply.elapsedTime }, 'request completed');
  }
}

export async function buildApp(config: Config, deps: AppDeps): Promise<FastifyInstance> {
  registerFormats();
  const logs = deps.logger === false ? { pretty: false } : logDestination(config.LOG_FORMAT, deps.logger);
  const headers = securityHeaderSet(config);
  const app = Fastify({
    logger: deps.logger === false ? false : {
      level: config.LOG_LEVEL,
      ...(logs.stream ? { stream: logs.stream } : {}),
      redact: {
        paths: ['req.headers.authorization', 'req.headers.cookie', 'req.headers["x-csrf-token"]', 'res.headers["set-cookie"]',
          // secrets by their key; a bare `code` is a one-time code only inside a request body
          // (elsewhere it is an error code the logs must show: 23505, ECONNREFUSED)
          '*.password', '*.new_password', '*.refresh_token', '*.access_token', '*.token', '*.csrf_token',
          '*.tf_token', '*.tf_setup_token', '*.secret', '*.recovery_codes', '*.passcode', '*.login_code',
          '*.tf_totp_secret', 'body.code', '*.body.code', 'req.headers["idempotency-key"]'],
        censor: '[redacted]',
      },
      serializers: {
        err: serializeError,
        req: (req: { method: string; url: string; ip?: string; id?: string }) => ({
          method: req.method, url: req.url.replace(SECRET_PATH_RE, '/$1/[redacted]').replace(SECRET_QUERY_RE, '$1[redacted]'), ip: req.ip,
        }),
      },
    },
    childLoggerFactory: lazyChildLogger as unknown as FastifyServerOptions['childLoggerFactory'],
    genReqId: (req) => {
      const incoming = req.headers['x-request-id'];
      return typeof incoming === 'string' && REQUEST_ID_RE.test(incoming) ? incoming : randomUUID();
    },
    bodyLimit: config.BODY_LIMIT,
    // true, a hop count (as a trust function: Fastify 5 ignores a numeric trustProxy), or an address list
    trustProxy: trustProxyOption(config.TRUST_PROXY),
    routerOptions: { maxParamLength: 1024 },
    return503OnClosing: true,
    ...(logs.pretty ? { logController: new OneLinePerRequest() } : {}),
    // Router errors (bad URL encoding, over-long path segment) and HTTP parser errors leave through
    // the one error handler too: the envelope and every security header.
    frameworkErrors: handleError(headers),
    clientErrorHandler: clientErrorHandler(headers),
  });
  app.setValidatorCompiler(TypeBoxValidatorCompiler);
  for (const schema of [...SHARED_SCHEMAS, ...ADMIN_SCHEMAS]) app.addSchema(schema);

  await app.register(errorsPlugin, { headers });
  await app.register(databasePlugin, { health: deps.db.health });
  // JSON only: a body of any other type is 415; body-less operations refuse a body with content.
  await app.register(requestBodyPlugin);
  // Graceful shutdown: close() lets in-flight requests finish; their responses then tell keep-alive
  // clients to go (Connection: close), so the server is closed as soon as they are answered instead
  // of waiting for idle sockets to time out.
  let closing = false;
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (closing) reply.header('connection', 'close');
    done(null, payload);
  });
  await app.register(securityHeaders, { config });
  // Credentialed CORS for the allow-listed SPA origins only; without a list no CORS headers at all.
  if (config.CORS_ORIGINS.length) {
    await app.register(cors, {
      origin: [...config.CORS_ORIGINS],
      credentials: true,
      methods: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'],
      allowedHeaders: ['Content-Type', 'Authorization', 'X-CSRF-Token', 'X-Request-Id', 'Idempotency-Key'],
      exposedHeaders: ['X-Request-Id', 'Retry-After', 'Idempotent-Replayed'],
      maxAge: 600,
    });
  }
  // Closing drains: idle keep-alive connections close at once (Fastify's default), a request in
  // flight gets SHUTDOWN_DRAIN_MS to finish, then every connection still open is closed. Without the
  // bound, one connection Node still counts as busy held app.close() for the keep-alive timeout
  // (72 s; the outage test's teardown measured 66 s), past the server's 15 s forced exit.
  let drain: NodeJS.Timeout | undefined;
  app.addHook('preClose', (done) => {
    drain = setTimeout(() => app.server.closeAllConnections(), SHUTDOWN_DRAIN_MS);
    drain.unref();
    done();
  });
  app.addHook('onClose', (_instance, done) => {
    clearTimeout(drain);
    done();
  });
  await app.register(openapiPlugin, { config });
  await app.register(authenticationPlugin, { security: securityContext(config, deps), dbUrl: deps.db.url });
  // Per-IP limits (global, and stricter per route class) before any route work; after CORS so a 429
  // still carries the CORS headers an SPA needs to read it.
  await app.register(rateLimitPlugin);
  await app.register(outboxWorkerPlugin);
  await app.register(idempotencyPlugin);

  await app.register(mainRoutes);
  await app.register(authRoutes);
  await app.register(accountRoutes);
  await app.register(tokenRoutes);
  await app.register(userRoutes);
  await app.register(roleRoutes);
  await app.register(orgRoutes);
  await app.register(auditRoutes);
  await app.register(twoFactorRoutes);
  await app.register(passwordlessRoutes);
  await app.register(userPasskeyRoutes);
  await app.register(oidcRoutes);
  return app;
}
