// The account lifecycle views: confirm (SECURITY_CONFIRMABLE), reset (SECURITY_RECOVERABLE), change
// password (SECURITY_CHANGEABLE), verify (re-authentication) and change email. Emails go through the
// outbox (security/outbox.ts): these handlers never wait for SMTP.
import type { FastifyInstance, FastifyRequest, onRequestAsyncHookHandler } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { notFound } from '../../errors.js';
import type { RequestAuth } from '../../plugins/authentication.js';
import { fresh, interactiveOnly } from '../guards.js';
import { confirmEmail, requestConfirmation } from '../../security/confirmable.js';
import { checkResetLink, requestPasswordReset, resetPassword } from '../../security/recoverable.js';
import { changePassword, confirmEmailChange, requestEmailChange, verifySession } from '../../security/changeable.js';
import { bodyErrors, errors, MessageResponse, SECURED } from '../../schemas/common.js';
import { audit } from '../../security/audit.js';
import { auditSource } from '../request-source.js';
import { LoginResponse, UserResponse } from '../../schemas/auth.js';
import {
  ChangeEmailBody, ChangePasswordBody, ConfirmResponse, EmailBody, EmptyBody, LinkTokenParam, ResetLinkResponse,
  ResetPasswordBody, VerifyBody,
} from '../../schemas/account.js';
import { publicUser } from '../../security/presenters.js';
import { sessionResponder } from './session-response.js';

const TAG = ['auth'];
/** The one answer to "send me a link", whether or not the address has an account. */
const GENERIC_SENT = 'If that address has an account, a message with instructions is on its way.';

export default async function accountRoutes(root: FastifyInstance) {
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  const ctx = app.security;
  const { config } = ctx;
  const prefix = config.SECURITY_URL_PREFIX;
  const { clientInfo, tokenResponse } = sessionResponder(app);

  /** A switched-off feature is 404 before anything else (body validation included). */
  const feature = (enabled: boolean): onRequestAsyncHookHandler => async () => {
    if (!enabled) throw notFound('Route');
  };
  const recoverable = feature(config.SECURITY_RECOVERABLE);
  const confirmable = feature(config.SECURITY_CONFIRMABLE);
  const changeable = feature(config.SECURITY_CHANGEABLE);

  // ---- public: the links work on any device, without a session ----
  app.register(async (pub) => {
    const p = pub.withTypeProvider<TypeBoxTypeProvider>();

    p.post(`${prefix}/reset`, {
      config: { rateLimitClass: 'auth' },
      onRequest: recoverable,
      schema: {
        tags: TAG, operationId: 'requestPasswordReset', summary: 'Email a password reset link', security: [],
        description: 'Always 202 with the same body, whether or not the address has an account (and the same work). ' +
          'At most one message per address per minute. The link is valid for SECURITY_RESET_PASSWORD_WITHIN.',
        body: EmailBody,
        response: { 202: MessageResponse, ...bodyErrors(404) },
      },
    }, async (request, reply) => {
      await requestPasswordReset(ctx, request.body.email);
      await audit(ctx, { ...auditSource(request), action: 'password.reset_requested', details: { email: request.body.email } });
      return reply.code(202).send({ message: GENERIC_SENT });
    });

    p.get(`${prefix}/reset/:token`, {
      onRequest: recoverable,
      schema: {
        tags: TAG, operationId: 'checkPasswordResetLink', summary: 'Check a password reset link without using it', security: [],
        params: LinkTokenParam,
        response: { 200: ResetLinkResponse, ...errors(400, 404) },
      },
    }, async (request) => {
      const user = await checkResetLink(ctx, request.params.token);
      return { valid: true as const, email: user.email };
    });

    p.post(`${prefix}/reset/:token`, {
      config: { rateLimitClass: 'auth' },
      onRequest: recoverable,
      schema: {
        tags: TAG, operationId: 'resetPassword', summary: 'Set a new password with a reset link', security: [],
        description: 'Sets the password (policy-checked), ends every session and token of the account, uses up the link ' +
          'and emails a notice. 400 LINK_INVALID / LINK_EXPIRED for a bad, used or old link.',
        params: LinkTokenParam,
        body: ResetPasswordBody,
        response: { 200: MessageResponse, ...bodyErrors(404) },
      },
    }, async (request) => {
      const userId = await resetPassword(ctx, request.params.token, request.body.password);
      await audit(ctx, { ...auditSource(request, userId), action: 'password.reset', targetUserId: userId });
      return { message: 'Your password has been reset. Log in with the new password.' };
    });

    p.post(`${prefix}/confirm`, {
      config: { rateLimitClass: 'auth' },
      onRequest: confirmable,
      schema: {
        tags: TAG, operationId: 'requestConfirmation', summary: 'Email a new confirmation link', security: [],
        description: 'Always 202 with the same body, whether or not the address has an unconfirmed account. ' +
          'At most one message per address per minute.',
        body: EmailBody,
        response: { 202: MessageResponse, ...bodyErrors(404) },
      },
    }, async (request, reply) => {
      await requestConfirmation(ctx, request.body.email);
      return reply.code(202).send({ message: GENERIC_SENT });
    });

    p.get(`${prefix}/confirm/:token`, {
      onRequest: confirmable,
      schema: {
        tags: TAG, operationId: 'confirmEmail', summary: 'Confirm an email address with the emailed link', security: [],
        description: 'Idempotent: an address that is already confirmed answers 200 too.',
        params: LinkTokenParam,
        response: { 200: ConfirmResponse, ...errors(400, 404) },
      },
    }, async (request) => {
      const confirmed = await confirmEmail(ctx, request.params.token);
      if (confirmed.confirmed) await audit(ctx, { ...auditSource(request, confirmed.userId), action: 'email.confirmed', targetUserId: confirmed.userId });
      return { confirmed: true as const };
    });
  });

  // ---- public, no body needed: the new address's link ----
  app.register(async (scope) => {
    // An empty request validates as {} (fields are still rejected).
    scope.addHook('preValidation', async (request) => {
      if (request.body === undefined) request.body = {};
    });
    scope.withTypeProvider<TypeBoxTypeProvider>().post(`${prefix}/change-email/:token`, {
      schema: {
        tags: TAG, operationId: 'confirmEmailChange', summary: 'Make the new email address the account\'s address', security: [],
        description: 'Opened from the link sent to the new address; works without a session (another device). ' +
          '409 EMAIL_TAKEN when the address was taken meanwhile.',
        params: LinkTokenParam,
        body: EmptyBody,
        response: { 200: UserResponse, ...bodyErrors(409) },
      },
    }, async (request) => {
      const user = await confirmEmailChange(ctx, request.params.token);
      await audit(ctx, { ...auditSource(request, user.id), action: 'email.changed', targetUserId: user.id });
      return { user: publicUser(user) };
    });
  });

  // ---- the signed-in user ----
  app.register(async (scope) => {
    scope.addHook('onRequest', scope.requireAuth);
    const s = scope.withTypeProvider<TypeBoxTypeProvider>();
    const auth = (req: FastifyRequest): RequestAuth => req.auth!;

    s.post(`${prefix}/change-password`, {
      onRequest: changeable,
      preHandler: interactiveOnly,
      schema: {
        tags: TAG, operationId: 'changePassword', summary: 'Change your password', security: SECURED,
        description: 'Every other session and token dies; this client gets a new token pair and cookie (the login answer; the cookie ' +
          'is persistent when the login was made with remember:true). Wrong current passwords count toward the account lockout ' +
          '(429 ACCOUNT_LOCKED while locked). ' +
          'A wrong current password is a field error on `password`; the new one must differ and pass the policy. A notice is emailed.',
        body: ChangePasswordBody,
        response: { 200: LoginResponse, ...bodyErrors(401, 403, 404) },
      },
    }, async (request, reply) => {
      const a = auth(request);
      const r = await changePassword(ctx, a.user, request.body.password, request.body.new_password, clientInfo(request), auditSource(request),
        { remember: a.session.remember });
      await audit(ctx, { ...auditSource(request), action: 'password.changed', targetUserId: r.user.id });
      return tokenResponse(reply, r.user, r.session, r.refreshToken, r.session.remember);
    });

    s.post(`${prefix}/verify`, {
      preHandler: interactiveOnly,
      schema: {
        tags: TAG, operationId: 'verifyPassword', summary: 'Re-authenticate: mark this session fresh', security: SECURED,
        description: 'Needed before sensitive actions when the last password entry is older than SECURITY_FRESHNESS (401 REAUTH_REQUIRED). ' +
          'A wrong password is a field error and counts toward the account lockout; while the account is locked: 429 ACCOUNT_LOCKED.',
        body: VerifyBody,
        response: { 200: MessageResponse, ...bodyErrors(401, 403) },
      },
    }, async (request) => {
      const a = auth(request);
      await verifySession(ctx, a.user, a.session.id, request.body.password, auditSource(request));
      await audit(ctx, { ...auditSource(request), action: 'session.verified', targetUserId: a.user.id });
      return { message: 'Verified' };
    });

    s.post(`${prefix}/change-email`, {
      preHandler: [interactiveOnly, fresh(config.SECURITY_FRESHNESS, () => ctx.clock.now())],
      schema: {
        tags: TAG, operationId: 'requestEmailChange', summary: 'Change your email address (a link goes to the new one)', security: SECURED,
        description: 'Needs a fresh session (else 401 REAUTH_REQUIRED; see POST /verify). A wrong password counts toward the account lockout ' +
          '(429 ACCOUNT_LOCKED while locked). Sends a link to the new address and a notice ' +
          'to the current one; nothing changes until the link is used. 409 EMAIL_TAKEN (202 with SECURITY_RETURN_GENERIC_RESPONSES).',
        body: ChangeEmailBody,
        response: { 202: MessageResponse, ...bodyErrors(401, 403, 409) },
      },
    }, async (request, reply) => {
      await requestEmailChange(ctx, auth(request).user, request.body.email, request.body.password, auditSource(request));
      await audit(ctx, { ...auditSource(request), action: 'email.change_requested', targetUserId: auth(request).user.id, details: { new_email: request.body.email } });
      return reply.code(202).send({ message: 'Check the new address for a confirmation link.' });
    });
  });
}
