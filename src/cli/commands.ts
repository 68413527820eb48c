// The ops CLI's commands. Each calls the same security/ function as the matching API route, with the
// CLI as actor: no user id, global scope, and a user agent naming the operating-system user.
import { Value } from 'typebox/value';
import type { ParseArgsConfig } from 'node:util';
import { userInfo } from 'node:os';
import type { SecurityContext } from '../security/context.js';
import { listAuditEvents, publicAuditEvent } from '../security/audit.js';
import {
  activateAccount, createAccount, deactivateAccount, GLOBAL_SCOPE, grantRole, listUsersJson, resetAccountAccess, resolveUser,
  revokeRole, setAccountPassword, unlockAccount, type Actor,
} from '../security/users.js';
import { changeRolePermissions, createRoleAudited, listRoles, publicRole } from '../security/roles.js';
import { validationError } from '../errors.js';
import { Email } from '../schemas/common.js';
import { registerFormats } from '../schemas/formats.js';
import { publicUser } from '../security/presenters.js';
import { readNewPassword, UsageError } from './io.js';
import { PASSKEY_COMMANDS } from './passkeys.js';

type Options = NonNullable<ParseArgsConfig['options']>;
type Values = Record<string, string | boolean | (string | boolean)[] | undefined>;

export interface CommandRun {
  ctx: SecurityContext;
  actor: Actor;
  args: string[];
  opts: Values;
  /** prints `data` as JSON with --json, else the human text */
  print: (data: unknown, human: string) => void;
  write: (line: string) => void;
}

export interface Command {
  usage: string;
  summary: string;
  options?: Options;
  /** [min, max] positional arguments */
  args: [number, number];
  /** work done before the database opens (password prompts) */
  prepare?: (args: string[], opts: Values) => Promise<Record<string, string>>;
  run: (r: CommandRun, prepared: Record<string, string>) => Promise<void>;
}

export function cliActor(): Actor {
  let osUser = 'unknown';
  try {
    osUser = userInfo().username;
  } catch {
    // no passwd entry (some containers)
  }
  return { actorId: null, ip: null, userAgent: `county-services-cli (os user ${osUser})`, requestId: null, scope: GLOBAL_SCOPE };
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const list = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : typeof v === 'string' ? [v] : []);

function int(name: string, v: unknown): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !/^[0-9]{1,10}$/.test(v) || Number(v) < 1 || Number(v) > 2147483647) {
    throw new UsageError(`--${name} must be a positive integer`);
  }
  return Number(v);
}

function bool(name: string, v: unknown): boolean | undefined {
  if (v === undefined) return undefined;
  if (v === 'true' || v === 'yes') return true;
  if (v === 'false' || v === 'no') return false;
  throw new UsageError(`--${name} must be yes or no`);
}

function date(name: string, v: unknown): Date | undefined {
  if (v === undefined) return undefined;
  const d = new Date(String(v));
  if (Number.isNaN(d.getTime())) throw new UsageError(`--${name} must be an ISO-8601 date or timestamp`);
  return d;
}

type PublicUser = ReturnType<typeof publicUser>;

function describeUser(u: PublicUser): string {
  return [
    `id:            ${u.id}`,
    `email:         ${u.email}`,
    `name:          ${u.full_name ?? '-'}`,
    `active:        ${u.active ? 'yes' : 'no'}`,
    `confirmed_at:  ${u.confirmed_at ?? '-'}`,
    `roles:         ${u.roles.join(', ') || '-'}`,
    `permissions:   ${u.permissions.join(', ') || '-'}`,
    `county_id:     ${u.county_id ?? '-'}`,
    `department_id: ${u.department_id ?? '-'}`,
    `last_login_at: ${u.last_login_at ?? '-'}`,
    `login_count:   ${u.login_count}`,
  ].join('\n');
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

/** users activate|deactivate|reset-access|unlock USER */
function userAction(verb: string, summary: string, fn: typeof activateAccount): Command {
  return {
    usage: `users ${verb} USER`,
    summary,
    args: [1, 1],
    async run(r) {
      const target = await resolveUser(r.ctx.db, r.args[0]!);
      const user = publicUser(await fn(r.ctx, r.actor, target.id));
      r.print({ user }, `${verb}: user ${user.id} (${user.email}), active: ${user.active ? 'yes' : 'no'}`);
    },
  };
}

const passwordOption: Options = { 'password-stdin': { type: 'boolean' } };

export const COMMANDS: Record<string, Command> = {
  'users create': {
    usage: 'users create EMAIL [--first-name X] [--last-name X] [--phone X] [--address X] [--role NAME]... [--county ID] [--department ID] [--inactive] [--unconfirmed] [--password-stdin]',
    summary: 'create a user (default role Citizen); the password is prompted for or read from stdin',
    args: [1, 1],
    options: {
      'first-name': { type: 'string' }, 'last-name': { type: 'string' }, phone: { type: 'string' }, address: { type: 'string' },
      role: { type: 'string', multiple: true }, county: { type: 'string' }, department: { type: 'string' },
      inactive: { type: 'boolean' }, unconfirmed: { type: 'boolean' }, ...passwordOption,
    },
    async prepare(args, opts) {
      registerFormats();
      if (!Value.Check(Email, args[0])) throw validationError({ email: ['Must be a valid email address'] });
      int('county', opts.county);
      int('department', opts.department);
      return { password: await readNewPassword(args[0]!, opts['password-stdin'] === true) };
    },
    async run(r, { password }) {
      const user = publicUser(await createAccount(r.ctx, r.actor, {
        email: r.args[0]!, password: password!,
        firstName: str(r.opts['first-name']), lastName: str(r.opts['last-name']), phoneNumber: str(r.opts.phone), address: str(r.opts.address),
        roles: r.opts.role === undefined ? undefined : list(r.opts.role),
        countyId: int('county', r.opts.county), departmentId: int('department', r.opts.department),
        active: r.opts.inactive !== true, confirmed: r.opts.unconfirmed !== true,
      }));
      r.print({ user }, `created user ${user.id} (${user.email}) with roles: ${user.roles.join(', ') || '-'}`);
    },
  },

  'users list': {
    usage: 'users list [--q TEXT] [--role NAME] [--active yes|no] [--county ID] [--page N] [--per-page N] [--sort=FIELDS]',
    summary: 'list users (the filters and sort of GET /users)',
    args: [0, 0],
    options: {
      q: { type: 'string' }, role: { type: 'string' }, active: { type: 'string' }, county: { type: 'string' },
      page: { type: 'string' }, 'per-page': { type: 'string' }, sort: { type: 'string' },
    },
    async run(r) {
      const page = int('page', r.opts.page) ?? 1;
      const perPage = int('per-page', r.opts['per-page']) ?? 20;
      // the same page as GET /users
      const result = JSON.parse(await listUsersJson(r.ctx, r.actor.scope, {
        page, perPage, q: str(r.opts.q), role: str(r.opts.role), active: bool('active', r.opts.active),
        countyId: int('county', r.opts.county), sort: str(r.opts.sort),
      })) as { users: ReturnType<typeof publicUser>[]; total: number };
      const users = result.users;
      const pages = Math.max(1, Math.ceil(result.total / perPage));
      const rows = [['ID', 'EMAIL', 'ACTIVE', 'ROLES', 'COUNTY'], ...users.map((u) => [
        String(u.id), u.email, u.active ? 'yes' : 'no', u.roles.join(', ') || '-', u.county_id === null ? '-' : String(u.county_id),
      ])];
      r.print({ users, page, per_page: perPage, total: result.total }, `${table(rows)}\npage ${page} of ${pages}, ${result.total} user(s)`);
    },
  },

  'users show': {
    usage: 'users show USER',
    summary: 'show one user (USER is an id or an email address)',
    args: [1, 1],
    async run(r) {
      const user = publicUser(await resolveUser(r.ctx.db, r.args[0]!));
      r.print({ user }, describeUser(user));
    },
  },

  'users activate': userAction('activate', 'activate a user', activateAccount),
  'users deactivate': userAction('deactivate', 'deactivate a user: every session and token dies at once', deactivateAccount),
  'users reset-access': userAction('reset-access', 'invalidate every session and token of a user', resetAccountAccess),
  'users unlock': userAction('unlock', 'clear failed logins / lift a lockout', unlockAccount),
  ...PASSKEY_COMMANDS,

  'users change-password': {
    usage: 'users change-password USER [--password-stdin]',
    summary: "set a user's password (policy applies); every session of the user ends",
    args: [1, 1],
    options: passwordOption,
    async prepare(args, opts) {
      return { password: await readNewPassword(args[0]!, opts['password-stdin'] === true) };
    },
    async run(r, { password }) {
      const target = await resolveUser(r.ctx.db, r.args[0]!);
      const user = publicUser(await setAccountPassword(r.ctx, r.actor, target.id, password!));
      r.print({ user }, `password changed for user ${user.id} (${user.email}); their sessions were ended`);
    },
  },

  'roles create': {
    usage: 'roles create NAME [--description TEXT] [--permission PERM]...',
    summary: 'create a role',
    args: [1, 1],
    options: { description: { type: 'string' }, permission: { type: 'string', multiple: true } },
    async run(r) {
      const role = publicRole(await createRoleAudited(r.ctx, r.actor, {
        name: r.args[0]!, description: str(r.opts.description), permissions: list(r.opts.permission),
      }));
      r.print({ role }, `created role ${role.id} "${role.name}": ${role.permissions.join(', ') || 'no permissions'}`);
    },
  },

  'roles list': {
    usage: 'roles list',
    summary: 'list roles with their permissions',
    args: [0, 0],
    async run(r) {
      const roles = (await listRoles(r.ctx)).map(publicRole);
      const rows = [['ID', 'NAME', 'USERS', 'PERMISSIONS'], ...roles.map((x) => [String(x.id), x.name, String(x.user_count), x.permissions.join(', ') || '-'])];
      r.print({ roles }, table(rows));
    },
  },

  'roles add': {
    usage: 'roles add USER ROLE',
    summary: 'give a user a role',
    args: [2, 2],
    async run(r) {
      const target = await resolveUser(r.ctx.db, r.args[0]!);
      const user = publicUser(await grantRole(r.ctx, r.actor, target.id, r.args[1]!));
      r.print({ user }, `user ${user.id} (${user.email}) roles: ${user.roles.join(', ')}`);
    },
  },

  'roles remove': {
    usage: 'roles remove USER ROLE',
    summary: 'take a role from a user',
    args: [2, 2],
    async run(r) {
      const target = await resolveUser(r.ctx.db, r.args[0]!);
      const user = publicUser(await revokeRole(r.ctx, r.actor, target.id, r.args[1]!));
      r.print({ user }, `user ${user.id} (${user.email}) roles: ${user.roles.join(', ') || '-'}`);
    },
  },

  'roles add-permissions': {
    usage: 'roles add-permissions ROLE PERM...',
    summary: 'add permissions to a role',
    args: [2, 100],
    async run(r) {
      const role = publicRole(await changeRolePermissions(r.ctx, r.actor, r.args[0]!, { add: r.args.slice(1) }));
      r.print({ role }, `role "${role.name}": ${role.permissions.join(', ') || 'no permissions'}`);
    },
  },

  'roles remove-permissions': {
    usage: 'roles remove-permissions ROLE PERM...',
    summary: 'remove permissions from a role',
    args: [2, 100],
    async run(r) {
      const role = publicRole(await changeRolePermissions(r.ctx, r.actor, r.args[0]!, { remove: r.args.slice(1) }));
      r.print({ role }, `role "${role.name}": ${role.permissions.join(', ') || 'no permissions'}`);
    },
  },

  'audit export': {
    usage: 'audit export [--user ID] [--action ACTION] [--from ISO] [--to ISO]',
    summary: 'print audit events as JSON lines, oldest first',
    args: [0, 0],
    options: { user: { type: 'string' }, action: { type: 'string' }, from: { type: 'string' }, to: { type: 'string' } },
    async run(r) {
      const query = { userId: int('user', r.opts.user), action: str(r.opts.action), from: date('from', r.opts.from), to: date('to', r.opts.to) };
      let cursor: string | undefined;
      do {
        const page = await listAuditEvents(r.ctx, { ...query, cursor, limit: 500, order: 'asc' });
        for (const e of page.events) r.write(JSON.stringify(publicAuditEvent(e)));
        cursor = page.nextCursor ?? undefined;
      } while (cursor);
    },
  },
};
