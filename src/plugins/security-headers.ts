// Security headers on every response: helmet computes them once at start-up and one hook applies
// the precomputed set. (Running helmet's middleware chain per request — what @fastify/helmet does —
// re-parsed the CSP directives on every request and cost ~10% of the authenticated path's CPU.)
import fp from 'fastify-plugin';
import helmet, { type HelmetOptions } from 'helmet';
import type { FastifyInstance } from 'fastify';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Config } from '../config.js';

/** The docs page (Swagger UI, an HTML document): helmet's document set. */
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
    xFrameOptions: { action: 'deny' },
    strictTransportSecurity: config.NODE_ENV === 'production' ? { maxAge: 31536000, includeSubDomains: true } : false,
    referrerPolicy: { policy: 'no-referrer' },
    crossOriginResourcePolicy: { policy: 'same-site' },
  };
}

/**
 * Every JSON answer: what a response that is never rendered as a document needs (OWASP REST
 * Security Cheat Sheet): a CSP that allows nothing, frame denial, nosniff, no referrer, same-site
 * resource policy, HSTS in production. The document-only headers (opener policy, origin-agent
 * cluster, DNS prefetch, IE download options, Flash/PDF cross-domain policies, the legacy XSS
 * auditor) protect pages, and cost bytes and header processing on every answer.
 */
export function apiHelmetOptions(config: Config): HelmetOptions {
  return {
    contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
    xFrameOptions: { action: 'deny' },
    strictTransportSecurity: config.NODE_ENV === 'production' ? { maxAge: 31536000, includeSubDomains: true } : false,
    referrerPolicy: { policy: 'no-referrer' },
    crossOriginResourcePolicy: { policy: 'same-site' },
    crossOriginOpenerPolicy: false,
    originAgentCluster: false,
    xDnsPrefetchControl: false,
    xDownloadOptions: false,
    xPermittedCrossDomainPolicies: false,
    xXssProtection: false,
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

/** Every header this plugin sets on every API response (the error handler also sets them, see plugins/errors.ts). */
export function securityHeaderSet(config: Config): Record<string, string> {
  return {
    ...computeSecurityHeaders(apiHelmetOptions(config)),
    // Nothing this API returns may be cached by browsers or proxies (the docs' static assets set their own).
    'cache-control': 'no-store',
  };
}

/** The docs page's set: helmet's document headers. */
export function documentHeaderSet(config: Config): Record<string, string> {
  return { ...computeSecurityHeaders(helmetOptions(config)), 'cache-control': 'no-store' };
}

/** The docs UI's routes (plugins/openapi.ts serves it under this prefix). */
const DOCS_PREFIX = '/docs';

async function securityHeadersPlugin(app: FastifyInstance, opts: { config: Config }) {
  const api = securityHeaderSet(opts.config);
  const documents = documentHeaderSet(opts.config);
  app.addHook('onRequest', (request, reply, done) => {
    reply.headers(request.routeOptions.url?.startsWith(DOCS_PREFIX) ? documents : api);
    reply.header('x-request-id', request.id);
    done();
  });
}

export default fp(securityHeadersPlugin, { name: 'security-headers' });
