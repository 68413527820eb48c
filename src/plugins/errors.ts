// The root error handler: every error, from validation to a dropped database connection, leaves as
// the one envelope of the contract. Nothing internal (stack, SQL, driver text) reaches a client.
import fp from 'fastify-plugin';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { STATUS_CODES } from 'node:http';
import { AppError, isDatabaseUnavailable, pgError, type ErrorCode, type FieldErrors } from '../errors.js';

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
  const fields: FieldErrors = {};
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
  FST_ERR_ASYNC_CONSTRAINT: [400, 'VALIDATION_FAILED', 'The request is malformed'],
};

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
  const pg = pgError(err);
  if (pg?.code === '23505') return new AppError(409, 'CONFLICT', 'The request conflicts with the current state');
  if (pg?.code === '22P02' || pg?.code === '22003' || pg?.code === '22001') return new AppError(400, 'VALIDATION_FAILED', 'A value is out of range', { fields: { '': ['A value is out of range'] } });
  if (err.statusCode === 429) return new AppError(429, 'RATE_LIMITED', 'Too many requests; slow down');
  if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
    const code: ErrorCode = err.statusCode === 404 ? 'NOT_FOUND' : err.statusCode === 405 ? 'METHOD_NOT_ALLOWED' : 'VALIDATION_FAILED';
    return new AppError(err.statusCode, code, STATUS_CODES[err.statusCode] ?? 'Bad request');
  }
  return null;
}

async function errorsPlugin(app: FastifyInstance) {
  app.setErrorHandler((err: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    const appErr = toAppError(err);
    if (appErr) {
      if (appErr.statusCode >= 500) request.log.warn({ err: { type: err.name, code: (err as { code?: string }).code } }, 'request failed: %s', appErr.code);
      return sendError(reply, appErr);
    }
    request.log.error({ err }, 'unhandled error');
    return sendError(reply, new AppError(500, 'INTERNAL', 'An internal error occurred'));
  });

  app.setNotFoundHandler((request, reply) =>
    sendError(reply, new AppError(404, 'NOT_FOUND', `Route ${request.method} ${request.url.split("?")[0]!.slice(0, 200)} not found`)));
}

export default fp(errorsPlugin, { name: 'errors' });
