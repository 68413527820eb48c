// The answer of every view that opens a session (login, refresh, register with auto-login, change
// password): the user, the token pair, the CSRF token, and the session cookie.
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { SessionRow } from '../../security/sessions.js';
import type { LoginOutcome, LoginSession } from '../../security/login.js';
import { clientInfo } from '../request-source.js';
import type { UserRecord } from '../../security/datastore.js';
import { publicUser } from '../../security/presenters.js';

export function sessionResponder(app: FastifyInstance) {
  const ctx = app.security;

  /** The login answer's body: user + token pair + csrf token (no cookie: tokenResponse sets it). */
  function sessionBody(user: UserRecord, session: SessionRow, refreshToken: string) {
    const access = app.tokens.accessToken(user, session);
    return {
      user: publicUser(user),
      access_token: access.token,
      token_type: 'Bearer' as const,
      expires_in: access.expiresIn,
      refresh_token: refreshToken,
      // rounded up: the milliseconds between opening the session and answering must not cost a
      // whole second (a fresh login answers exactly SECURITY_REFRESH_TOKEN_MAX_AGE)
      refresh_expires_in: Math.max(0, Math.ceil((session.expiresAt.getTime() - ctx.clock.now().getTime()) / 1000)),
      csrf_token: session.csrfToken,
    };
  }

  /** The login answer: user + token pair + csrf token, and the session cookie. */
  function tokenResponse(reply: FastifyReply, user: UserRecord, session: SessionRow, refreshToken: string, remember = false) {
    const body = sessionBody(user, session, refreshToken);
    app.tokens.setSessionCookie(reply, session, remember);
    return body;
  }

  /** A LoginOutcome of security/login.ts as JSON: the session answer, or the two-factor step (no session, no cookie). */
  function loginAnswer(reply: FastifyReply, outcome: LoginOutcome) {
    if (outcome.kind === 'tf_required') {
      return { tf_required: true as const, tf_token: outcome.tfToken, tf_method: outcome.tfMethod, tf_methods: outcome.tfMethods };
    }
    return setupOrSessionAnswer(reply, outcome);
  }

  /** The answer of a login that cannot have 2FA yet (registration): the forced setup, or the session. */
  function setupOrSessionAnswer(reply: FastifyReply, outcome: Exclude<LoginOutcome, { kind: 'tf_required' }>) {
    if (outcome.kind === 'tf_setup_required') return setupOrSessionBody(outcome);
    return sessionAnswer(reply, outcome);
  }

  /**
   * setupOrSessionAnswer's body without the cookie, for an answer built inside a transaction (a
   * registration records it with its Idempotency-Key); setSessionCookieOf sets it after the commit.
   */
  function setupOrSessionBody(outcome: Exclude<LoginOutcome, { kind: 'tf_required' }>) {
    if (outcome.kind === 'tf_setup_required') return { tf_required: true as const, tf_setup_required: true as const, tf_token: outcome.tfToken };
    return sessionBody(outcome.user, outcome.session, outcome.refreshToken);
  }

  /** The session cookie of a login outcome (none for the two-factor steps). */
  function setSessionCookieOf(reply: FastifyReply, outcome: LoginOutcome) {
    if (outcome.kind === 'session') app.tokens.setSessionCookie(reply, outcome.session, outcome.remember);
  }

  /** A completed login as JSON (token pair + cookie). */
  function sessionAnswer(reply: FastifyReply, outcome: LoginSession) {
    return tokenResponse(reply, outcome.user, outcome.session, outcome.refreshToken, outcome.remember);
  }

  return { clientInfo, tokenResponse, loginAnswer, sessionAnswer, setupOrSessionAnswer, setupOrSessionBody, setSessionCookieOf };
}
