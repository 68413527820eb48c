// Two-factor authentication views: the login's second step (POST /tf-validate), setup
// (POST /tf-setup, POST /tf-setup/{tf_setup_token}), POST /tf-disable and POST /mf-recovery-codes.
// The rules live in security/two-factor.ts; see its header for the flows.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { authChallenge } from '../../errors.js';
import { fresh, interactiveOnly } from '../guards.js';
import { completeLogin, completeTwoFactorLogin } from '../../security/login.js';
import {
  beginForcedSetup, beginSetup, confirmSetup, disableTwoFactor, regenerateRecoveryCodes, resendTwoFactorCode,
} from '../../security/two-factor.js';
import { bodyErrors, errors, MessageResponse, SECURED } from '../../schemas/common.js';
import { LoginResponse } from '../../schemas/auth.js';
import {
  RecoveryCodesResponse, TfCodeBody, TfSendCodeBody, TfSetupBody, TfSetupDoneResponse, TfSetupResponse, TfSetupTokenParam, TfValidateBody,
} from '../../schemas/two-factor.js';
import { sessionResponder } from './session-response.js';
import { auditSource } from '../request-source.js';

const TAG = ['two-factor'];

export default async function twoFactorRoutes(root: FastifyInstance) {
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  const ctx = app.security;
  const { config } = ctx;
  const prefix = config.SECURITY_URL_PREFIX;
  const { clientInfo, sessionAnswer } = sessionResponder(app);
  const requireFresh = fresh(config.SECURITY_FRESHNESS, () => ctx.clock.now());

  // ---- public: the second step of a login needs only the tf_token (mobile clients: no cookie) ----
  app.register(async (pub) => {
    pub.withTypeProvider<TypeBoxTypeProvider>().post(`${prefix}/tf-validate`, {
      config: { rateLimitClass: 'totp' },
      schema: {
        tags: TAG, security: [], operationId: 'validateTwoFactor', summary: 'Complete a login with a two-factor code',
        description: 'The tf_token from POST /login and a 6-digit code from the authenticator app (each code works once) or ' +
          'a recovery code (single-use). Answers like a login: token pair, csrf_token and the session cookie. ' +
          'A tf_token dies after 5 wrong codes or SECURITY_TWO_FACTOR_TOKEN_WITHIN; wrong codes count towards the ' +
          'account lockout (429 ACCOUNT_LOCKED).',
        body: TfValidateBody,
        response: { 200: LoginResponse, ...bodyErrors(401) },
      },
    }, async (request, reply) => {
      const outcome = await completeTwoFactorLogin(ctx, {
        tfToken: request.body.tf_token, code: request.body.code, client: clientInfo(request), source: auditSource(request, null),
      });
      return sessionAnswer(reply, outcome);
    });

    pub.withTypeProvider<TypeBoxTypeProvider>().post(`${prefix}/tf-send-code`, {
      config: { rateLimitClass: 'totp' },
      schema: {
        tags: TAG, security: [], operationId: 'sendTwoFactorCode', summary: 'Mail another two-factor code',
        description: 'For a pending login (tf_token) whose method is "email": mails another code to the account\'s address (the ' +
          'login already mailed one). Earlier codes stay good until they expire or one is used. Sends share the account\'s ' +
          'budget SECURITY_US_SEND_LIMIT: 429 RATE_LIMITED with Retry-After beyond it. 409 CONFLICT for another method; 401 ' +
          'TWO_FACTOR_INVALID for a dead tf_token.',
        body: TfSendCodeBody,
        response: { 202: MessageResponse, ...bodyErrors(401, 409) },
      },
    }, async (request, reply) => {
      await resendTwoFactorCode(ctx, request.body.tf_token, auditSource(request, null));
      return reply.code(202).send({ message: 'A new code is on its way to your email address' });
    });
  });

  // ---- setup: a session, or (forced setup at login) the setup tf_token in its place ----
  app.register(async (scope) => {
    scope.addHook('onRequest', scope.optionalAuth);
    const s = scope.withTypeProvider<TypeBoxTypeProvider>();

    s.post(`${prefix}/tf-setup`, {
      preHandler: interactiveOnly,
      schema: {
        tags: TAG, operationId: 'startTwoFactorSetup', summary: 'Start setting up two-factor authentication (app or email)',
        security: [...SECURED, {}],
        description: 'Signed in with a fresh session (else 401 REAUTH_REQUIRED; see POST /verify). Method "authenticator": returns a ' +
          'new secret, its otpauth URI and QR code (PNG data URL), and a tf_setup_token. Method "email": mails a 6-digit code to ' +
          'the account\'s address and returns a tf_setup_token (429 RATE_LIMITED over the send budget SECURITY_US_SEND_LIMIT). ' +
          'Nothing changes until POST /tf-setup/{tf_setup_token} confirms the code. Without a session, `tf_token` from a login ' +
          'that answered tf_setup_required stands in for it. A security key alone is set up with POST /wan-register (usage "secondary").',
        body: TfSetupBody,
        response: { 200: TfSetupResponse, ...bodyErrors(401, 403) },
      },
    }, async (request, reply) => {
      let started;
      const { method } = request.body;
      if (request.body.tf_token !== undefined) {
        started = await beginForcedSetup(ctx, request.body.tf_token, method, auditSource(request, null));
      } else {
        if (!request.auth) throw authChallenge();
        await requireFresh.call(app, request, reply);
        started = await beginSetup(ctx, request.auth.user, method, auditSource(request));
      }
      if (started.method === 'email') return { method: started.method, tf_setup_token: started.setupToken, expires_in: started.expiresIn };
      return {
        method: started.method, secret: started.secret, otpauth_uri: started.otpauthUri, qr_code: started.qrCode,
        tf_setup_token: started.setupToken, expires_in: started.expiresIn,
      };
    });

    s.post(`${prefix}/tf-setup/:tf_setup_token`, {
      config: { rateLimitClass: 'totp' },
      preHandler: interactiveOnly,
      schema: {
        tags: TAG, operationId: 'confirmTwoFactorSetup', summary: 'Switch two-factor authentication on with a code from the app or the email',
        security: [...SECURED, {}],
        description: 'Returns 10 recovery codes (shown once, stored hashed; each works once). Replaces an earlier ' +
          'method (authenticator or email; security keys stay). A mailed code works once and dies after 5 wrong tries. Every other session and personal access token of the user ends (as with a password change); this one stays. A token from a forced setup at login needs no session and also completes the login ' +
          '(user, token pair, csrf_token and the session cookie). 400 TWO_FACTOR_INVALID for a wrong code or a bad or expired token.',
        params: TfSetupTokenParam,
        body: TfCodeBody,
        response: { 200: TfSetupDoneResponse, ...bodyErrors(401, 403) },
      },
    }, async (request, reply) => {
      const done = await confirmSetup(ctx, request.params.tf_setup_token, request.body.code, request.auth?.user.id ?? null, auditSource(request),
        request.auth?.session.id ?? null);
      if (!done.login) return { recovery_codes: done.recoveryCodes };
      const outcome = await completeLogin(ctx, {
        user: done.user, attempt: null, method: done.login.firstFactor, secondFactor: 'setup', remember: done.login.remember,
        client: clientInfo(request), source: auditSource(request, null),
      });
      return { recovery_codes: done.recoveryCodes, ...sessionAnswer(reply, outcome) };
    });
  });

  // ---- signed in, fresh ----
  app.register(async (scope) => {
    scope.addHook('onRequest', scope.requireAuth);
    const s = scope.withTypeProvider<TypeBoxTypeProvider>();
    const userId = (req: FastifyRequest) => req.auth!.user.id;

    s.post(`${prefix}/tf-disable`, {
      preHandler: requireFresh,
      schema: {
        tags: TAG, operationId: 'disableTwoFactor', summary: 'Switch two-factor authentication off', security: SECURED,
        description: 'Needs a fresh session (else 401 REAUTH_REQUIRED; re-authenticate with POST /verify, which counts toward the lockout). ' +
          'Whatever the method: the TOTP secret or email method, the recovery codes and the security keys registered as second factors (usage "secondary") are deleted; passkeys stay. 403 FORBIDDEN when one of your roles is in SECURITY_TWO_FACTOR_REQUIRED_ROLES.',
        response: { 204: Type.Null({ description: 'Two-factor authentication is off' }), ...errors(401, 403) },
      },
    }, async (request, reply: FastifyReply) => {
      await disableTwoFactor(ctx, request.auth!.user, auditSource(request));
      return reply.code(204).send(null);
    });

    s.post(`${prefix}/mf-recovery-codes`, {
      preHandler: requireFresh,
      schema: {
        tags: TAG, operationId: 'regenerateRecoveryCodes', summary: 'Replace your recovery codes', security: SECURED,
        description: 'Needs a fresh session (else 401 REAUTH_REQUIRED). 10 new single-use codes; the old ones stop working. ' +
          '409 CONFLICT when two-factor authentication is off.',
        response: { 200: RecoveryCodesResponse, ...errors(401, 403, 409) },
      },
    }, async (request) => ({ recovery_codes: await regenerateRecoveryCodes(ctx, userId(request), auditSource(request)) }));
  });
}
