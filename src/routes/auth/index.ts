// The security views: register, login, logout, refresh, and the caller's own account under /auth.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { RequestAuth } from '../../plugins/authentication.js';
import { interactiveOnly, permissionsRequired } from '../guards.js';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { AppError, notFound } from '../../errors.js';
import { registerUser, type Registration } from '../../security/auth.js';
import { passwordLogin } from '../../security/login.js';
import { resetUserAccess, updateProfile } from '../../security/datastore.js';
import { notifyExistingRegistration } from '../../security/confirmable.js';
import { LoginOrTwoFactorResponse, TwoFactorSetupReplayResponse, TwoFactorSetupRequiredResponse } from '../../schemas/two-factor.js';
import { listSessions, revokeByRefreshToken, revokeOwnSession, revokeSession, rotateRefreshToken } from '../../security/sessions.js';
import { bodyErrors, errors, MessageResponse, UuidParam, SECURED } from '../../schemas/common.js';
import {
  CsrfResponse, CurrentUserResponse, LoginBody, LogoutBody, ProfilePatchBody, RefreshBody,
  RefreshResponse, RegisterBody, RegisterResponse, SessionsResponse, UserResponse,
} from '../../schemas/auth.js';
import { publicSession, publicUser } from '../../security/presenters.js';
import { sessionResponder } from './session-response.js';
import { audit } from '../../security/audit.js';
import { auditSource } from '../request-source.js';

const TAG = ['auth'];

export default async function authRoutes(root: FastifyInstance) {
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  const ctx = app.security;
  const { config } = ctx;
  const prefix = config.SECURITY_URL_PREFIX;

  const { clientInfo, tokenResponse, loginAnswer, setupOrSessionBody, setSessionCookieOf } = sessionResponder(app);

  // ---- public: no credentials needed ----
  app.register(async (pub) => {
    const p = pub.withTypeProvider<TypeBoxTypeProvider>();

    p.post(`${prefix}/register`, {
      config: { authSync: false, rateLimitClass: 'auth', idempotent: true },
      schema: {
        tags: TAG, security: [], operationId: 'register', summary: 'Create an account (role Citizen)',
        description: 'With SECURITY_RETURN_GENERIC_RESPONSES every well-formed request gets 202 and no account details. ' +
          'Without confirmation the new account is logged in (token pair + cookie), unless its roles are in ' +
          'SECURITY_TWO_FACTOR_REQUIRED_ROLES: then the answer is the login\'s {tf_required, tf_setup_required, tf_token} and no session.',
        body: RegisterBody,
        response: { 201: Type.Union([RegisterResponse, TwoFactorSetupRequiredResponse, TwoFactorSetupReplayResponse]), 202: MessageResponse, ...bodyErrors(404, 409) },
      },
    }, async (request, reply) => {
      if (!config.SECURITY_REGISTERABLE) throw notFound('Route');
      const b = request.body;
      const generic = config.SECURITY_RETURN_GENERIC_RESPONSES;
      const checkEmail = { message: 'Check your email to continue.' };
      // The answer is recorded with the Idempotency-Key inside the registration's transaction: the
      // account, its audit rows, its session and the answer a retry will get commit together.
      const recorder = request.idempotency?.recorder;
      let answer: { status: 201 | 202; body: ReturnType<typeof setupOrSessionBody> | { user: ReturnType<typeof publicUser> } | typeof checkEmail } | undefined;
      let registration: Registration;
      try {
        registration = await registerUser(ctx, {
          email: b.email, password: b.password, firstName: b.first_name, lastName: b.last_name,
          phoneNumber: b.phone_number, address: b.address, countyId: b.county_id,
        }, {
          source: auditSource(request),
          login: generic || config.SECURITY_CONFIRMABLE ? null : clientInfo(request),
          beforeCommit: async (tx, r) => {
            answer = generic ? { status: 202, body: checkEmail }
              : r.login ? { status: 201, body: setupOrSessionBody(r.login) } : { status: 201, body: { user: publicUser(r.user) } };
            await recorder?.record(tx, answer.status, answer.body);
          },
        });
      } catch (err) {
        if (generic && err instanceof AppError && err.code === 'EMAIL_TAKEN') {
          // the owner hears about it; the caller gets the same answer as a new registration
          await notifyExistingRegistration(ctx, b.email, async (tx) => { await recorder?.record(tx, 202, checkEmail); });
          return reply.code(202).send(checkEmail);
        }
        throw err;
      }
      if (registration.login) setSessionCookieOf(reply, registration.login);
      return reply.code(answer!.status).send(answer!.body);
    });

    p.post(`${prefix}/login`, {
      config: { authSync: false, rateLimitClass: 'auth' },
      schema: {
        tags: TAG, security: [], operationId: 'login', summary: 'Log in with email and password',
        description: 'Returns the token pair and sets the HttpOnly session cookie. Unknown email and wrong password are indistinguishable. ' +
          'With two-factor authentication on, answers {tf_required, tf_token, tf_method} instead (no session, no cookie): ' +
          'complete with POST /tf-validate. A role in SECURITY_TWO_FACTOR_REQUIRED_ROLES without 2FA answers ' +
          '{tf_required, tf_setup_required, tf_token}: set it up with POST /tf-setup first. ' +
          'SECURITY_LOCKOUT_THRESHOLD failures for one address within SECURITY_LOCKOUT_WINDOW → 429 ACCOUNT_LOCKED with Retry-After.',
        body: LoginBody,
        response: { 200: LoginOrTwoFactorResponse, ...bodyErrors(401, 403) },
      },
    }, async (request, reply) => {
      const outcome = await passwordLogin(ctx, {
        email: request.body.email, password: request.body.password, remember: request.body.remember ?? false,
        client: clientInfo(request), source: auditSource(request),
      });
      return loginAnswer(reply, outcome);
    });

    p.post(`${prefix}/refresh-token`, {
      config: { rateLimitClass: 'refresh' },
      schema: {
        tags: TAG, security: [], operationId: 'refreshToken', summary: 'Rotate the refresh token and get a new access token',
        description: 'Replaying an already-rotated token revokes the session (reason "reused"), except an identical replay within SECURITY_REFRESH_GRACE_PERIOD, which gets the same new pair.',
        body: RefreshBody,
        response: { 200: RefreshResponse, ...bodyErrors(401) },
      },
    }, async (request, reply) => {
      const r = await rotateRefreshToken(ctx, request.body.refresh_token, auditSource(request));
      // A rotation changes the refresh columns and last_used_at only: a cached copy elsewhere is at
      // worst older, which can only reject (and rejections are re-decided on fresh state). A revocation
      // (reuse) is an error answer, which syncs as usual.
      request.authUnchanged = true;
      return tokenResponse(reply, r.user, r.session, r.refreshToken, r.session.remember);
    });
  });

  // ---- logout: credentials optional, a dead token still gets 204 ----
  app.register(async (scope) => {
    scope.addHook('onRequest', scope.optionalAuth);
    // The body is optional here: an empty request validates as {}.
    scope.addHook('preValidation', async (request) => {
      if (request.body === undefined) request.body = {};
    });
    scope.withTypeProvider<TypeBoxTypeProvider>().post(`${prefix}/logout`, {
      schema: {
        tags: TAG, operationId: 'logout', summary: 'End the current session', security: [...SECURED, {}],
        description: 'Revokes the session named by the bearer token, the cookie, or the refresh_token in the body. Always 204.',
        body: LogoutBody,
        response: { 204: Type.Null({ description: 'Logged out' }), ...bodyErrors(403) },
      },
    }, async (request, reply) => {
      let userId: number | null = null;
      let sessionId: string | null = null;
      if (request.auth && await revokeSession(ctx, request.auth.session.id, 'logout')) {
        userId = request.auth.user.id;
        sessionId = request.auth.session.id;
      }
      const presented = request.body.refresh_token;
      if (presented) userId = (await revokeByRefreshToken(ctx, presented)) ?? userId;
      if (userId !== null) await audit(ctx, { ...auditSource(request, userId), action: 'logout', targetUserId: userId, details: { session_id: sessionId } });
      app.tokens.clearSessionCookie(reply);
      return reply.code(204).send(null);
    });
  });

  // ---- the caller's own account ----
  app.register(async (scope) => {
    scope.addHook('onRequest', scope.requireAuth);
    const s = scope.withTypeProvider<TypeBoxTypeProvider>();
    // requireAuth ran in this scope's onRequest hook, so request.auth is set.
    const auth = (req: FastifyRequest): RequestAuth => req.auth!;

    s.get('/auth/current-user', {
      schema: {
        tags: TAG, operationId: 'getCurrentUser', summary: 'The authenticated user', security: SECURED,
        response: { 200: CurrentUserResponse, ...errors(401) },
      },
    }, async (request) => ({ user: publicUser(auth(request).user), status: 'success' as const }));

    s.patch('/auth/current-user', {
      // A personal access token edits the profile only when it carries profile:write (the intersection).
      preHandler: permissionsRequired('profile:write'),
      schema: {
        tags: TAG, operationId: 'updateCurrentUser', summary: 'Update your own profile fields', security: SECURED,
        description: 'Only first_name, last_name, phone_number and address; any other field is 400.',
        body: ProfilePatchBody,
        response: { 200: UserResponse, ...bodyErrors(401, 403) },
      },
    }, async (request) => {
      const b = request.body;
      const user = await updateProfile(ctx, auth(request).user.id, {
        firstName: b.first_name, lastName: b.last_name, phoneNumber: b.phone_number, address: b.address,
      });
      await audit(ctx, { ...auditSource(request), action: 'profile.updated', targetUserId: user.id, details: { fields: Object.keys(b) } });
      return { user: publicUser(user) };
    });

    s.get('/auth/csrf', {
      schema: {
        tags: TAG, operationId: 'getCsrfToken', summary: 'The CSRF token of the current session', security: SECURED,
        response: { 200: CsrfResponse, ...errors(401) },
      },
    }, async (request) => ({ csrf_token: auth(request).session.csrfToken }));

    s.get('/auth/sessions', {
      preHandler: interactiveOnly,
      schema: {
        tags: TAG, operationId: 'listSessions', summary: 'Your live sessions', security: SECURED,
        description: 'Not with a personal access token (403).',
        response: { 200: SessionsResponse, ...errors(401, 403) },
      },
    }, async (request) => {
      const a = auth(request);
      const rows = await listSessions(ctx, a.user.id);
      return {
        sessions: rows.map((r) => publicSession(r, a.session.id)),
      };
    });

    s.delete('/auth/sessions/:id', {
      preHandler: interactiveOnly,
      schema: {
        tags: TAG, operationId: 'revokeSession', summary: 'End one of your sessions', security: SECURED,
        params: UuidParam,
        response: { 204: Type.Null({ description: 'Session revoked' }), ...errors(400, 401, 403, 404) },
      },
    }, async (request, reply) => {
      const a = auth(request);
      if (!(await revokeOwnSession(ctx, a.user.id, request.params.id))) throw notFound('Session');
      await audit(ctx, { ...auditSource(request), action: 'session.revoked', targetUserId: a.user.id, details: { session_id: request.params.id } });
      if (request.params.id === a.session.id) app.tokens.clearSessionCookie(reply);
      return reply.code(204).send(null);
    });

    s.post('/auth/logout-all', {
      preHandler: interactiveOnly,
      schema: {
        tags: TAG, operationId: 'logoutAll', summary: 'End every session and invalidate every token', security: SECURED,
        response: { 204: Type.Null({ description: 'All sessions revoked' }), ...errors(401, 403) },
      },
    }, async (request, reply) => {
      await resetUserAccess(ctx, auth(request).user.id, 'logout_all');
      await audit(ctx, { ...auditSource(request), action: 'logout_all', targetUserId: auth(request).user.id });
      app.tokens.clearSessionCookie(reply);
      return reply.code(204).send(null);
    });
  });
}
