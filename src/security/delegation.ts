// Delegation (no climbing), the contract's §5: the one rule deciding whether a principal may hand out a
// role, define a role's permissions, or act on another account. Pure functions over permission sets
// (no Fastify; the database only to record a refusal), called by security/users.ts and security/roles.ts, which the routes and the
// ops CLI both use, so HTTP and the terminal obey the same rule.
//
// The rule:
// - A principal grants a role only when it holds every permission of that role; only an unlimited
//   principal (a County Admin signed in interactively, or the system) grants County Admin.
// - A principal acts on another account (update, (de)activate, unlock, reset access, role changes) only
//   when that account's effective permissions are a subset of its own. A County Admin is unlimited as a
//   target too ("County Admin has them all"), so only unlimited principals act on County Admins.
// - A principal defines a role (create, edit, delete) only when it holds every permission the role has
//   before and after the change: you manage only roles you could grant; the County Admin role only
//   unlimited principals manage.
// - A personal access token acts with the intersection of its permissions and its owner's, and is never
//   unlimited: automation cannot mint County Admins or act on them.
// County scope (officers work inside their county; outside it is 404) is decided beside this rule in
// security/users.ts; this module answers only "strong enough?".
import { AppError } from '../errors.js';
import { audit, type AuditSource } from './audit.js';
import type { SecurityContext } from './context.js';
import { ROLE_ADMIN } from './role-names.js';

export interface Principal {
  kind: 'user' | 'system';
  /** null for the system */
  userId: number | null;
  /** effective permissions; for a personal access token, the intersection with its owner's */
  permissions: ReadonlySet<string>;
  /** holds every permission there is or will be: the system, or a County Admin in an interactive session */
  unlimited: boolean;
}

/** How the principal authenticated: interactive sessions (bearer JWT, cookie) or a personal access token. */
export type PrincipalVia = 'session' | 'personal-token';

/**
 * The ops CLI. Whoever runs it already holds the database credentials, so it acts with every
 * permission and in every county. It is still bound by the invariants (the last active County Admin
 * stays, roles must exist, password policy, department belongs to county): unlimited is not "anything".
 */
export const SYSTEM_PRINCIPAL: Principal = Object.freeze({ kind: 'system', userId: null, permissions: new Set<string>(), unlimited: true });

/** `user.permissions` must already be the effective set (a token's intersection: see sessions.loadAuthState). */
export function userPrincipal(user: { id: number; roles: readonly string[]; permissions: readonly string[] }, via: PrincipalVia): Principal {
  return {
    kind: 'user',
    userId: user.id,
    permissions: new Set(user.permissions),
    unlimited: via === 'session' && user.roles.includes(ROLE_ADMIN),
  };
}

/** What an account is worth as a target: its effective permissions; a County Admin is unlimited. */
export interface Standing { permissions: readonly string[]; unlimited: boolean }

export function standingOf(user: { roles: readonly string[]; permissions: readonly string[] }): Standing {
  return { permissions: user.permissions, unlimited: user.roles.includes(ROLE_ADMIN) };
}

/** A refusal by the rule: 403 FORBIDDEN; `reason` is for the audit log (it is also the message). */
export class DelegationDenied extends AppError {
  readonly reason: string;
  readonly missing: string[];
  constructor(reason: string, missing: string[] = []) {
    super(403, 'FORBIDDEN', reason);
    this.reason = reason;
    this.missing = missing;
  }
}

const lacking = (p: Principal, perms: Iterable<string>) => [...new Set(perms)].filter((x) => !p.permissions.has(x)).sort();

/** Throws unless `p` holds every permission of `s` (an unlimited target needs an unlimited principal). */
export function assertMayActOn(p: Principal, target: Standing): void {
  if (p.unlimited) return;
  if (target.unlimited) throw new DelegationDenied(`Only a ${ROLE_ADMIN} can manage a ${ROLE_ADMIN}`);
  const missing = lacking(p, target.permissions);
  if (missing.length) throw new DelegationDenied(`This account holds permissions you do not have: ${missing.join(', ')}`, missing);
}

/** Throws unless `p` may give (or, for County Admin, take) `role`. */
export function assertMayGrant(p: Principal, role: { name: string; permissions: readonly string[] }): void {
  if (p.unlimited) return;
  if (role.name === ROLE_ADMIN) throw new DelegationDenied(`Only a ${ROLE_ADMIN} can grant or revoke ${ROLE_ADMIN}`);
  const missing = lacking(p, role.permissions);
  if (missing.length) throw new DelegationDenied(`Role "${role.name}" carries permissions you do not have: ${missing.join(', ')}`, missing);
}

/** Only unlimited principals take County Admin away (anything else is covered by assertMayActOn). */
export function assertMayRevoke(p: Principal, roleName: string): void {
  if (!p.unlimited && roleName === ROLE_ADMIN) throw new DelegationDenied(`Only a ${ROLE_ADMIN} can grant or revoke ${ROLE_ADMIN}`);
}

/**
 * Throws unless `p` may create (`before` null), change or delete a role: it must hold every permission
 * the role has before and after.
 */
export function assertMayDefineRole(p: Principal, before: { name: string; permissions: readonly string[] } | null, after: readonly string[]): void {
  if (p.unlimited) return;
  if (before?.name === ROLE_ADMIN) throw new DelegationDenied(`Only a ${ROLE_ADMIN} can change the ${ROLE_ADMIN} role`);
  const missing = lacking(p, [...(before?.permissions ?? []), ...after]);
  if (missing.length) throw new DelegationDenied(`You can only define roles within your own permissions; you lack: ${missing.join(', ')}`, missing);
}

/**
 * Runs an administrative change; when the delegation rule refuses it, nothing of it was written (the
 * refusal comes before any write, and the transaction rolls back anyway) and the attempt is recorded
 * as `<action>.denied`, outside the rolled-back transaction.
 */
export async function denialAudited<T>(ctx: Pick<SecurityContext, 'db' | 'clock'>, actor: AuditSource, action: string, targetUserId: number | null,
  details: Record<string, unknown>, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof DelegationDenied) {
      await audit(ctx, { ...actor, action: `${action}.denied`, targetUserId, details: { ...details, reason: err.reason, missing: err.missing } });
    }
    throw err;
  }
}

