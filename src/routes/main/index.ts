// Health, readiness and the role-based dashboard.
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { AppError } from '../../errors.js';
import { errors, Nullable, UserRef } from '../../schemas/common.js';
import { ROLE_ADMIN, ROLE_OFFICER } from '../../security/role-names.js';
import { publicUser } from '../../security/presenters.js';
import { adminOverview, citizenActivity, officerOverview } from '../../security/dashboard.js';

const NamedRef = Nullable(Type.Object({ id: Type.Integer(), name: Type.String() }, { additionalProperties: false }));
const AdminData = Type.Object({
  users_by_role: Type.Array(Type.Object({ role: Type.String(), count: Type.Integer() })),
  users_by_county: Type.Array(Type.Object({ county_id: Nullable(Type.Integer()), county: Nullable(Type.String()), count: Type.Integer() })),
  recent_registrations: Type.Array(Type.Object({ id: Type.Integer(), email: Type.String(), created_at: Type.String() })),
  locked_accounts: Type.Array(Type.Object({ email: Type.String(), locked_until: Type.String() })),
}, { additionalProperties: false, title: 'AdminDashboard' });
const OfficerData = Type.Object({
  county: NamedRef,
  department: NamedRef,
  citizens: Type.Array(Type.Object({ id: Type.Integer(), email: Type.String(), first_name: Nullable(Type.String()), last_name: Nullable(Type.String()) })),
}, { additionalProperties: false, title: 'OfficerDashboard' });
const CitizenData = Type.Object({
  profile: UserRef,
  recent_activity: Type.Array(Type.Object({ event: Type.String(), at: Type.String(), ip: Nullable(Type.String()), user_agent: Nullable(Type.String()) })),
}, { additionalProperties: false, title: 'CitizenDashboard' });

const DashboardResponse = Type.Object({
  message: Type.String(),
  user_id: Type.Integer(),
  user_roles: Type.Array(Type.String()),
  data: Type.Union([AdminData, OfficerData, CitizenData]),
  status: Type.Literal('success'),
}, { additionalProperties: false });

export default async function mainRoutes(root: FastifyInstance) {
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  const ctx = app.security;

  app.get('/health', {
    config: { database: false },
    schema: {
      tags: ['main'], operationId: 'health', summary: 'Liveness: the process answers', security: [],
      response: { 200: Type.Object({ status: Type.Literal('ok') }, { additionalProperties: false }), ...errors() },
    },
  }, async () => ({ status: 'ok' as const }));

  app.get('/ready', {
    schema: {
      tags: ['main'], operationId: 'ready', summary: 'Readiness: the database answers', security: [],
      response: {
        200: Type.Object({ status: Type.Literal('ready'), database: Type.Literal('up') }, { additionalProperties: false }),
        ...errors(),
      },
    },
    config: { database: false },
  }, async () => {
    // The breaker's probe runs on its own connection, so a busy pool does not make /ready slow;
    // while the breaker is open the answer is immediate.
    if (!app.database.up || !(await app.database.check())) {
      throw new AppError(503, 'SERVICE_UNAVAILABLE', 'The database is not reachable', { headers: { 'retry-after': String(app.database.retryAfterSeconds) } });
    }
    return { status: 'ready' as const, database: 'up' as const };
  });

  app.register(async (scope) => {
    scope.addHook('onRequest', scope.requireAuth);
    scope.withTypeProvider<TypeBoxTypeProvider>().get('/dashboard', {
      schema: {
        tags: ['main'], operationId: 'dashboard', summary: 'Role-based dashboard data',
        description: 'data depends on the highest role: County Admin > Department Officer > Citizen. The staff views need ' +
          'users:read too (a personal access token without it gets the citizen view).',
        security: [{ bearerAuth: [] }, { cookieAuth: [] }],
        response: { 200: DashboardResponse, ...errors(401) },
      },
    }, async (request) => {
      const { user } = request.auth!;
      // The staff views list other users: they need users:read as well as the role, so a personal access
      // token without it (the intersection of its permissions and the owner's) sees the citizen view.
      const readsUsers = user.permissions.includes('users:read');
      const data = readsUsers && user.roles.includes(ROLE_ADMIN)
        ? await adminOverview(ctx.db, ctx.clock.now())
        : readsUsers && user.roles.includes(ROLE_OFFICER)
          ? await officerOverview(ctx.db, user.countyId, user.departmentId)
          : { profile: publicUser(user), recent_activity: await citizenActivity(ctx.db, user.id) };
      return {
        message: `Welcome to your dashboard, ${user.email}!`,
        user_id: user.id,
        user_roles: user.roles,
        data,
        status: 'success' as const,
      };
    });
  });
}
