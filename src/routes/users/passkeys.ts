// A user's passkeys in the admin API: list and remove (e.g. a lost phone). Same guards and scope as
// every other action on a user (routes/users/index.ts): users:read / users:write, officers only in
// their county (others 404).
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ROLE_ADMIN, ROLE_OFFICER } from '../../security/role-names.js';
import { anyOf, countyRoleRequired, permissionsRequired, rolesAccepted } from '../guards.js';
import { errors, IdParam, SECURED } from '../../schemas/common.js';
import { UserPasskeyParams, WanCredentialsResponse } from '../../schemas/passwordless.js';
import { listUserPasskeys, publicCredential, removeUserPasskey } from '../../security/webauthn.js';
import { actorOf } from '../request-source.js';

const TAGS = ['users'];
const inUserScope = anyOf(rolesAccepted(ROLE_ADMIN), countyRoleRequired(ROLE_OFFICER));

export default async function userPasskeyRoutes(root: FastifyInstance) {
  root.addHook('onRequest', root.requireAuth);
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  const ctx = app.security;

  app.get('/users/:id/passkeys', {
    preHandler: [permissionsRequired('users:read'), inUserScope],
    schema: {
      tags: TAGS, operationId: 'listUserPasskeys', summary: "A user's passkeys and security keys", security: SECURED,
      description: 'Names, usage, dates and transports; never a public key. 404 outside your scope.',
      params: IdParam,
      response: { 200: WanCredentialsResponse, ...errors(400, 401, 403, 404) },
    },
  }, async (request) => ({ credentials: (await listUserPasskeys(ctx, actorOf(request), request.params.id)).map(publicCredential) }));

  app.delete('/users/:id/passkeys/:credential_id', {
    preHandler: [permissionsRequired('users:write'), inUserScope],
    schema: {
      tags: TAGS, operationId: 'removeUserPasskey', summary: "Remove one of a user's passkeys", security: SECURED,
      description: 'The key stops working at once (audited as wan.deleted with you as actor). 404 outside your scope or for an unknown key.',
      params: UserPasskeyParams,
      response: { 204: Type.Null({ description: 'Removed' }), ...errors(400, 401, 403, 404) },
    },
  }, async (request, reply) => {
    await removeUserPasskey(ctx, actorOf(request), request.params.id, request.params.credential_id);
    return reply.code(204).send(null);
  });
}
