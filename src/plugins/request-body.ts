// Request bodies, one rule for every route (contract: JSON objects only, anything else 415):
// - an operation that declares a body schema takes application/json; any other type is 415, an
//   empty JSON body is 400 INVALID_JSON — unless nothing in the body is required (POST /logout),
//   then an empty body of any type stands for {} (OpenAPI: requestBody.required false);
// - an operation without a body schema takes none: an empty body is accepted whatever its
//   Content-Type (and so is `{}`, which many clients send when there is nothing to send); a body
//   with content is 400 VALIDATION_FAILED "This operation takes no body" (never ignored: unknown
//   input is refused, not dropped).
import fp from 'fastify-plugin';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AppError } from '../errors.js';
import { noBodyError } from './errors.js';

const optionalCache = new WeakMap<object, boolean>();

/** A body schema that an empty object satisfies: no required members, no minimum. */
export function isOptionalBody(schema: unknown): boolean {
  if (!schema || typeof schema !== 'object') return false;
  let v = optionalCache.get(schema);
  if (v === undefined) {
    const s = schema as { type?: unknown; required?: unknown; minProperties?: unknown };
    v = s.type === 'object' && (!Array.isArray(s.required) || s.required.length === 0) && !s.minProperties;
    optionalCache.set(schema, v);
  }
  return v;
}

/** No body, or `{}`: what many HTTP clients send when there is nothing to send. No member is no content. */
const isEmptyJson = (text: string) => /^\s*(\{\s*\})?\s*$/.test(text);

const bodySchema = (request: FastifyRequest): unknown => (request.routeOptions.schema as { body?: unknown } | undefined)?.body;

async function requestBodyPlugin(app: FastifyInstance) {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser(['application/json', 'text/plain']);

  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const schema = bodySchema(request);
    const text = body as string;
    if (!schema) return isEmptyJson(text) ? done(null, undefined) : done(noBodyError(), undefined);
    if (text.length === 0 && isOptionalBody(schema)) return done(null, undefined);
    parseJson(request, text, done);
  });

  // Every other media type (and a body sent without a Content-Type, or to a body-less operation).
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (request, body, done) => {
    const schema = bodySchema(request);
    const empty = (body as Buffer).length === 0 || (!schema && isEmptyJson((body as Buffer).toString('utf8')));
    if (empty && (!schema || isOptionalBody(schema))) return done(null, undefined);
    if (!schema) return done(noBodyError(), undefined);
    done(new AppError(415, 'UNSUPPORTED_MEDIA_TYPE', 'Request bodies must be application/json'), undefined);
  });

  // A body-less operation ignores the Content-Type (even an unparseable one, which Fastify would
  // answer 415 before any parser): its body, if any, goes to the catch-all parser below. (A global
  // hook: the not-found handler takes no body either.) Callback hooks: an async one costs a promise
  // per request.
  app.addHook('preParsing', (request, _reply, payload, done) => {
    if (request.headers['content-type'] !== undefined && !bodySchema(request)) delete request.headers['content-type'];
    done(null, payload);
  });

  // No body at all on an operation whose body is optional: validate it as {} (attached to those routes only).
  app.addHook('onRoute', (route) => {
    if (!isOptionalBody((route.schema as { body?: unknown } | undefined)?.body)) return;
    route.preValidation = [...hookList(route.preValidation), (request, _reply, done) => {
      if (request.body === undefined) request.body = {};
      done();
    }];
  });
}

const hookList = <T>(hooks: T | T[] | undefined): T[] => (hooks === undefined ? [] : Array.isArray(hooks) ? hooks : [hooks]);

export default fp(requestBodyPlugin, { name: 'request-body' });
