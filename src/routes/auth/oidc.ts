// OpenID Connect sign-in (spec/api.md §3 "Social and enterprise sign-in"): the redirect pair, the
// login_code exchange, and the account page's identities. The work is security/oidc.ts; these
// routes translate HTTP to calls.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { RequestAuth } from '../../plugins/authentication.js';
import { forbidden } from '../../errors.js';
import { fresh, interactiveOnly } from '../guards.js';
import { bodyErrors, errors, SECURED } from '../../schemas/common.js';
import { LoginOrTwoFactorResponse } from '../../schemas/two-factor.js';
import {
  IdentitiesResponse, LoginCodeBody, OAuthResponseQuery, OAuthStartQuery, ProviderParam, ProvidersResponse, Redirect,
} from '../../schemas/oidc.js';
import {
  exchangeLoginCode, finishOidc, listIdentities, OIDC_ERRORS, startOidc, unlinkIdentity, type FinishOutcome, type StartOutcome,
} from '../../security/oidc.js';
import { auditSource } from '../request-source.js';
import { sessionResponder } from './session-response.js';

const TAG = ['oidc'];
const ERROR_LIST = Object.entries(OIDC_ERRORS).map(([k, v]) => `\`${k}\` (${v})`).join('; ');

/** A redirect that leaks nothing onward: no Referer from the next page, never cached. */
function redirect(reply: FastifyReply, location: string) {
  return reply.header('referrer-policy', 'no-referrer').header('cache-control', 'no-store').redirect(location, 302);
}

export default async function oidcRoutes(root: FastifyInstance) {
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  const ctx = app.security;
  const { config } = ctx;
  const prefix = config.SECURITY_URL_PREFIX;
  const { clientInfo, loginAnswer } = sessionResponder(app);
  const providers = () => config.SECURITY_OAUTH_PROVIDERS.map((p) => ({ name: p.name, display_name: p.displayName }));
  // The browser binding: HttpOnly, Lax (the provider's redirect back is a top-level GET), only on the callback path.
  const cookieBase = { httpOnly: true, secure: config.SESSION_COOKIE_SECURE, sameSite: 'lax' as const };
  const started = (reply: FastifyReply, r: StartOutcome) => {
    if (r.binding) reply.setCookie(r.binding.name, r.binding.value, { ...cookieBase, path: r.binding.path, maxAge: r.binding.maxAge });
    return redirect(reply, r.location);
  };
  const finished = (reply: FastifyReply, r: FinishOutcome) => {
    if (r.clearCookie) reply.clearCookie(r.clearCookie.name, { ...cookieBase, path: r.clearCookie.path });
    return redirect(reply, r.location);
  };

  app.register(async (pub) => {
    const p = pub.withTypeProvider<TypeBoxTypeProvider>();

    p.get(`${prefix}/login/oauth/providers`, {
      schema: {
        tags: TAG, security: [], operationId: 'listOAuthProviders', summary: 'The configured OpenID Connect providers',
        response: { 200: ProvidersResponse, ...errors() },
      },
    }, async () => ({ providers: providers() }));

    p.get(`${prefix}/login/oauthstart/:provider`, {
      config: { rateLimitClass: 'auth' },
      schema: {
        tags: TAG, security: [], operationId: 'oauthStart', summary: 'Start signing in with a provider (302 to the provider)',
        description: 'Redirects to the provider\'s authorization endpoint with state, nonce and PKCE (S256), and sets an HttpOnly ' +
          'binding cookie on the callback path (the flow must finish in the browser that started it). The state record lives ' +
          'SECURITY_OAUTH_STATE_WITHIN. When the provider cannot be discovered the browser goes straight back to next with ' +
          '`error=provider_unavailable`.',
        params: ProviderParam, querystring: OAuthStartQuery,
        response: { 302: Redirect, ...errors(400, 404) },
      },
    }, async (request, reply) => {
      const r = await startOidc(ctx, { provider: request.params.provider, next: request.query.next, mode: 'login' });
      return started(reply, r);
    });

    p.get(`${prefix}/login/oauthresponse/:provider`, {
      config: { rateLimitClass: 'auth' },
      schema: {
        tags: TAG, security: [], operationId: 'oauthResponse', summary: 'The provider redirects back here',
        description: 'Verifies the state (single use), redeems the code with the PKCE verifier and validates the ID token (issuer, ' +
          'audience, signature, expiry, nonce), resolves the account, then redirects to the state\'s next with a one-time ' +
          '`login_code` (exchange it with POST /login/oauth/exchange) — or, in link mode, `linked=<provider>`. Every failure ' +
          `after the state is known is a redirect to next with \`error\`: ${ERROR_LIST}. ` +
          'A missing, unknown or used state is 400 LINK_INVALID (there is no next to return to).',
        params: ProviderParam, querystring: OAuthResponseQuery,
        response: { 302: Redirect, ...errors(400, 404) },
      },
    }, async (request, reply) => {
      const q = request.query;
      const r = await finishOidc(ctx, {
        provider: request.params.provider,
        query: { code: q.code, state: q.state, iss: q.iss, error: q.error, error_description: q.error_description },
        cookies: app.readCookies(request),
        source: auditSource(request),
      });
      return finished(reply, r);
    });

    p.post(`${prefix}/login/oauth/exchange`, {
      config: { authSync: false, rateLimitClass: 'auth' },
      schema: {
        tags: TAG, security: [], operationId: 'oauthExchange', summary: 'Exchange a login_code for the login answer',
        description: 'The login_code works once, within 60 s. The answer is POST /login\'s: the token pair and cookie, or ' +
          '{tf_required, tf_token, tf_method} when the account has 2FA (or {tf_required, tf_setup_required, tf_token} when its ' +
          'role requires 2FA) — unless the provider is marked trusted_mfa. A deactivated account is 403 ACCOUNT_DISABLED.',
        body: LoginCodeBody,
        response: { 200: LoginOrTwoFactorResponse, ...bodyErrors(401, 403) },
      },
    }, async (request, reply) => {
      const outcome = await exchangeLoginCode(ctx, {
        loginCode: request.body.login_code, remember: request.body.remember, client: clientInfo(request), source: auditSource(request),
      });
      return loginAnswer(reply, outcome);
    });
  });

  app.register(async (scope) => {
    scope.addHook('onRequest', scope.requireAuth);
    const s = scope.withTypeProvider<TypeBoxTypeProvider>();
    const auth = (req: FastifyRequest): RequestAuth => req.auth!;
    const freshSession = fresh(config.SECURITY_FRESHNESS, () => ctx.clock.now());

    s.get('/auth/identities', {
      preHandler: interactiveOnly,
      schema: {
        tags: TAG, operationId: 'listIdentities', summary: 'Your linked provider identities', security: SECURED,
        response: { 200: IdentitiesResponse, ...errors(401, 403) },
      },
    }, async (request) => ({ identities: await listIdentities(ctx, auth(request).user.id), providers: providers() }));

    s.get('/auth/identities/link/:provider', {
      preHandler: [interactiveOnly, freshSession],
      schema: {
        tags: TAG, operationId: 'linkIdentity', summary: 'Link a provider identity to your account (302 to the provider)', security: SECURED,
        description: 'Needs a fresh session. The same redirect flow as /login/oauthstart in link mode: the browser comes back to ' +
          'next with `linked=<provider>` or `error` (identity_in_use, already_linked, link_expired, …). No email matching: the ' +
          'identity the provider returns is linked to you. Called with the session cookie (a browser navigation); a ' +
          'navigation from another site (Sec-Fetch-Site: cross-site) is 403.',
        params: ProviderParam, querystring: OAuthStartQuery,
        response: { 302: Redirect, ...errors(400, 401, 403, 404) },
      },
    }, async (request, reply) => {
      // A GET that starts a link with the session cookie: another site must not be able to start it
      // by navigation (browsers label such requests Sec-Fetch-Site: cross-site)
      if (request.headers['sec-fetch-site'] === 'cross-site') throw forbidden('Start linking from the account page');
      const r = await startOidc(ctx, { provider: request.params.provider, next: request.query.next, mode: 'link', user: auth(request).user });
      return started(reply, r);
    });

    s.delete('/auth/identities/:provider', {
      preHandler: [interactiveOnly, freshSession],
      schema: {
        tags: TAG, operationId: 'unlinkIdentity', summary: 'Unlink a provider identity', security: SECURED,
        description: 'Needs a fresh session. 409 CONFLICT when it is your last way to sign in (no usable password, no other identity).',
        params: ProviderParam,
        response: { 204: Type.Null({ description: 'Unlinked' }), ...errors(400, 401, 403, 404, 409) },
      },
    }, async (request, reply) => {
      await unlinkIdentity(ctx, auth(request).user.id, request.params.provider, auditSource(request));
      return reply.code(204).send(null);
    });
  });
}
