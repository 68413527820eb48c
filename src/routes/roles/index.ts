// The roles module (/roles): roles and their permissions. Changes apply on the next request of every
// user holding the role (permissions are read per request).
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { permissionsRequired } from '../guards.js';
import { bodyErrors, errors, IdParam, SECURED } from '../../schemas/common.js';
import { CreateRoleBody, DeleteRoleQuery, PatchRoleBody, RoleListResponse, RoleResponse } from '../../schemas/admin.js';
import { createRoleAudited, deleteRole, getRole, listRoles, updateRole } from '../../security/roles.js';
import { publicRole } from '../../security/presenters.js';
import { actorOf } from '../request-source.js';

const TAGS = ['roles'];
const canRead = permissionsRequired('roles:read');
const canWrite = permissionsRequired('roles:write');

export default async function roleRoutes(root: FastifyInstance) {
  root.addHook('onRequest', root.requireAuth);
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  const ctx = app.security;

  app.get('/roles', {
    preHandler: canRead,
    schema: {
      tags: TAGS, operationId: 'listRoles', summary: 'List roles with their permissions', security: SECURED,
      response: { 200: RoleListResponse, ...errors(401, 403) },
    },
  }, async () => ({ roles: (await listRoles(ctx)).map(publicRole) }));

  app.post('/roles', {
    preHandler: canWrite,
    schema: {
      tags: TAGS, operationId: 'createRole', summary: 'Create a role', security: SECURED,
      description: 'Permissions are resource:action strings (^[a-z]+:[a-z*]+$). A taken name is 409 CONFLICT. ' +
        '403 when a permission is not yours (a County Admin signed in interactively may use any).',
      body: CreateRoleBody,
      response: { 201: RoleResponse, ...bodyErrors(401, 403, 409) },
    },
  }, async (request, reply) => {
    const role = await createRoleAudited(ctx, actorOf(request), request.body);
    return reply.code(201).send({ role: publicRole(role) });
  });

  app.get('/roles/:id', {
    preHandler: canRead,
    schema: {
      tags: TAGS, operationId: 'getRole', summary: 'Read a role', security: SECURED,
      params: IdParam,
      response: { 200: RoleResponse, ...errors(400, 401, 403, 404) },
    },
  }, async (request) => ({ role: publicRole(await getRole(ctx, request.params.id)) }));

  app.patch('/roles/:id', {
    preHandler: canWrite,
    schema: {
      tags: TAGS, operationId: 'updateRole', summary: 'Rename a role or change its description or permissions', security: SECURED,
      description: 'permissions is the complete set. Seeded roles can be edited but not renamed (409); a taken name is 409. ' +
        '403 unless you hold every permission the role has before and after the change; only a County Admin edits County Admin.',
      params: IdParam,
      body: PatchRoleBody,
      response: { 200: RoleResponse, ...bodyErrors(401, 403, 404, 409) },
    },
  }, async (request) => ({ role: publicRole(await updateRole(ctx, actorOf(request), request.params.id, request.body)) }));

  app.delete('/roles/:id', {
    preHandler: canWrite,
    schema: {
      tags: TAGS, operationId: 'deleteRole', summary: 'Delete a role', security: SECURED,
      description: 'A role still assigned to users is 409 unless force=true (the assignments go too). Seeded roles cannot be deleted (409). ' +
        '403 when the role carries a permission you do not hold.',
      params: IdParam,
      querystring: DeleteRoleQuery,
      response: { 204: Type.Null({ description: 'Deleted' }), ...errors(400, 401, 403, 404, 409) },
    },
  }, async (request, reply) => {
    await deleteRole(ctx, actorOf(request), request.params.id, { force: request.query.force ?? false });
    return reply.code(204).send(null);
  });
}
