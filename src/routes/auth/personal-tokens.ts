// Personal access tokens: POST/GET/DELETE /auth/tokens.
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { fresh, interactiveOnly } from '../guards.js';
import { createPersonalToken, listPersonalTokens, revokePersonalToken } from '../../security/personal-tokens.js';
import { bodyErrors, errors, Nullable, Timestamp, UuidParam, SECURED } from '../../schemas/common.js';
import { audit } from '../../security/audit.js';
import { createdPersonalToken, publicPersonalToken } from '../../security/presenters.js';
import { auditSource, clientInfo } from '../request-source.js';

const TAG = ['auth'];
const Permission = Type.String({ pattern: '^[a-z][a-z_-]*:[a-z*][a-z_*-]*$', maxLength: 64 });

const CreateTokenBody = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 100 }),
  expires_in: Type.Optional(Type.Integer({ minimum: 60, maximum: 10 * 365 * 86400, description: 'Lifetime in seconds; omitted: no expiry (ten years)' })),
  permissions: Type.Optional(Type.Array(Permission, { maxItems: 50, description: 'A subset of your permissions; omitted: all of them' })),
}, { additionalProperties: false, examples: [{ name: 'nightly-report', expires_in: 2592000, permissions: ['users:read'] }] });

const TokenInfo = {
  id: Type.String({ format: 'uuid' }),
  name: Type.String(),
  permissions: Nullable(Type.Array(Type.String())),
  created_at: Timestamp,
};
const CreatedTokenResponse = Type.Object({
  ...TokenInfo,
  token: Type.String({ description: 'Shown once. Send as Authorization: Bearer <token>' }),
  expires_at: Nullable(Timestamp),
}, { additionalProperties: false });
const TokenListResponse = Type.Object({
  tokens: Type.Array(Type.Object({ ...TokenInfo, expires_at: Timestamp, last_used_at: Timestamp }, { additionalProperties: false })),
}, { additionalProperties: false });

export default async function tokenRoutes(root: FastifyInstance) {
  root.register(async (scope) => {
    scope.addHook('onRequest', scope.requireAuth);
    const s = scope.withTypeProvider<TypeBoxTypeProvider>();
    const ctx = scope.security;

    s.post('/auth/tokens', {
      // Minting a long-lived credential needs a recent password login, never another token.
      preHandler: [interactiveOnly, fresh(ctx.config.SECURITY_FRESHNESS, () => ctx.clock.now())],
      schema: {
        tags: TAG, operationId: 'createPersonalToken', summary: 'Create a personal access token for scripts', security: SECURED,
        body: CreateTokenBody,
        response: { 201: CreatedTokenResponse, ...bodyErrors(401, 403) },
      },
    }, async (request, reply) => {
      const t = await createPersonalToken(ctx, request.auth!.user, {
        name: request.body.name, expiresIn: request.body.expires_in, permissions: request.body.permissions,
        ...clientInfo(request),
      });
      await audit(ctx, { ...auditSource(request), action: 'token.created', targetUserId: request.auth!.user.id, details: { pat_id: t.id, name: t.name, permissions: t.permissions } });
      return reply.code(201).send(createdPersonalToken(t));
    });

    s.get('/auth/tokens', {
      preHandler: interactiveOnly,
      schema: {
        tags: TAG, operationId: 'listPersonalTokens', summary: 'Your live personal access tokens (never the token values)', security: SECURED,
        description: 'Not with a personal access token (403).',
        response: { 200: TokenListResponse, ...errors(401, 403) },
      },
    }, async (request) => ({
      tokens: (await listPersonalTokens(ctx, request.auth!.user.id)).map(publicPersonalToken),
    }));

    s.delete('/auth/tokens/:id', {
      // A token revoking its siblings would be account management by automation.
      preHandler: interactiveOnly,
      schema: {
        tags: TAG, operationId: 'revokePersonalToken', summary: 'Revoke one of your personal access tokens', security: SECURED,
        params: UuidParam,
        response: { 204: Type.Null({ description: 'Revoked' }), ...errors(400, 401, 403, 404) },
      },
    }, async (request, reply) => {
      await revokePersonalToken(ctx, request.auth!.user.id, request.params.id);
      await audit(ctx, { ...auditSource(request), action: 'token.revoked', targetUserId: request.auth!.user.id, details: { pat_id: request.params.id } });
      return reply.code(204).send(null);
    });
  });
}
