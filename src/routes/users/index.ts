// The users module (/users): administration of accounts. County Admins work on every user; Department
// Officers read the users of their own county only (others are 404, so ids do not leak). Every write
// obeys the delegation rule (security/delegation.ts, docs/authorization.md): grant only roles within
// your permissions, act only on accounts no stronger than you; otherwise 403 and nothing written.
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { ROLE_ADMIN, ROLE_OFFICER } from '../../security/role-names.js';
import { anyOf, countyRoleRequired, permissionsRequired, rolesAccepted } from '../guards.js';
import { bodyErrors, errors, IdParam, SECURED } from '../../schemas/common.js';
import { UserResponse } from '../../schemas/auth.js';
import { CreateUserBody, PatchUserBody, UserListQuery, UserListResponse, UserRoleParams, UserRolesBody } from '../../schemas/admin.js';
import {
  activateAccount, createAccount, deactivateAccount, grantRole, listUsersJson, requireUserInScope, resetAccountAccess,
  revokeRole, scopeOf, setAccountRoles, unlockAccount, updateAccount,
} from '../../security/users.js';
import { actorOf } from '../request-source.js';
import { publicUser } from '../../security/presenters.js';

const TAGS = ['users'];
const DEFAULT_PER_PAGE = 20;

// Admins anywhere; officers only with a county assigned (their scope). Everyone else: 403.
const inUserScope = anyOf(rolesAccepted(ROLE_ADMIN), countyRoleRequired(ROLE_OFFICER));
const canRead = [permissionsRequired('users:read'), inUserScope];
const canWrite = [permissionsRequired('users:write'), inUserScope];
// Granting roles is granting permissions: it needs roles:write as well.
const canAssignRoles = [permissionsRequired('users:write', 'roles:write'), inUserScope];

export default async function userRoutes(root: FastifyInstance) {
  root.addHook('onRequest', root.requireAuth);
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  const ctx = app.security;

  app.get('/users', {
    preHandler: canRead,
    schema: {
      tags: TAGS, operationId: 'listUsers', summary: 'List users (paginated, filtered, sorted)', security: SECURED,
      description: 'Officers see only the users of their own county. per_page is at most 100 (101 is 400). ' +
        'Each instance caches pages briefly and drops them on any user or role change made through any instance.',
      querystring: UserListQuery,
      response: { 200: UserListResponse, ...errors(400, 401, 403) },
    },
  }, async (request, reply) => {
    const q = request.query;
    const scope = scopeOf(request.auth!.user);
    const query = {
      page: q.page ?? 1, perPage: q.per_page ?? DEFAULT_PER_PAGE, q: q.q, role: q.role, active: q.active, countyId: q.county_id, sort: q.sort,
    };
    // Pages are cached per instance and dropped by any user or role change on any instance
    // (security/page-cache.ts): the same protocol as the authentication state.
    const key = JSON.stringify([scope, query]);
    const nowMs = ctx.clock.now().getTime();
    let body = app.pageCache.get(key, nowMs);
    if (body === undefined) {
      const loadedAt = app.pageCache.snapshot();
      body = await listUsersJson(ctx, scope, query);
      app.pageCache.set(key, body, nowMs, loadedAt);
    }
    // PostgreSQL wrote the JSON (security/users.listUsersJson) in the shape of UserListResponse: Fastify
    // sends a string with a JSON content type as it is (the cast tells the type provider so).
    return reply.type('application/json; charset=utf-8').send(body as never);
  });

  app.post('/users', {
    config: { idempotent: true },
    preHandler: canWrite,
    schema: {
      tags: TAGS, operationId: 'createUser', summary: 'Create a user', security: SECURED,
      description: 'An unknown role is 400 (field roles); a taken email is 409 EMAIL_TAKEN; the password policy applies. ' +
        '403 when a role carries a permission you do not hold, or is County Admin and you are not one (nothing is created).',
      body: CreateUserBody,
      response: { 201: UserResponse, ...bodyErrors(401, 403, 409) },
    },
  }, async (request, reply) => {
    const b = request.body;
    const recorder = request.idempotency?.recorder;
    const user = await createAccount(ctx, actorOf(request), {
      email: b.email, password: b.password, firstName: b.first_name, lastName: b.last_name, phoneNumber: b.phone_number,
      address: b.address, roles: b.roles, active: b.active, confirmed: b.confirmed, countyId: b.county_id, departmentId: b.department_id,
    }, {
      // the Idempotency-Key's answer commits with the account (a retry never meets 409 EMAIL_TAKEN)
      beforeCommit: async (tx, created) => { await recorder?.record(tx, 201, { user: publicUser(created) }); },
    });
    return reply.code(201).send({ user: publicUser(user) });
  });

  app.get('/users/:id', {
    preHandler: canRead,
    schema: {
      tags: TAGS, operationId: 'getUser', summary: 'Read a user', security: SECURED,
      params: IdParam,
      response: { 200: UserResponse, ...errors(400, 401, 403, 404) },
    },
  }, async (request) => ({ user: publicUser(await requireUserInScope(ctx.db, scopeOf(request.auth!.user), request.params.id)) }));

  app.patch('/users/:id', {
    preHandler: canWrite,
    schema: {
      tags: TAGS, operationId: 'updateUser', summary: 'Update profile, county or department', security: SECURED,
      description: "department_id must belong to the user's county (400 otherwise). 403 when the user holds a permission you do not.",
      params: IdParam,
      body: PatchUserBody,
      response: { 200: UserResponse, ...bodyErrors(401, 403, 404) },
    },
  }, async (request) => {
    const b = request.body;
    const user = await updateAccount(ctx, actorOf(request), request.params.id, {
      firstName: b.first_name, lastName: b.last_name, phoneNumber: b.phone_number, address: b.address,
      countyId: b.county_id, departmentId: b.department_id,
    });
    return { user: publicUser(user) };
  });

  const actions = [
    {
      path: 'deactivate', fn: deactivateAccount, operationId: 'deactivateUser', summary: 'Deactivate a user',
      description: 'Every session and token of the user dies at once. You cannot deactivate yourself, nor the last active County Admin (409).',
      statuses: [400, 401, 403, 404, 409],
    },
    { path: 'activate', fn: activateAccount, operationId: 'activateUser', summary: 'Activate a user', description: undefined, statuses: [400, 401, 403, 404] },
    {
      path: 'unlock', fn: unlockAccount, operationId: 'unlockUser', summary: 'Clear failed logins and lift a lockout',
      description: 'Safe on an account that is not locked.', statuses: [400, 401, 403, 404],
    },
    {
      path: 'reset-access', fn: resetAccountAccess, operationId: 'resetUserAccess', summary: 'Invalidate every session and token of a user',
      description: 'Rotates fs_uniquifier and revokes every session and two-factor authentication.',
      statuses: [400, 401, 403, 404],
    },
  ] as const;
  for (const a of actions) {
    app.post(`/users/:id/${a.path}`, {
      preHandler: canWrite,
      schema: {
        tags: TAGS, operationId: a.operationId, summary: a.summary, security: SECURED,
        params: IdParam,
        description: [a.description, '403 when the user holds a permission you do not (only a County Admin acts on a County Admin).']
          .filter(Boolean).join(' '),
        response: { 200: UserResponse, ...errors(...a.statuses) },
      },
    }, async (request) => ({ user: publicUser(await a.fn(ctx, actorOf(request), request.params.id)) }));
  }

  app.put('/users/:id/roles', {
    preHandler: canAssignRoles,
    schema: {
      tags: TAGS, operationId: 'setUserRoles', summary: "Replace a user's roles", security: SECURED,
      description: 'The full set of role names. An unknown role is 400 (field roles). Takes effect on the next request. ' +
        '403 unless the user holds no permission you lack and every added role is within your permissions.',
      params: IdParam,
      body: UserRolesBody,
      response: { 200: UserResponse, ...bodyErrors(401, 403, 404, 409) },
    },
  }, async (request) => ({ user: publicUser(await setAccountRoles(ctx, actorOf(request), request.params.id, request.body.roles)) }));

  app.post('/users/:id/roles/:role', {
    preHandler: canAssignRoles,
    schema: {
      tags: TAGS, operationId: 'addUserRole', summary: 'Give a user a role', security: SECURED,
      description: 'Idempotent. An unknown role is 404. 403 when the role or the user holds a permission you do not.',
      params: UserRoleParams,
      response: { 200: UserResponse, ...errors(400, 401, 403, 404) },
    },
  }, async (request) => ({ user: publicUser(await grantRole(ctx, actorOf(request), request.params.id, request.params.role)) }));

  app.delete('/users/:id/roles/:role', {
    preHandler: canAssignRoles,
    schema: {
      tags: TAGS, operationId: 'removeUserRole', summary: 'Take a role from a user', security: SECURED,
      description: 'Idempotent. An unknown role is 404; the last active County Admin keeps the role (409). 403 when the user ' +
        'holds a permission you do not; only a County Admin takes County Admin away.',
      params: UserRoleParams,
      response: { 200: UserResponse, ...errors(400, 401, 403, 404, 409) },
    },
  }, async (request) => ({ user: publicUser(await revokeRole(ctx, actorOf(request), request.params.id, request.params.role)) }));
}
