// Authorization as route preHandler factories (Flask-Security's decorators). Not a plugin: route
// modules import them. They run after the scope's `requireAuth` hook (the authentication plugin's
// decorator, the only requireAuth): 401 is decided there, these only answer 403 (or 401 REAUTH_REQUIRED).
import type { FastifyRequest, preHandlerAsyncHookHandler } from 'fastify';
import { AppError, authRequired, forbidden } from '../errors.js';
import type { RequestAuth } from '../plugins/authentication.js';

function authOf(request: FastifyRequest): RequestAuth {
  if (!request.auth) throw authRequired();
  return request.auth;
}

// A denial is decided on fresh state: when the state that fails the check came from this instance's
// cache, it is read again from the database first (a role granted a moment ago on another instance
// passes; docs/consistency.md). Allowing on cached state is what the cache protocol makes safe.
const guard = (check: (auth: RequestAuth) => boolean): preHandlerAsyncHookHandler =>
  async (request) => {
    if (check(authOf(request))) return;
    if (request.auth!.cached) {
      await request.server.reauthenticate(request);
      if (check(authOf(request))) return;
    }
    throw forbidden();
  };

/** every listed role */
export const rolesRequired = (...roles: string[]) => guard((a) => roles.every((r) => a.user.roles.includes(r)));
/** at least one listed role */
export const rolesAccepted = (...roles: string[]) => guard((a) => roles.some((r) => a.user.roles.includes(r)));
/** every listed permission */
export const permissionsRequired = (...perms: string[]) => guard((a) => perms.every((p) => a.user.permissions.includes(p)));
/** at least one listed permission */
export const permissionsAccepted = (...perms: string[]) => guard((a) => perms.some((p) => a.user.permissions.includes(p)));
/** the role, and a county assigned to the user (officer routes work inside that county) */
export const countyRoleRequired = (role: string) => guard((a) => a.user.roles.includes(role) && a.user.countyId !== null);

const refusePersonalToken = (request: FastifyRequest) => {
  if (request.auth?.method === 'token') {
    throw forbidden('Personal access tokens cannot manage the account; sign in interactively');
  }
};

/**
 * Account management (the contract's §5: logout-all, sessions, tokens, change-password, change-email,
 * 2FA, passkeys) needs an interactive session: a personal access token is refused with 403, whatever
 * its permissions. Put it on every such route, first in its preHandler list. It does not demand
 * authentication by itself (the scope's requireAuth does), so optional-auth routes can use it too.
 */
export const interactiveOnly: preHandlerAsyncHookHandler = async (request) => {
  refusePersonalToken(request);
};

/**
 * The session's last primary authentication must be within `withinSeconds`; else re-authenticate. A
 * personal access token can never be fresh, so it is refused (403, as interactiveOnly) rather than sent
 * to /verify, which refuses it too.
 */
export const fresh = (withinSeconds: number, now: () => Date): preHandlerAsyncHookHandler => async (request) => {
  refusePersonalToken(request);
  const stale = (a: RequestAuth) => now().getTime() - a.session.fsPaa.getTime() > withinSeconds * 1000;
  // a staleness seen in cached state is checked again on fresh state (a /verify on another instance)
  if (stale(authOf(request)) && request.auth!.cached) await request.server.reauthenticate(request);
  if (stale(authOf(request))) {
    throw new AppError(401, 'REAUTH_REQUIRED', 'Re-authenticate with POST /verify to continue', { extra: { reauth_required: true } });
  }
};

/** passes when any of the guards passes; otherwise fails as the first one did */
export const anyOf = (...guards: preHandlerAsyncHookHandler[]): preHandlerAsyncHookHandler =>
  async function anyGuard(request, reply) {
    let first: unknown;
    for (const g of guards) {
      try {
        await g.call(this, request, reply);
        return;
      } catch (err) {
        first ??= err;
      }
    }
    throw first;
  };
