// buildApp(config, deps): the whole application, registered in order, top to bottom.
import Fastify, { type FastifyInstance } from 'fastify';
import { TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox';
import cors from '@fastify/cors';
import { randomUUID } from 'node:crypto';
import type { Config } from './config.js';
import type { DbHandle } from './db/client.js';
import { securityContext, type Clock } from './security/context.js';
import { registerFormats } from './schemas/formats.js';
import { SHARED_SCHEMAS } from './schemas/common.js';
import { ADMIN_SCHEMAS } from './schemas/admin.js';
import errorsPlugin from './plugins/errors.js';
import securityHeaders from './plugins/security-headers.js';
import openapiPlugin from './plugins/openapi.js';
import authenticationPlugin from './plugins/authentication.js';
import outboxWorkerPlugin from './plugins/outbox-worker.js';
import rateLimitPlugin from './plugins/rate-limit.js';
import authRoutes from './routes/auth/index.js';
import accountRoutes from './routes/auth/account.js';
import tokenRoutes from './routes/auth/personal-tokens.js';
import twoFactorRoutes from './routes/auth/two-factor.js';
import oidcRoutes from './routes/auth/oidc.js';
import mainRoutes from './routes/main/index.js';
import userRoutes from './routes/users/index.js';
import roleRoutes from './routes/roles/index.js';
import orgRoutes from './routes/org/index.js';
import auditRoutes from './routes/audit/index.js';

export interface AppDeps {
  db: DbHandle;
  clock?: Clock;
  /** false: no logging at all (the OpenAPI generator); a stream: where log lines go (tests); default stdout */
  logger?: false | { write: (line: string) => void };
}

const REQUEST_ID_RE = /^[A-Za-z0-9._-]{1,64}$/;
/** Path segments that carry secrets (one-time links); masked in logs. */
const SECRET_PATH_RE = /\/(reset|confirm|change-email|tf-setup)\/[^/?#]+/g;
/** Query parameters that carry secrets (the OIDC callback's code and state); masked in logs. */
const SECRET_QUERY_RE = /([?&](?:code|state|login_code)=)[^&#]*/g;

export async function buildApp(config: Config, deps: AppDeps): Promise<FastifyInstance> {
  registerFormats();
  const app = Fastify({
    logger: deps.logger === false ? false : {
      level: config.LOG_LEVEL,
      ...(deps.logger ? { stream: deps.logger } : {}),
      redact: {
        paths: ['req.headers.authorization', 'req.headers.cookie', 'req.headers["x-csrf-token"]', 'res.headers["set-cookie"]',
          '*.password', '*.new_password', '*.refresh_token', '*.access_token', '*.token', '*.csrf_token',
          '*.tf_token', '*.tf_setup_token', '*.code', '*.secret', '*.recovery_codes'],
        censor: '[redacted]',
      },
      serializers: {
        req: (req: { method: string; url: string; ip?: string; id?: string }) => ({
          method: req.method, url: req.url.replace(SECRET_PATH_RE, '/$1/[redacted]').replace(SECRET_QUERY_RE, '$1[redacted]'), ip: req.ip,
        }),
      },
    },
    genReqId: (req) => {
      const incoming = req.headers['x-request-id'];
      return typeof incoming === 'string' && REQUEST_ID_RE.test(incoming) ? incoming : randomUUID();
    },
    bodyLimit: config.BODY_LIMIT,
    // a hop count, an address list, or true (proxy-addr semantics)
    trustProxy: config.TRUST_PROXY as boolean | string,
    routerOptions: { maxParamLength: 1024 },
    return503OnClosing: true,
  });
  app.setValidatorCompiler(TypeBoxValidatorCompiler);
  // JSON only: a body of any other type is 415.
  app.removeContentTypeParser(['text/plain']);
  for (const schema of [...SHARED_SCHEMAS, ...ADMIN_SCHEMAS]) app.addSchema(schema);

  await app.register(errorsPlugin);
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
      allowedHeaders: ['Content-Type', 'Authorization', 'X-CSRF-Token', 'X-Request-Id'],
      exposedHeaders: ['X-Request-Id', 'Retry-After'],
      maxAge: 600,
    });
  }
  await app.register(openapiPlugin, { config });
  await app.register(authenticationPlugin, { security: securityContext(config, deps), dbUrl: deps.db.url });
  // Per-IP limits (global, and stricter per route class) before any route work; after CORS so a 429
  // still carries the CORS headers an SPA needs to read it.
  await app.register(rateLimitPlugin);
  await app.register(outboxWorkerPlugin);

  await app.register(mainRoutes);
  await app.register(authRoutes);
  await app.register(accountRoutes);
  await app.register(tokenRoutes);
  await app.register(userRoutes);
  await app.register(roleRoutes);
  await app.register(orgRoutes);
  await app.register(auditRoutes);
  await app.register(twoFactorRoutes);
  await app.register(oidcRoutes);
  return app;
}
