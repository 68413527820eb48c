// Passwordless sign-in views: passkeys (WebAuthn: /wan-*) and unified sign-in by email (/us-signin*).
// The rules live in security/webauthn.ts and security/unified-signin.ts; every sign-in goes through
// the one login pipeline (security/login.ts: beginLogin → completeLogin). Account-management routes refuse
// personal access tokens (interactiveOnly).
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { AuthenticationResponseJSON, RegistrationResponseJSON } from '@simplewebauthn/server';
import { Type } from 'typebox';
import { notFound } from '../../errors.js';
import { fresh, interactiveOnly } from '../guards.js';
import {
  beginRegistration, beginSignin, beginVerify, deleteCredential, finishRegistration, finishVerify,
  listCredentials, passkeyLogin, publicCredential, renameCredential,
} from '../../security/webauthn.js';
import { checkSigninLink, emailCodeLogin, emailLinkLogin, requestSigninCode } from '../../security/unified-signin.js';
import { pendingTwoFactorLogin } from '../../security/two-factor.js';
import { bodyErrors, errors, MessageResponse, SECURED } from '../../schemas/common.js';
import { LoginOrTwoFactorResponse } from '../../schemas/two-factor.js';
import {
  CreationOptionsResponse, LinkValidResponse, RequestOptionsResponse, UsLinkBody, UsLinkParam, UsSendCodeBody,
  UsSigninBody, WanAssertionBody, WanCredentialResponse, WanCredentialsResponse, WanDeleteBody, WanRegisterBody,
  WanRegisterFinishBody, WanRenameBody, WanSigninBody, WanStateParam,
} from '../../schemas/passwordless.js';
import { sessionResponder } from './session-response.js';
import { auditSource } from '../request-source.js';

const WAN_TAG = ['passkeys'];
const US_TAG = ['passwordless'];

export default async function passwordlessRoutes(root: FastifyInstance) {
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  const ctx = app.security;
  const { config } = ctx;
  const prefix = config.SECURITY_URL_PREFIX;
  const { clientInfo, loginAnswer } = sessionResponder(app);
  const requireFresh = fresh(config.SECURITY_FRESHNESS, () => ctx.clock.now());

  const wanEnabled = async () => {
    if (!config.SECURITY_WAN_ENABLED) throw notFound('Route');
  };
  const usEnabled = async () => {
    if (!config.SECURITY_UNIFIED_SIGNIN) throw notFound('Route');
  };

  // ---- public: sign-in ----
  app.register(async (pub) => {
    const p = pub.withTypeProvider<TypeBoxTypeProvider>();

    p.post(`${prefix}/wan-signin`, {
      onRequest: wanEnabled,
      config: { rateLimitClass: 'auth' },
      schema: {
        tags: WAN_TAG, security: [], operationId: 'startPasskeySignin', summary: 'Start signing in with a passkey',
        description: 'Returns WebAuthn request options and a wan_state. Without `identity` the browser offers any passkey it holds ' +
          'for this site (discoverable credentials, conditional UI); with it, the passkey must belong to that address (the answer is ' +
          'the same whether or not it has an account). With `tf_token` (a login that answered tf_required) the options list the ' +
          'account\'s keys and the assertion completes that login as its second factor.',
        body: WanSigninBody,
        response: { 200: RequestOptionsResponse, ...bodyErrors(401, 404) },
      },
    }, async (request) => {
      const b = request.body;
      let started;
      if (b.tf_token !== undefined) {
        const pending = await pendingTwoFactorLogin(ctx, b.tf_token);
        started = await beginSignin(ctx, { secondFactor: {
          userId: pending.user.id, fsUniquifier: pending.user.fsUniquifier, challengeId: pending.challengeId, remember: pending.remember,
        } });
      } else {
        started = await beginSignin(ctx, { identity: b.identity, remember: b.remember });
      }
      return { wan_state: started.wanState, credential_options: started.options as unknown as Record<string, unknown> };
    });

    p.post(`${prefix}/wan-signin/:wan_state`, {
      onRequest: wanEnabled,
      config: { rateLimitClass: 'auth' },
      schema: {
        tags: WAN_TAG, security: [], operationId: 'finishPasskeySignin', summary: 'Sign in with a passkey (the browser\'s assertion)',
        description: 'Answers like POST /login. A "first" passkey with user verification signs in on its own (multi-factor: no ' +
          'second step). Answering options started with a tf_token completes that two-factor login (any of the account\'s keys). ' +
          '401 WEBAUTHN_INVALID for a bad signature, an unknown or another account\'s credential, a used or expired challenge, ' +
          'a sign-count regression, a wrong origin or RP id; failures on a known account count towards its lockout (429 ACCOUNT_LOCKED).',
        params: WanStateParam,
        body: WanAssertionBody,
        response: { 200: LoginOrTwoFactorResponse, ...bodyErrors(401, 403, 404) },
      },
    }, async (request, reply) => {
      const outcome = await passkeyLogin(ctx, {
        state: request.params.wan_state, response: request.body.credential as unknown as AuthenticationResponseJSON,
        client: clientInfo(request), source: auditSource(request, null),
      });
      return loginAnswer(reply, outcome);
    });

    p.post(`${prefix}/us-signin/send-code`, {
      onRequest: usEnabled,
      config: { rateLimitClass: 'auth' },
      schema: {
        tags: US_TAG, security: [], operationId: 'sendSigninCode', summary: 'Email me a sign-in code',
        description: 'Always 202 for a well-formed address, with or without an account. The account\'s owner receives a 6-digit code ' +
          'and a sign-in link (SECURITY_US_SIGNIN_URL_TEMPLATE), both single-use and valid SECURITY_US_TOKEN_VALIDITY. ' +
          'SECURITY_US_SEND_LIMIT codes per address and RATE_LIMIT_AUTH per client address, else 429 RATE_LIMITED.',
        body: UsSendCodeBody,
        response: { 202: MessageResponse, ...bodyErrors(404) },
      },
    }, async (request, reply) => {
      await requestSigninCode(ctx, request.body.identity, auditSource(request, null));
      return reply.code(202).send({ message: 'If the address has an account, a sign-in code is on its way.' });
    });

    p.post(`${prefix}/us-signin`, {
      onRequest: usEnabled,
      config: { rateLimitClass: 'auth' },
      schema: {
        tags: US_TAG, security: [], operationId: 'signinWithCode', summary: 'Sign in with the emailed code',
        description: 'Answers like POST /login; two-factor authentication still applies ({tf_required, tf_token}). Unknown address, ' +
          'wrong, used or expired code: the same 401 INVALID_CREDENTIALS; each counts towards the address\'s lockout.',
        body: UsSigninBody,
        response: { 200: LoginOrTwoFactorResponse, ...bodyErrors(401, 403, 404) },
      },
    }, async (request, reply) => {
      const outcome = await emailCodeLogin(ctx, {
        identity: request.body.identity, passcode: request.body.passcode, remember: request.body.remember ?? false,
        client: clientInfo(request), source: auditSource(request, null),
      });
      return loginAnswer(reply, outcome);
    });

    p.get(`${prefix}/us-signin/link/:token`, {
      onRequest: usEnabled,
      schema: {
        tags: US_TAG, security: [], operationId: 'checkSigninLink', summary: 'Check a sign-in link without using it',
        description: 'Safe for mail scanners and link previews: never consumes the link. Sign in with POST /us-signin/link.',
        params: UsLinkParam,
        response: { 200: LinkValidResponse, ...errors(400, 404) },
      },
    }, async (request) => {
      await checkSigninLink(ctx, request.params.token);
      return { valid: true as const };
    });

    p.post(`${prefix}/us-signin/link`, {
      onRequest: usEnabled,
      config: { rateLimitClass: 'auth' },
      schema: {
        tags: US_TAG, security: [], operationId: 'signinWithLink', summary: 'Sign in with the emailed link',
        description: 'The token of the link (single use; it also uses up the code mailed with it). Answers like POST /login; ' +
          'two-factor authentication still applies. 400 LINK_INVALID / LINK_EXPIRED.',
        body: UsLinkBody,
        response: { 200: LoginOrTwoFactorResponse, ...bodyErrors(403, 404) },
      },
    }, async (request, reply) => {
      const outcome = await emailLinkLogin(ctx, {
        token: request.body.token, remember: request.body.remember ?? false, client: clientInfo(request), source: auditSource(request, null),
      });
      return loginAnswer(reply, outcome);
    });
  });

  // ---- signed in (interactive sessions only): the account's passkeys ----
  app.register(async (scope) => {
    scope.addHook('onRequest', wanEnabled);
    scope.addHook('onRequest', scope.requireAuth);
    scope.addHook('preHandler', interactiveOnly);
    const s = scope.withTypeProvider<TypeBoxTypeProvider>();
    const auth = (req: FastifyRequest) => req.auth!;

    s.post(`${prefix}/wan-register`, {
      preHandler: requireFresh,
      schema: {
        tags: WAN_TAG, security: SECURED, operationId: 'startPasskeyRegistration', summary: 'Start registering a passkey or security key',
        description: 'Needs a fresh session (else 401 REAUTH_REQUIRED; POST /verify or /wan-verify). Returns WebAuthn creation options ' +
          '(attestation "none"; "first" asks for a discoverable credential with user verification) and a wan_state that only this ' +
          'session can answer. 409 CONFLICT when the name is taken. A "secondary" key is a two-factor method of its own: the ' +
          'first one on an account without two-factor authentication switches it on (see POST /wan-register/{wan_state}). ' +
          'Personal access tokens: 403.',
        body: WanRegisterBody,
        response: { 200: CreationOptionsResponse, ...bodyErrors(401, 403, 404, 409) },
      },
    }, async (request) => {
      const a = auth(request);
      const started = await beginRegistration(ctx, a.user, a.session.id, request.body);
      return { wan_state: started.wanState, credential_options: started.options as unknown as Record<string, unknown> };
    });

    s.post(`${prefix}/wan-register/:wan_state`, {
      schema: {
        tags: WAN_TAG, security: SECURED, operationId: 'finishPasskeyRegistration', summary: 'Register the passkey (the browser\'s attestation)',
        description: 'Stores the public key. The first "secondary" key of an account without two-factor authentication switches ' +
          'it on (method "webauthn": logins then answer tf_required and the key completes them); the user\'s other sessions and ' +
          'pending logins end, as when an authenticator app is set up. 400 WEBAUTHN_INVALID for a bad or replayed attestation, ' +
          'another session\'s or an expired challenge, a wrong origin or RP id; 409 CONFLICT when the authenticator is already registered.',
        params: WanStateParam,
        body: WanRegisterFinishBody,
        response: { 201: WanCredentialResponse, ...bodyErrors(401, 403, 404, 409) },
      },
    }, async (request, reply) => {
      const a = auth(request);
      const created = await finishRegistration(ctx, request.params.wan_state, request.body.credential as unknown as RegistrationResponseJSON,
        { userId: a.user.id, sessionId: a.session.id }, auditSource(request));
      return reply.code(201).send({ credential: publicCredential(created) });
    });

    s.get(`${prefix}/wan-register`, {
      schema: {
        tags: WAN_TAG, security: SECURED, operationId: 'listPasskeys', summary: 'Your passkeys and security keys',
        response: { 200: WanCredentialsResponse, ...errors(401, 403, 404) },
      },
    }, async (request) => ({ credentials: (await listCredentials(ctx.db, auth(request).user.id)).map(publicCredential) }));

    s.post(`${prefix}/wan-rename`, {
      preHandler: requireFresh,
      schema: {
        tags: WAN_TAG, security: SECURED, operationId: 'renamePasskey', summary: 'Rename one of your passkeys (by name)',
        description: 'Needs a fresh session. 404 when you have no key of that name; 409 CONFLICT when the new name is taken.',
        body: WanRenameBody,
        response: { 200: WanCredentialResponse, ...bodyErrors(401, 403, 404, 409) },
      },
    }, async (request) => {
      const renamed = await renameCredential(ctx, auth(request).user.id, request.body.name, request.body.new_name, auditSource(request));
      return { credential: publicCredential(renamed) };
    });

    s.post(`${prefix}/wan-delete`, {
      preHandler: requireFresh,
      schema: {
        tags: WAN_TAG, security: SECURED, operationId: 'deletePasskey', summary: 'Delete one of your passkeys (by name)',
        description: 'Needs a fresh session. The key stops working at once. Deleting the last "secondary" key of an account ' +
          'whose only two-factor method is security keys switches two-factor off; 403 FORBIDDEN instead when one of your roles ' +
          'is in SECURITY_TWO_FACTOR_REQUIRED_ROLES. 404 when you have no key of that name.',
        body: WanDeleteBody,
        response: { 204: Type.Null({ description: 'Deleted' }), ...bodyErrors(401, 403, 404) },
      },
    }, async (request, reply) => {
      await deleteCredential(ctx, auth(request).user, request.body.name, auditSource(request));
      return reply.code(204).send(null);
    });

    s.post(`${prefix}/wan-verify`, {
      schema: {
        tags: WAN_TAG, security: SECURED, operationId: 'startPasskeyVerify', summary: 'Start re-authenticating with a passkey',
        description: 'Request options listing your keys, bound to this session. 409 CONFLICT when you have none.',
        response: { 200: RequestOptionsResponse, ...errors(401, 403, 404, 409) },
      },
    }, async (request) => {
      const a = auth(request);
      const started = await beginVerify(ctx, a.user, a.session.id);
      return { wan_state: started.wanState, credential_options: started.options as unknown as Record<string, unknown> };
    });

    s.post(`${prefix}/wan-verify/:wan_state`, {
      schema: {
        tags: WAN_TAG, security: SECURED, operationId: 'finishPasskeyVerify', summary: 'Re-authenticate with a passkey: mark this session fresh',
        description: 'Like POST /verify with a password. 401 WEBAUTHN_INVALID otherwise (failures count towards the lockout).',
        params: WanStateParam,
        body: WanAssertionBody,
        response: { 200: MessageResponse, ...bodyErrors(401, 403, 404) },
      },
    }, async (request) => {
      const a = auth(request);
      await finishVerify(ctx, request.params.wan_state, request.body.credential as unknown as AuthenticationResponseJSON,
        { user: a.user, sessionId: a.session.id }, auditSource(request));
      return { message: 'Verified' };
    });
  });
}
