// The OpenAPI 3.1 document, generated from the route schemas, served at /openapi.json with an
// interactive UI at /docs (assets bundled by @fastify/swagger-ui: no CDN).
import fp from 'fastify-plugin';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config.js';
import { isOptionalBody } from './request-body.js';

export const API_VERSION = '0.1.0';

async function openapiPlugin(app: FastifyInstance, opts: { config: Config }) {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'County Services API',
        version: API_VERSION,
        description: 'Registration, login, sessions and tokens, and administration for the County Services platform. ' +
          'Every error uses the ErrorEnvelope schema; docs/errors.md lists the error codes.',
      },
      servers: [{ url: `http://${opts.config.HOST}:${opts.config.PORT}`, description: 'This server' }],
      tags: [
        { name: 'auth', description: 'Security views and the current user' },
        { name: 'two-factor', description: 'Two-factor authentication: the login\'s second step, setup, recovery codes' },
        { name: 'main', description: 'Health, readiness, dashboard' },
        { name: 'users', description: 'User administration (County Admin; Department Officers read their own county)' },
        { name: 'roles', description: 'Roles and permissions' },
        { name: 'org', description: 'Counties and departments' },
        { name: 'audit', description: 'The audit log of security events' },
      ],
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'Access token from POST /login' },
          cookieAuth: { type: 'apiKey', in: 'cookie', name: opts.config.SESSION_COOKIE_NAME, description: 'Session cookie set by POST /login' },
          csrfHeader: { type: 'apiKey', in: 'header', name: 'X-CSRF-Token', description: 'Required with cookieAuth on POST/PUT/PATCH/DELETE' },
        },
      },
    },
    // @fastify/swagger marks every request body required; a body nothing in which is required (POST
    // /logout) may be left out entirely (plugins/request-body.ts), and the document says so.
    transformObject: (doc) => {
      const openapi = 'openapiObject' in doc ? doc.openapiObject : doc.swaggerObject;
      for (const item of Object.values((openapi as { paths?: Record<string, Record<string, unknown>> }).paths ?? {})) {
        for (const op of Object.values(item)) {
          const body = (op as { requestBody?: { required?: boolean; content?: Record<string, { schema?: unknown }> } }).requestBody;
          const schema = body?.content?.['application/json']?.schema;
          if (body && isOptionalBody(schema)) body.required = false;
        }
      }
      return openapi;
    },
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`),
    },
  });
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    staticCSP: true,
    // swagger-ui's own CSP would allow same-origin framing; the API's rule is no framing at all
    transformStaticCSP: (header: string) => header.replace("frame-ancestors 'self'", "frame-ancestors 'none'"),
  });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}

export default fp(openapiPlugin, { name: 'openapi' });
