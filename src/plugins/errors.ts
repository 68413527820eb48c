// The root error handler: every error, from validation to a dropped database connection, leaves as
// the one envelope of the contract. Nothing internal (stack, SQL, driver text) reaches a client.
import fp from 'fastify-plugin';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { TSchema } from 'typebox';
import { AppError, isDatabaseBusy, isDatabaseUnavailable, pgError, type ErrorCode, type FieldErrors } from '../errors.js';
import { applyTextPolicy } from '../schemas/text-policy.js';
import { errorResponse } from '../schemas/common.js';

interface ValidationIssue {
  keyword?: string;
  schemaPath?: string;
  instancePath?: string;
  message?: string;
  params?: Record<string, unknown>;
}

const PART_MESSAGES: Record<string, string> = {
  body: 'Request body is invalid',
  querystring: 'Query parameters are invalid',
  params: 'Path parameters are invalid',
  headers: 'Request headers are invalid',
};

function friendly(issue: ValidationIssue): string {
  const p = issue.params ?? {};
  switch (issue.keyword) {
    case 'format': return p.format === 'email' ? 'Must be a valid email address' : `Must be a valid ${String(p.format)}`;
    case 'minLength': return `Must be at least ${String(p.limit)} characters`;
    case 'maxLength': return `Must be at most ${String(p.limit)} characters`;
    case 'type': return `Must be of type ${Array.isArray(p.type) ? p.type.join(' or ') : String(p.type)}`;
    default: return issue.message ? issue.message.charAt(0).toUpperCase() + issue.message.slice(1) : 'Is invalid';
  }
}

/** TypeBox/Ajv issues → `fields` keyed by the dotted path of the offending member ("" = whole body). */
export function toFieldErrors(issues: ValidationIssue[]): FieldErrors {
  // No prototype: an unknown member may be called "constructor" or "__proto__" (found by the fuzzer).
  const fields: FieldErrors = Object.create(null) as FieldErrors;
  const add = (key: string, msg: string) => {
    const list = (fields[key] ??= []);
    if (!list.includes(msg)) list.push(msg);
  };
  for (const issue of issues) {
    const base = (issue.instancePath ?? '').replace(/^\//, '').replace(/\//g, '.');
    const join = (name: string) => (base ? `${base}.${name}` : name);
    const p = issue.params ?? {};
    if (issue.keyword === 'required') {
      const missing = (p.requiredProperties ?? (p.missingProperty ? [p.missingProperty] : [])) as string[];
      for (const name of missing) add(join(name), 'This field is required');
    } else if (issue.keyword === 'additionalProperties') {
      const extra = (p.additionalProperties ?? (p.additionalProperty ? [p.additionalProperty] : [])) as string[];
      for (const name of extra) add(join(name), 'Unknown field');
    } else if (issue.keyword === 'boolean' && /additionalProperties$/.test(issue.schemaPath ?? '')) {
      // TypeBox reports an unknown member twice (here and as additionalProperties); keep one message
      continue;
    } else if (issue.keyword === 'anyOf' || issue.keyword === 'oneOf') {
      // the branch errors carry the useful message; keep a generic one only if nothing else names the field
      if (!Object.keys(fields).some((k) => k === base || k.startsWith(base + '.'))) add(base, 'Is invalid');
    } else {
      add(base, friendly(issue));
    }
  }
  // For a union (e.g. string-or-null) every branch reports; when a branch said something specific
  // about a member, drop the bare "Must be of type …" messages the other branches added.
  for (const [key, list] of Object.entries(fields)) {
    const specific = list.filter((m) => !m.startsWith('Must be of type') && m !== 'Is invalid');
    if (specific.length && specific.length < list.length) fields[key] = specific;
  }
  return fields;
}

export function envelope(statusCode: number, code: ErrorCode | string, message: string, extra: Record<string, unknown> = {}) {
  return { statusCode, error: STATUS_CODES[statusCode] ?? 'Error', code, message, ...extra };
}

export function sendError(reply: FastifyReply, err: AppError) {
  if (err.headers) reply.headers(err.headers);
  const extra: Record<string, unknown> = { ...err.extra };
  if (err.fields) extra.fields = err.fields;
  return reply.code(err.statusCode).type('application/json; charset=utf-8').send(envelope(err.statusCode, err.code, err.message, extra));
}

const FASTIFY_CODES: Record<string, [number, ErrorCode, string]> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: [415, 'UNSUPPORTED_MEDIA_TYPE', 'Request bodies must be application/json'],
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: [400, 'VALIDATION_FAILED', 'Content-Length does not match the body'],
  FST_ERR_CTP_BODY_TOO_LARGE: [413, 'PAYLOAD_TOO_LARGE', 'Request body is too large'],
  FST_ERR_CTP_EMPTY_JSON_BODY: [400, 'INVALID_JSON', 'Request body is empty but Content-Type is application/json'],
  FST_ERR_CTP_INVALID_JSON_BODY: [400, 'INVALID_JSON', 'Request body is not valid JSON'],
  FST_ERR_BAD_URL: [400, 'VALIDATION_FAILED', 'The URL is malformed'],
  // The contract's status for an over-long path segment is 414 (URI Too Long), in the envelope.
  FST_ERR_MAX_PARAM_LENGTH: [414, 'VALIDATION_FAILED', 'A path segment is too long'],
  FST_ERR_ASYNC_CONSTRAINT: [400, 'VALIDATION_FAILED', 'The request is malformed'],
};

const NO_BODY_MESSAGE = 'This operation takes no body';
export const noBodyError = () => new AppError(400, 'VALIDATION_FAILED', NO_BODY_MESSAGE, { fields: { '': [NO_BODY_MESSAGE] } });

function toAppError(err: FastifyError & { validation?: ValidationIssue[]; validationContext?: string }): AppError | null {
  if (err instanceof AppError) return err;
  if (err.validation) {
    const part = err.validationContext ?? 'body';
    return new AppError(400, 'VALIDATION_FAILED', PART_MESSAGES[part] ?? 'Request is invalid', { fields: toFieldErrors(err.validation) });
  }
  const known = err.code ? FASTIFY_CODES[err.code] : undefined;
  if (known) return new AppError(known[0], known[1], known[2]);
  if (err instanceof SyntaxError && err.statusCode === 400) return new AppError(400, 'INVALID_JSON', 'Request body is not valid JSON');
  if (isDatabaseUnavailable(err)) return new AppError(503, 'SERVICE_UNAVAILABLE', 'The service is temporarily unavailable; try again shortly', { headers: { 'retry-after': '5' } });
  if (isDatabaseBusy(err)) return new AppError(503, 'SERVICE_UNAVAILABLE', 'The service is busy; try again shortly', { headers: { 'retry-after': '1' } });
  const pg = pgError(err);
  if (pg?.code === '23505') return new AppError(409, 'CONFLICT', 'The request conflicts with the current state');
  // a reference to a row that does not exist (or no longer does): the caller's value
  if (pg?.code === '23503') return new AppError(400, 'VALIDATION_FAILED', 'A referenced resource does not exist', { fields: { '': ['A referenced resource does not exist'] } });
  // Class 22 is "data exception": a value PostgreSQL refuses (out of range, bad encoding, NUL in
  // text, …). The schemas should have refused it first; if one slips through it is still the
  // caller's bad value, never a 500.
  if (pg?.code.startsWith('22')) return new AppError(400, 'VALIDATION_FAILED', 'A value is out of range', { fields: { '': ['A value is out of range'] } });
  if (err.statusCode === 429) return new AppError(429, 'RATE_LIMITED', 'Too many requests; slow down');
  if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
    const code: ErrorCode = err.statusCode === 404 ? 'NOT_FOUND' : err.statusCode === 405 ? 'METHOD_NOT_ALLOWED' : 'VALIDATION_FAILED';
    return new AppError(err.statusCode, code, STATUS_CODES[err.statusCode] ?? 'Bad request');
  }
  return null;
}

/**
 * What an error may say in a log line: its class, its code, and for a database error the kind of
 * statement (never the statement's text, its parameters — hashes, uniquifiers, tokens — or the
 * driver's message, which can quote a value). Used as the logger's `err` serializer (app.ts).
 */
export function serializeError(err: unknown): { type: string; message: string; stack: string; [key: string]: unknown } {
  const out: { type: string; message: string; stack: string; [key: string]: unknown } = { type: 'Error', message: '[omitted]', stack: '' };
  if (!err || typeof err !== 'object') return { ...out, type: typeof err };
  const e = err as { name?: unknown; code?: unknown; statusCode?: unknown; stack?: unknown; message?: unknown };
  if (typeof e.name === 'string') out.type = e.name;
  const pg = pgError(err);
  if (pg) {
    const p = pg as { code: string; constraint_name?: string; routine?: string; query?: unknown; table_name?: string };
    // `sqlstate` as well as `code`: the logger redacts `*.code` (one-time codes share the name)
    out.code = p.code;
    out.sqlstate = p.code;
    if (typeof p.constraint_name === 'string') out.constraint = p.constraint_name;
    if (typeof p.table_name === 'string') out.table = p.table_name;
    const query = typeof p.query === 'string' ? p.query : (err as { query?: unknown }).query;
    if (typeof query === 'string') out.statement = statementKind(query);
    out.message = `database error ${p.code}`;
    return out;
  }
  if (typeof e.code === 'string' || typeof e.code === 'number') out.code = e.code;
  if (typeof e.statusCode === 'number') out.statusCode = e.statusCode;
  // What a wrapper (drizzle's "Failed query") wraps: its kind and code, never its message
  const cause = (err as { cause?: unknown }).cause as { name?: unknown; code?: unknown; constructor?: { name?: unknown } } | undefined;
  if (cause && typeof cause === 'object') {
    out.cause = {
      type: typeof cause.name === 'string' ? cause.name : typeof cause.constructor?.name === 'string' ? cause.constructor.name : 'unknown',
      ...(typeof cause.code === 'string' || typeof cause.code === 'number' ? { code: cause.code } : {}),
    };
  }
  // Our own and the framework's messages never carry input values; a driver's or a library's may,
  // and so may a stack trace's first line. Keep the frames, drop the message.
  if (err instanceof AppError || (typeof e.code === 'string' && e.code.startsWith('FST_'))) out.message = String(e.message);
  // Only the frames: a message (first lines, possibly several) may quote a value.
  if (typeof e.stack === 'string') out.stack = e.stack.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('at ')).slice(0, 8).join('\n');
  return out;
}

/** "insert into users", "update sessions", "select": the statement's verb and first table. */
export function statementKind(query: string): string {
  const m = /^\s*(?:with\b[\s\S]*?\)\s*)?(select|insert\s+into|update|delete\s+from|merge\s+into)\s*(?:[\s\S]*?\bfrom\s+)?("?[A-Za-z_][A-Za-z0-9_]*"?)?/i.exec(query);
  if (!m) return 'statement';
  const verb = m[1]!.toLowerCase().replace(/\s+/g, ' ');
  const table = m[2] && !/^select$/i.test(verb) ? ` ${m[2].replace(/"/g, '')}` : '';
  return verb + table;
}

/** Every header the security-headers plugin sets, for answers that leave before its onRequest hook runs. */
export interface ErrorsOptions { headers: Record<string, string> }

/** The one error handler: any error → the envelope, with the security headers, whatever stage failed. */
export function handleError(headers: Record<string, string>) {
  return (err: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    reply.headers(headers);
    reply.header('x-request-id', request.id);
    const appErr = toAppError(err);
    if (appErr) {
      if (appErr.statusCode >= 500) request.log.warn({ err }, 'request failed: %s', appErr.code);
      // A 400 all the same, but a schema let the value through: say so (the fuzzer fails on this line).
      else if (pgError(err)?.code.startsWith('22')) request.log.warn({ err }, 'database refused a value the request schemas accepted');
      return sendError(reply, appErr);
    }
    request.log.error({ err }, 'unhandled error');
    return sendError(reply, new AppError(500, 'INTERNAL', 'An internal error occurred'));
  };
}

/**
 * Errors of the HTTP parser (before Fastify has a request): the envelope and the security headers,
 * written on the socket (Fastify's default writes a bare JSON body without them).
 */
export function clientErrorHandler(headers: Record<string, string>) {
  return (err: NodeJS.ErrnoException & { rawPacket?: unknown }, socket: Socket) => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    const body = JSON.stringify(envelope(status, 'VALIDATION_FAILED', status === 431 ? 'Request headers are too large' : status === 408 ? 'Request timed out' : 'The request is malformed'));
    const lines = [`HTTP/1.1 ${status} ${STATUS_CODES[status]}`, 'content-type: application/json; charset=utf-8',
      `content-length: ${Buffer.byteLength(body)}`, 'connection: close', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
    socket.end(`${lines.join('\r\n')}\r\n\r\n${body}`);
  };
}

const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * The statuses any operation can answer whatever its handler does, added to its response schemas
 * (and so to the OpenAPI document): 429 (rate limiter), 500, 503 (database down, shutting down);
 * 400 when it reads params, a query or a body (or may be sent a body it does not take); 414 when
 * it has path parameters (over the router's length limit); 413 when it may be sent a body; 415 when
 * it takes one.
 */
export function completeResponses(route: Pick<RouteOptions, 'method' | 'schema'>): void {
  const schema = route.schema as { response?: Record<string, TSchema>; body?: unknown; params?: unknown; querystring?: unknown } | undefined;
  if (!schema?.response) return;
  const methods = ([] as string[]).concat(route.method as string | string[]);
  const takesBodyMethod = methods.some((m) => BODY_METHODS.has(m));
  const statuses = [429, 500, 503];
  if (schema.params || schema.querystring || schema.body || takesBodyMethod) statuses.push(400);
  if (schema.params) statuses.push(414);
  if (takesBodyMethod) statuses.push(413);
  if (schema.body) statuses.push(415);
  for (const status of statuses) schema.response[status] ??= errorResponse(status);
}

async function errorsPlugin(app: FastifyInstance, opts: ErrorsOptions) {
  app.setErrorHandler(handleError(opts.headers));

  // Every route: the text policy on its request schemas, the always-possible statuses on its responses.
  app.addHook('onRoute', (route) => {
    const schema = route.schema as Record<string, unknown> | undefined;
    if (!schema) return;
    for (const part of ['body', 'querystring', 'params', 'headers']) applyTextPolicy(schema[part]);
    completeResponses(route);
  });

  app.setNotFoundHandler((request, reply) =>
    sendError(reply.headers(opts.headers), new AppError(404, 'NOT_FOUND', `Route ${request.method} ${request.url.split('?')[0]!.slice(0, 200)} not found`)));
}

export default fp(errorsPlugin, { name: 'errors' });
