// The Idempotency-Key header on the routes that ask for it (`config: { idempotent: true }`): the
// header is declared in the route's schema (OpenAPI), 409 and 422 are added to its responses, and
// two route hooks do the rest (security/idempotency.ts has the rules):
//   preHandler (after the route's own guards): claim the key, or answer 409 (in flight), 422 (the
//              key was used for another body) or the stored answer (header Idempotent-Replayed)
//   onSend:    store the answer (< 500), or release the claim (5xx: nothing was committed)
// A route whose effect is a transaction records its answer inside it instead
// (`request.idempotency.recorder`, security/idempotency.ts): effect and answer commit together, and
// onSend does not store it again. POST /register and POST /users do.
import { applyTextPolicy } from '../schemas/text-policy.js';
import fp from 'fastify-plugin';
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest, onSendHookHandler, preHandlerHookHandler } from 'fastify';
import { Type, type TSchema } from 'typebox';
import { AppError } from '../errors.js';
import {
  answerRecorder, completeIdempotent, purgeIdempotencyKeys, releaseIdempotent, requestHash, startIdempotent,
  type AnswerRecorder, type IdempotencyScope,
} from '../security/idempotency.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** accept an Idempotency-Key header: a retry with the same key and body gets the first answer */
    idempotent?: boolean;
  }
  interface FastifyRequest {
    /** the claim of this request's Idempotency-Key (null: no key); `recorder` stores the answer in the route's transaction */
    idempotency: { scope: IdempotencyScope; claim: string; recorder: AnswerRecorder & { recorded(): number | null } } | null;
  }
}

export const IDEMPOTENCY_HEADER = 'idempotency-key';
const KeySchema = Type.String({
  minLength: 1, maxLength: 255, pattern: '^[\\x21-\\x7E]+$',
  description: 'A unique value per intended operation (a UUID): a retry with the same key and the same body gets the first answer ' +
    '(its token fields excepted) instead of a second effect. Remembered for IDEMPOTENCY_KEY_TTL (24 h).',
});
const PURGE_EVERY_MS = 10 * 60_000;

const asArray = <T>(h: T | T[] | undefined): T[] => (h === undefined ? [] : Array.isArray(h) ? h : [h]);

async function idempotencyPlugin(app: FastifyInstance) {
  const ctx = app.security;
  app.decorateRequest('idempotency', null);

  // Claims whose release failed because the database was gone: released when it answers again,
  // so the client's retry executes at once instead of waiting for the lease.
  const unreleased = new Map<string, { scope: IdempotencyScope; claim: string }>();

  const claim: preHandlerHookHandler = async function (request: FastifyRequest, reply: FastifyReply) {
    const key = request.headers[IDEMPOTENCY_HEADER];
    if (typeof key !== 'string') return;
    const scope: IdempotencyScope = {
      operation: `${request.method} ${request.routeOptions.url ?? ''}`,
      principal: request.auth ? `user:${request.auth.user.id}` : '',
      key,
    };
    const claimId = randomUUID();
    let started: Awaited<ReturnType<typeof startIdempotent>>;
    try {
      started = await startIdempotent(ctx, scope, requestHash(ctx, request.body ?? null), claimId);
    } catch (err) {
      // the claim may have committed before its connection died: give it back once the database
      // answers, or the client's retries would see it "in flight" for the whole lease
      if (unreleased.size < 10_000) unreleased.set(claimId, { scope, claim: claimId });
      throw err;
    }
    switch (started.kind) {
      case 'execute':
        request.idempotency = { scope, claim: started.claim, recorder: answerRecorder(ctx, scope, started.claim) };
        return;
      case 'in_flight':
        throw new AppError(409, 'CONFLICT', 'A request with this Idempotency-Key is still in progress; retry shortly', { headers: { 'retry-after': '1' } });
      case 'mismatch':
        throw new AppError(422, 'IDEMPOTENCY_KEY_REUSED', 'This Idempotency-Key was already used with a different request body');
      case 'replay':
        reply.header('idempotent-replayed', 'true');
        await reply.code(started.status).send(started.body);
        return reply;
    }
  };

  const releaseLater = () => {
    for (const [claimId, held] of unreleased) {
      releaseIdempotent(ctx, held.scope, held.claim).then(() => unreleased.delete(claimId), () => undefined);
    }
  };
  app.database.on('up', releaseLater);
  // and again every second while some remain (a release that failed while the database was up)
  const retryRelease = setInterval(() => { if (unreleased.size && app.database.up) releaseLater(); }, 1000);
  retryRelease.unref();
  app.addHook('onClose', async () => {
    app.database.off('up', releaseLater);
    clearInterval(retryRelease);
  });

  const store: onSendHookHandler = async function (request, reply, payload) {
    const held = request.idempotency;
    if (!held) return payload;
    request.idempotency = null;
    try {
      // a 5xx may follow a commit whose answer went missing: the release deletes only an unanswered claim
      if (reply.statusCode >= 500 || reply.statusCode === 429) {
        try {
          await releaseIdempotent(ctx, held.scope, held.claim);
        } catch (err) {
          if (unreleased.size < 10_000) unreleased.set(held.claim, held);
          throw err;
        }
      } else if (held.recorder.recorded() !== reply.statusCode) {
        // (a route that recorded this answer in its transaction committed it: only a committed record
        // reaches the answer with its status; a rolled-back one ends in an error status)
        const body = typeof payload === 'string' && payload ? JSON.parse(payload) as unknown : null;
        await completeIdempotent(ctx, held.scope, held.claim, reply.statusCode, body);
      }
    } catch (err) {
      // The answer still goes out; the claim ends with its lease and a retry executes again (routes
      // that record their answer in their own transaction, /register and /users, never get here
      // with their success answer).
      request.log.warn({ err: { type: (err as Error).name, code: (err as { code?: unknown }).code } }, 'idempotency: could not store the answer');
    }
    return payload;
  };

  app.addHook('onRoute', (route) => {
    if (!route.config?.idempotent) return;
    const schema = (route.schema ??= {}) as { headers?: TSchema & { properties?: Record<string, TSchema> }; response?: Record<string, TSchema> };
    const headers = schema.headers?.properties ? { ...schema.headers.properties } : {};
    headers[IDEMPOTENCY_HEADER] = Type.Optional(KeySchema);
    schema.headers = Type.Object(headers);
    // this hook may run after the root one that applies the text policy: apply it to what it adds
    applyTextPolicy(schema.headers);
    schema.response ??= {};
    schema.response[409] ??= Type.Ref('ErrorEnvelope', { description: 'Conflict (EMAIL_TAKEN, CONFLICT: a request with this Idempotency-Key is in progress)' });
    schema.response[422] = Type.Ref('ErrorEnvelope', { description: 'IDEMPOTENCY_KEY_REUSED: the Idempotency-Key was used with another body' });
    route.preHandler = [...asArray(route.preHandler), claim];
    route.onSend = [...asArray(route.onSend), store];
  });

  let purge: NodeJS.Timeout | undefined;
  app.addHook('onReady', async () => {
    purge = setInterval(() => {
      purgeIdempotencyKeys(ctx).catch((err: unknown) => app.log.debug({ err: { code: (err as { code?: unknown }).code } }, 'idempotency: purge failed'));
    }, PURGE_EVERY_MS);
    purge.unref();
  });
  app.addHook('onClose', async () => clearInterval(purge));
}

export default fp(idempotencyPlugin, { name: 'idempotency', dependencies: ['authentication', 'database'] });
