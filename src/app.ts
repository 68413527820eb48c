// buildApp(config, deps): the whole application, registered in order, top to bottom.
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox';
import helmet from '@fastify/helmet';
import cors from '@fastify/cors';
import { randomUUID } from 'node:crypto';
import type { Config } from './config.js';
import type { DbHandle } from './db/client.js';
import { systemClock, type Clock, type SecurityContext } from './security/context.js';
import { createPasswordHasher } from './security/passwords.js';
import { registerFormats } from './schemas/formats.js';
import { SHARED_SCHEMAS } from './schemas/common.js';
import { ADMIN_SCHEMAS } from './schemas/admin.js';
import errorsPlugin from './plugins/errors.js';
import openapiPlugin from './plugins/openapi.js';
import authenticationPlugin from './plugins/authentication.js';
import authRoutes from './routes/auth/index.js';
import mainRoutes from './routes/main/index.js';
import userRoutes from './routes/users/index.js';
import roleRoutes from './routes/roles/index.js';
import orgRoutes from './routes/org/index.js';
import auditRoutes from './routes/audit/index.js';

export interface AppDeps {
  db: DbHandle;
  clock?: Clock;
  /** a pino-compatible logger destination for tests; defaults to stdout */
  logger?: FastifyServerOptions['logger'];
}

const REQUEST_ID_RE = /^[A-Za-z0-9._-]{1,64}$/;
/** Path segments that carry secrets (one-time links); masked in logs. */
const SECRET_PATH_RE = /\/(reset|confirm|change-email|tf-setup)\/[^/?#]+/g;

export function securityContext(config: Config, deps: AppDeps): SecurityContext {
  return {
    config,
    db: deps.db.db,
    sql: deps.db.sql,
    clock: deps.clock ?? systemClock,
    passwords: createPasswordHasher({
      pepper: config.SECURITY_PASSWORD_SALT,
      pepperFallbacks: config.SECURITY_PASSWORD_SALT_FALLBACKS,
      rounds: config.BCRYPT_LOG_ROUNDS,
      minLength: config.SECURITY_PASSWORD_LENGTH_MIN,
      checker: config.SECURITY_PASSWORD_COMPLEXITY_CHECKER,
      checkBreached: config.SECURITY_PASSWORD_CHECK_BREACHED,
    }),
  };
}

export async function buildApp(config: Config, deps: AppDeps): Promise<FastifyInstance> {
  registerFormats();
  const app = Fastify({
    logger: deps.logger ?? {
      level: config.LOG_LEVEL,
      redact: {
        paths: ['req.headers.authorization', 'req.headers.cookie', 'req.headers["x-csrf-token"]', 'res.headers["set-cookie"]',
          '*.password', '*.new_password', '*.refresh_token', '*.access_token', '*.token', '*.csrf_token'],
        censor: '[redacted]',
      },
      serializers: {
        req: (req: { method: string; url: string; ip?: string; id?: string }) => ({
          method: req.method, url: req.url.replace(SECRET_PATH_RE, '/$1/[redacted]'), ip: req.ip,
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

  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  app.addHook('onSend', async (request, reply) => {
    // Nothing this API returns may be cached by browsers or proxies, except the docs assets.
    if (!request.url.startsWith('/docs/static')) reply.header('cache-control', 'no-store');
  });

  await app.register(errorsPlugin);
  await app.register(helmet, {
    global: true,
    contentSecurityPolicy: {
      directives: {
        defaultSrc: ["'self'"],
        frameAncestors: ["'none'"],
        imgSrc: ["'self'", 'data:'],
        styleSrc: ["'self'", "'unsafe-inline'"],
        scriptSrc: ["'self'"],
        connectSrc: ["'self'"],
        objectSrc: ["'none'"],
        baseUri: ["'none'"],
        formAction: ["'self'"],
      },
    },
    frameguard: { action: 'deny' },
    hsts: config.NODE_ENV === 'production' ? { maxAge: 31536000, includeSubDomains: true } : false,
    referrerPolicy: { policy: 'no-referrer' },
    crossOriginResourcePolicy: { policy: 'same-site' },
  });
  await app.register(cors, {
    origin: config.CORS_ORIGINS.length ? [...config.CORS_ORIGINS] : false,
    credentials: true,
    methods: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'],
    allowedHeaders: ['Content-Type', 'Authorization', 'X-CSRF-Token', 'X-Request-Id'],
    exposedHeaders: ['X-Request-Id', 'Retry-After'],
    maxAge: 600,
  });
  await app.register(openapiPlugin, { config });
  await app.register(authenticationPlugin, { security: securityContext(config, deps) });

  await app.register(mainRoutes);
  await app.register(authRoutes);
  await app.register(userRoutes);
  await app.register(roleRoutes);
  await app.register(orgRoutes);
  await app.register(auditRoutes);
  return app;
}
