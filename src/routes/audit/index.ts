// The audit module: GET /audit for auditors (audit:read), and GET /auth/activity, the caller's own
// security events. Both newest first, cursor-paginated: {events, next_cursor}.
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { permissionsRequired } from '../guards.js';
import { errors, SECURED } from '../../schemas/common.js';
import { ActivityPageResponse, ActivityQuery, AuditPageResponse, AuditQuery } from '../../schemas/admin.js';
import { listAuditEvents, type AuditPage } from '../../security/audit.js';
import { activityEvent, publicAuditEvent } from '../../security/presenters.js';

const DEFAULT_LIMIT = 50;

const page = (p: AuditPage) => ({ events: p.events.map(publicAuditEvent), next_cursor: p.nextCursor });

export default async function auditRoutes(root: FastifyInstance) {
  root.addHook('onRequest', root.requireAuth);
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  const ctx = app.security;

  app.get('/audit', {
    preHandler: permissionsRequired('audit:read'),
    schema: {
      tags: ['audit'], operationId: 'listAuditEvents', summary: 'Security events, newest first', security: SECURED,
      description: 'Filters: user_id (actor or target), action, from (inclusive), to (exclusive). Follow next_cursor for older events.',
      querystring: AuditQuery,
      response: { 200: AuditPageResponse, ...errors(400, 401, 403) },
    },
  }, async (request) => {
    const q = request.query;
    return page(await listAuditEvents(ctx, {
      userId: q.user_id, action: q.action, from: q.from ? new Date(q.from) : undefined, to: q.to ? new Date(q.to) : undefined,
      cursor: q.cursor, limit: q.limit ?? DEFAULT_LIMIT,
    }));
  });

  // The caller's own account activity lives in the auth module's URL space but reads the audit log.
  app.get('/auth/activity', {
    schema: {
      tags: ['auth'], operationId: 'getActivity', summary: 'Your own security events, newest first', security: SECURED,
      description: 'Logins (and failed attempts), logouts, and changes made to or by your account. Changes another principal ' +
        'made carry an actor label (administrator, system), never that principal\'s id, IP or user agent.',
      querystring: ActivityQuery,
      response: { 200: ActivityPageResponse, ...errors(400, 401) },
    },
  }, async (request) => {
    const viewer = request.auth!.user.id;
    const p = await listAuditEvents(ctx, { userId: viewer, cursor: request.query.cursor, limit: request.query.limit ?? DEFAULT_LIMIT });
    return { events: p.events.map((e) => activityEvent(e, viewer)), next_cursor: p.nextCursor };
  });
}
