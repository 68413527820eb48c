// Security headers on every response: helmet computes them once at start-up and one hook applies
// the precomputed set. (Running helmet's middleware chain per request — what @fastify/helmet does —
// re-parsed the CSP directives on every request and cost ~10% of the authenticated path's CPU.)
import fp from 'fastify-plugin';
import helmet, { type HelmetOptions } from 'helmet';
import type { FastifyInstance } from 'fastify';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Config } from '../config.js';

export function helmetOptions(config: Config): HelmetOptions {
  return {
    contentSecurityPolicy: {
      useDefaults: false,
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
    strictTransportSecurity: config.NODE_ENV === 'production' ? { maxAge: 31536000, includeSubDomains: true } : false,
    referrerPolicy: { policy: 'no-referrer' },
    crossOriginResourcePolicy: { policy: 'same-site' },
  };
}

/** The headers helmet would set, as a plain object. */
export function computeSecurityHeaders(options: HelmetOptions): Record<string, string> {
  const headers: Record<string, string> = {};
  const res = {
    setHeader: (name: string, value: string | number | readonly string[]) => { headers[name.toLowerCase()] = String(value); },
    removeHeader: (name: string) => { delete headers[name.toLowerCase()]; },
  };
  helmet(options)({} as IncomingMessage, res as unknown as ServerResponse, () => undefined);
  return headers;
}

/** Every header this plugin sets on every response (the error handler also sets them, see plugins/errors.ts). */
export function securityHeaderSet(config: Config): Record<string, string> {
  return {
    ...computeSecurityHeaders(helmetOptions(config)),
    // Nothing this API returns may be cached by browsers or proxies (the docs' static assets set their own).
    'cache-control': 'no-store',
  };
}

async function securityHeadersPlugin(app: FastifyInstance, opts: { config: Config }) {
  const headers = securityHeaderSet(opts.config);
  app.addHook('onRequest', (request, reply, done) => {
    reply.headers(headers);
    reply.header('x-request-id', request.id);
    done();
  });
}

export default fp(securityHeadersPlugin, { name: 'security-headers' });
