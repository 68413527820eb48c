// The ops CLI's commands. Each calls the same security/ function as the matching API route, with the
// CLI as actor: the system principal (security/delegation.ts: every permission, every county, still bound
// by the invariants), no user id, and a user agent naming the operating-system user.
import { Value } from 'typebox/value';
import type { ParseArgsConfig } from 'node:util';
import { userInfo } from 'node:os';
import type { SecurityContext } from '../security/context.js';
import { listAuditEvents } from '../security/audit.js';
import {
  activateAccount, createAccount, deactivateAccount, grantRole, listUsersJson, resetAccountAccess, resolveUser,
  revokeRole, setAccountPassword, setAccountRoles, systemActor, unlockAccount, updateAccount, type Actor,
} from '../security/users.js';
import { changeRolePermissions, createRoleAudited, deleteRole, getRole, listRoles, updateRole, type RoleRecord } from '../security/roles.js';
import { findRole } from '../security/datastore.js';
import { createCounty, createDepartment, listCounties, listDepartments } from '../security/org.js';
import { notFound, validationError } from '../errors.js';
import { Email } from '../schemas/common.js';
import { AuditQuery, NameBody, PatchRoleBody, PatchUserBody, UserRolesBody } from '../schemas/admin.js';
import { registerFormats } from '../schemas/formats.js';
import { publicAuditEvent, publicCounty, publicDepartment, publicRole, publicUser, type PublicUser } from '../security/presenters.js';
import { readNewPassword, shown, UsageError, type CliIo } from './io.js';
import { checkBody } from './validate.js';
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
  prepare?: (args: string[], opts: Values, io: CliIo) => Promise<Record<string, string>>;
  run: (r: CommandRun, prepared: Record<string, string>) => Promise<void>;
}

export function cliActor(): Actor {
  let osUser = 'unknown';
  try {
    osUser = userInfo().username;
  } catch {
    // no passwd entry (some containers)
  }
  return systemActor({ actorId: null, ip: null, userAgent: `county-services-cli (os user ${osUser})`, requestId: null });
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

/** A positional id (COUNTY_ID): a usage error when it is not a positive integer. */
function positiveId(name: string, v: string): number {
  if (!/^[0-9]{1,10}$/.test(v) || Number(v) < 1 || Number(v) > 2147483647) throw new UsageError(`${name} must be a positive integer`);
  return Number(v);
}

function describeUser(u: PublicUser): string {
  return [
    `id:            ${u.id}`,
    `email:         ${shown(u.email)}`,
    `name:          ${u.full_name === null ? '-' : shown(u.full_name)}`,
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

function table(cells: string[][]): string {
  // every cell is one line: a newline in a name must not forge a row
  const rows = cells.map((r) => r.map(shown));
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

/** A text option: absent → unchanged, empty → cleared (null), else the value. */
function text(v: unknown): string | null | undefined {
  if (v === undefined) return undefined;
  return v === '' ? null : String(v);
}

/** An id option that may be cleared: absent → unchanged, `none` → null. */
function idOrNone(name: string, v: unknown): number | null | undefined {
  if (v === 'none') return null;
  return int(name, v);
}

/** ROLE: a numeric id or a role name. */
async function resolveRole(r: CommandRun, ref: string): Promise<RoleRecord> {
  if (/^[0-9]{1,10}$/.test(ref)) return getRole(r.ctx, Number(ref));
  const row = await findRole(r.ctx.db, ref);
  if (!row) throw notFound('Role');
  return getRole(r.ctx, row.id);
}

function describeRole(role: ReturnType<typeof publicRole>): string {
  return [
    `id:          ${role.id}`,
    `name:        ${role.name}`,
    `description: ${role.description ?? '-'}`,
    `permissions: ${role.permissions.join(', ') || '-'}`,
    `seeded:      ${role.seeded ? 'yes' : 'no'}`,
    `users:       ${role.user_count}`,
  ].join('\n');
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
    summary: 'create a user (POST /users; default role Citizen); the password is prompted for or read from stdin',
    args: [1, 1],
    options: {
      'first-name': { type: 'string' }, 'last-name': { type: 'string' }, phone: { type: 'string' }, address: { type: 'string' },
      role: { type: 'string', multiple: true }, county: { type: 'string' }, department: { type: 'string' },
      inactive: { type: 'boolean' }, unconfirmed: { type: 'boolean' }, ...passwordOption,
    },
    async prepare(args, opts, io) {
      registerFormats();
      if (!Value.Check(Email, args[0])) throw validationError({ email: ['Must be a valid email address'] });
      int('county', opts.county);
      int('department', opts.department);
      return { password: await readNewPassword(io, args[0]!, opts['password-stdin'] === true) };
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
    summary: 'list users (GET /users: the same filters, sort and page limits)',
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
      })) as { users: PublicUser[]; total: number };
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
    summary: 'show one user (GET /users/{id}; USER is an id or an email address)',
    args: [1, 1],
    async run(r) {
      const user = publicUser(await resolveUser(r.ctx.db, r.args[0]!));
      r.print({ user }, describeUser(user));
    },
  },

  'users activate': userAction('activate', 'activate a user (POST /users/{id}/activate)', activateAccount),
  'users deactivate': userAction('deactivate', 'deactivate a user (POST /users/{id}/deactivate): every session and token dies at once', deactivateAccount),
  'users reset-access': userAction('reset-access', 'invalidate every session and token of a user (POST /users/{id}/reset-access)', resetAccountAccess),
  'users unlock': userAction('unlock', 'clear failed logins / lift a lockout (POST /users/{id}/unlock)', unlockAccount),

  'users update': {
    usage: 'users update USER [--first-name X] [--last-name X] [--phone X] [--address X] [--county ID|none] [--department ID|none]',
    summary: "update profile, county or department (PATCH /users/{id}); an empty text clears it; the department must belong to the user's county",
    args: [1, 1],
    options: {
      'first-name': { type: 'string' }, 'last-name': { type: 'string' }, phone: { type: 'string' }, address: { type: 'string' },
      county: { type: 'string' }, department: { type: 'string' },
    },
    async run(r) {
      const body = Object.fromEntries(Object.entries({
        first_name: text(r.opts['first-name']), last_name: text(r.opts['last-name']), phone_number: text(r.opts.phone), address: text(r.opts.address),
        county_id: idOrNone('county', r.opts.county), department_id: idOrNone('department', r.opts.department),
      }).filter(([, v]) => v !== undefined));
      if (!Object.keys(body).length) throw new UsageError('nothing to update: give at least one option (see --help)');
      checkBody(PatchUserBody, body);
      const target = await resolveUser(r.ctx.db, r.args[0]!);
      const user = publicUser(await updateAccount(r.ctx, r.actor, target.id, {
        firstName: body.first_name as string | null | undefined, lastName: body.last_name as string | null | undefined,
        phoneNumber: body.phone_number as string | null | undefined, address: body.address as string | null | undefined,
        countyId: body.county_id as number | null | undefined, departmentId: body.department_id as number | null | undefined,
      }));
      r.print({ user }, describeUser(user));
    },
  },

  'users set-roles': {
    usage: 'users set-roles USER ROLE... | users set-roles USER --none',
    summary: "replace a user's roles with exactly these (PUT /users/{id}/roles); --none removes them all",
    args: [1, 21],
    options: { none: { type: 'boolean' } },
    async run(r) {
      const names = r.args.slice(1);
      if (!names.length && r.opts.none !== true) throw new UsageError('name the roles, or give --none to remove every role');
      if (names.length && r.opts.none === true) throw new UsageError('--none takes no role names');
      checkBody(UserRolesBody, { roles: names });
      const target = await resolveUser(r.ctx.db, r.args[0]!);
      const user = publicUser(await setAccountRoles(r.ctx, r.actor, target.id, names));
      r.print({ user }, `user ${user.id} (${user.email}) roles: ${user.roles.join(', ') || '-'}`);
    },
  },
  ...PASSKEY_COMMANDS,

  'users change-password': {
    usage: 'users change-password USER [--password-stdin]',
    summary: "set a user's password (policy applies); every session of the user ends. CLI only: over HTTP users change or reset their own",
    args: [1, 1],
    options: passwordOption,
    async prepare(args, opts, io) {
      return { password: await readNewPassword(io, args[0]!, opts['password-stdin'] === true) };
    },
    async run(r, { password }) {
      const target = await resolveUser(r.ctx.db, r.args[0]!);
      const user = publicUser(await setAccountPassword(r.ctx, r.actor, target.id, password!));
      r.print({ user }, `password changed for user ${user.id} (${user.email}); their sessions were ended`);
    },
  },

  'roles create': {
    usage: 'roles create NAME [--description TEXT] [--permission PERM]...',
    summary: 'create a role (POST /roles)',
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
    summary: 'list roles with their permissions (GET /roles)',
    args: [0, 0],
    async run(r) {
      const roles = (await listRoles(r.ctx)).map(publicRole);
      const rows = [['ID', 'NAME', 'USERS', 'PERMISSIONS'], ...roles.map((x) => [String(x.id), x.name, String(x.user_count), x.permissions.join(', ') || '-'])];
      r.print({ roles }, table(rows));
    },
  },

  'roles show': {
    usage: 'roles show ROLE',
    summary: 'show one role (ROLE is an id or a name)',
    args: [1, 1],
    async run(r) {
      const role = publicRole(await resolveRole(r, r.args[0]!));
      r.print({ role }, describeRole(role));
    },
  },

  'roles update': {
    usage: 'roles update ROLE [--name NEW] [--description TEXT] [--permission PERM]... [--no-permissions]',
    summary: 'rename a role, change its description, or replace its permissions (PATCH /roles/{id}); seeded roles keep their names',
    args: [1, 1],
    options: {
      name: { type: 'string' }, description: { type: 'string' }, permission: { type: 'string', multiple: true }, 'no-permissions': { type: 'boolean' },
    },
    async run(r) {
      if (r.opts.permission !== undefined && r.opts['no-permissions'] === true) throw new UsageError('--permission and --no-permissions exclude each other');
      const body = Object.fromEntries(Object.entries({
        name: str(r.opts.name), description: text(r.opts.description),
        permissions: r.opts['no-permissions'] === true ? [] : r.opts.permission === undefined ? undefined : list(r.opts.permission),
      }).filter(([, v]) => v !== undefined));
      if (!Object.keys(body).length) throw new UsageError('nothing to update: give --name, --description, --permission or --no-permissions');
      checkBody(PatchRoleBody, body);
      const before = await resolveRole(r, r.args[0]!);
      const role = publicRole(await updateRole(r.ctx, r.actor, before.id, body));
      r.print({ role }, describeRole(role));
    },
  },

  'roles delete': {
    usage: 'roles delete ROLE [--force]',
    summary: 'delete a role (DELETE /roles/{id}); a role still assigned needs --force (the assignments go too); seeded roles stay',
    args: [1, 1],
    options: { force: { type: 'boolean' } },
    async run(r) {
      const role = await resolveRole(r, r.args[0]!);
      await deleteRole(r.ctx, r.actor, role.id, { force: r.opts.force === true });
      r.print({ deleted: { id: role.id, name: role.name } }, `deleted role ${role.id} "${role.name}"`);
    },
  },

  'roles add': {
    usage: 'roles add USER ROLE',
    summary: 'give a user a role (POST /users/{id}/roles/{role})',
    args: [2, 2],
    async run(r) {
      const target = await resolveUser(r.ctx.db, r.args[0]!);
      const user = publicUser(await grantRole(r.ctx, r.actor, target.id, r.args[1]!));
      r.print({ user }, `user ${user.id} (${user.email}) roles: ${user.roles.join(', ')}`);
    },
  },

  'roles remove': {
    usage: 'roles remove USER ROLE',
    summary: 'take a role from a user (DELETE /users/{id}/roles/{role})',
    args: [2, 2],
    async run(r) {
      const target = await resolveUser(r.ctx.db, r.args[0]!);
      const user = publicUser(await revokeRole(r.ctx, r.actor, target.id, r.args[1]!));
      r.print({ user }, `user ${user.id} (${user.email}) roles: ${user.roles.join(', ') || '-'}`);
    },
  },

  'roles add-permissions': {
    usage: 'roles add-permissions ROLE PERM...',
    summary: 'add permissions to a role (CLI only; over HTTP PATCH /roles/{id} sends the full set)',
    args: [2, 100],
    async run(r) {
      const role = publicRole(await changeRolePermissions(r.ctx, r.actor, r.args[0]!, { add: r.args.slice(1) }));
      r.print({ role }, `role "${role.name}": ${role.permissions.join(', ') || 'no permissions'}`);
    },
  },

  'roles remove-permissions': {
    usage: 'roles remove-permissions ROLE PERM...',
    summary: 'remove permissions from a role (CLI only; over HTTP PATCH /roles/{id} sends the full set)',
    args: [2, 100],
    async run(r) {
      const role = publicRole(await changeRolePermissions(r.ctx, r.actor, r.args[0]!, { remove: r.args.slice(1) }));
      r.print({ role }, `role "${role.name}": ${role.permissions.join(', ') || 'no permissions'}`);
    },
  },

  'counties list': {
    usage: 'counties list',
    summary: 'list counties (GET /counties)',
    args: [0, 0],
    async run(r) {
      const counties = (await listCounties(r.ctx)).map(publicCounty);
      r.print({ counties }, table([['ID', 'NAME'], ...counties.map((c) => [String(c.id), c.name])]));
    },
  },

  'counties create': {
    usage: 'counties create NAME',
    summary: 'create a county (POST /counties)',
    args: [1, 1],
    async run(r) {
      checkBody(NameBody, { name: r.args[0]! });
      const county = publicCounty(await createCounty(r.ctx, r.actor, { name: r.args[0]! }));
      r.print({ county }, `created county ${county.id} "${county.name}"`);
    },
  },

  'departments list': {
    usage: 'departments list COUNTY_ID',
    summary: 'list the departments of a county (GET /counties/{id}/departments)',
    args: [1, 1],
    async run(r) {
      const departments = (await listDepartments(r.ctx, positiveId('COUNTY_ID', r.args[0]!))).map(publicDepartment);
      r.print({ departments }, table([['ID', 'NAME'], ...departments.map((d) => [String(d.id), d.name])]));
    },
  },

  'departments create': {
    usage: 'departments create COUNTY_ID NAME',
    summary: 'create a department in a county (POST /counties/{id}/departments)',
    args: [2, 2],
    async run(r) {
      const countyId = positiveId('COUNTY_ID', r.args[0]!);
      checkBody(NameBody, { name: r.args[1]! });
      const department = publicDepartment(await createDepartment(r.ctx, r.actor, countyId, { name: r.args[1]! }));
      r.print({ department }, `created department ${department.id} "${department.name}" in county ${department.county_id}`);
    },
  },

  'audit list': {
    usage: 'audit list [--user ID] [--action ACTION] [--from ISO] [--to ISO] [--cursor C] [--limit N]',
    summary: 'one page of audit events, newest first (GET /audit); follow the printed cursor for older ones',
    args: [0, 0],
    options: {
      user: { type: 'string' }, action: { type: 'string' }, from: { type: 'string' }, to: { type: 'string' },
      cursor: { type: 'string' }, limit: { type: 'string' },
    },
    async run(r) {
      const userId = int('user', r.opts.user);
      const limit = int('limit', r.opts.limit);
      const from = date('from', r.opts.from);
      const to = date('to', r.opts.to);
      // checked against the route's own schema, which takes the timestamps as ISO strings
      const isoOf = (d: Date | undefined) => (d ? new Date(d).toJSON() : undefined);
      checkBody(AuditQuery, Object.fromEntries(Object.entries({
        user_id: userId, action: str(r.opts.action), from: isoOf(from), to: isoOf(to), cursor: str(r.opts.cursor), limit,
      }).filter(([, v]) => v !== undefined)));
      const page = await listAuditEvents(r.ctx, { userId, action: str(r.opts.action), from, to, cursor: str(r.opts.cursor), limit: limit ?? 50 });
      const events = page.events.map(publicAuditEvent);
      const rows = [['ID', 'TIME', 'ACTION', 'ACTOR', 'TARGET'], ...events.map((e) => [
        String(e.id), e.created_at, e.action, e.actor_id === null ? '-' : String(e.actor_id), e.target_user_id === null ? '-' : String(e.target_user_id),
      ])];
      r.print({ events, next_cursor: page.nextCursor }, `${table(rows)}${page.nextCursor ? `\nolder: --cursor ${page.nextCursor}` : ''}`);
    },
  },

  'audit export': {
    usage: 'audit export [--user ID] [--action ACTION] [--from ISO] [--to ISO]',
    summary: 'print every matching audit event as JSON lines, oldest first (GET /audit, every page)',
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
