// The authorization property (issue 12): for every principal kind (citizen, officer in county 1, officer
// without a county, holders of generated custom roles alone and beside the officer role, County Admin),
// each signed in interactively or through a personal access token with generated scopes, × every
// user/role-changing operation × targets of every privilege level, no operation succeeds unless the
// rule allows it, every operation the rule allows succeeds, and a refused one writes nothing (users,
// roles, assignments, sessions, tokens, lockout state and success rows of the audit log are unchanged);
// a refusal by the delegation rule (not by a route guard) is recorded as one `<action>.denied` row.
//
// The oracle below is written from the contract (§5) and knows nothing of src/security/delegation.ts.
// Real PostgreSQL, the real app through app.inject. Fixed seed: the same cases on every run.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { sql } from 'drizzle-orm';
import { createRole, createUser } from '../../../src/security/datastore.js';
import { bearer, buildTestApp, createTestDatabase, GOOD_PASSWORD, login, type TestApp, type TestDatabase } from '../../support/helper.js';
import { county } from '../../support/principals.js';

const SEED = 20261201;
/**
 * Generated cases per (principal kind, credential, operation, target level): more where the route guards
 * let the principal through to the rule (custom roles beside the officer role, County Admins; every
 * kind for the roles module, which needs only roles:write).
 */
const runsPerCell = (kind: PrincipalKind, op: Op) =>
  op === 'createRole' || op === 'patchRole' ? 6 : kind === 'customOfficer1' || kind === 'admin' ? 4 : 1;

const ADMIN = 'County Admin';
const OFFICER = 'Department Officer';
const CITIZEN = 'Citizen';
const SEEDED: Record<string, string[]> = {
  [CITIZEN]: ['profile:read', 'profile:write'],
  [OFFICER]: ['profile:read', 'profile:write', 'users:read', 'org:read'],
  [ADMIN]: ['profile:read', 'profile:write', 'users:read', 'users:write', 'roles:read', 'roles:write', 'audit:read', 'org:read', 'org:write'],
};
/** The permissions generated sets are drawn from; `x:read` is one no seeded role has. */
const UNIVERSE = ['profile:read', 'profile:write', 'users:read', 'users:write', 'roles:read', 'roles:write', 'audit:read', 'org:read', 'org:write', 'x:read'];

const PRINCIPAL_KINDS = ['citizen', 'officer1', 'officerNoCounty', 'custom', 'customOfficer1', 'admin'] as const;
type PrincipalKind = (typeof PRINCIPAL_KINDS)[number];
const VIAS = ['session', 'token'] as const;
type Via = (typeof VIAS)[number];
const OPS = ['createUser', 'putRoles', 'postRole', 'deleteRole', 'patchUser', 'deactivate', 'activate', 'unlock', 'resetAccess', 'patchRole', 'createRole'] as const;
type Op = (typeof OPS)[number];
const TARGET_LEVELS = ['citizen', 'officer', 'custom', 'admin'] as const;
type TargetLevel = (typeof TARGET_LEVELS)[number];

/** A role named in a case: a seeded one, or the generated custom role of the case ('custom'). */
type RoleRef = typeof CITIZEN | typeof OFFICER | typeof ADMIN | 'custom';
const ROLE_REFS: RoleRef[] = [CITIZEN, OFFICER, ADMIN, 'custom'];

interface Case {
  customPerms: string[];
  /** null: an unlimited token (all of the owner's permissions) */
  tokenPerms: string[] | null;
  target: { extra: RoleRef[]; countyIndex: 0 | 1 | 2; active: boolean };
  /** the custom role the operation grants, puts, deletes */
  grantPerms: string[];
  roles: RoleRef[] | undefined;
  role: RoleRef;
  createCounty: 0 | 1 | 2 | 3;
  patch: { kind: 'name' } | { kind: 'county'; countyIndex: 0 | 1 | 2 };
  roleBefore: string[];
  roleAfter: string[];
}

const perms = fc.subarray(UNIVERSE);
// Principals' sets lean towards the permissions the routes demand (users:write, roles:write), so most
// cases get past the route guards and reach the delegation rule itself.
const principalPerms = fc.tuple(perms, fc.subarray(['users:write', 'roles:write', 'users:read', 'profile:read', 'profile:write']))
  .map(([a, b]) => [...new Set([...a, ...b])].sort());
const caseArb: fc.Arbitrary<Case> = fc.record({
  customPerms: principalPerms,
  tokenPerms: fc.option(principalPerms, { nil: null }),
  target: fc.record({ extra: fc.subarray(ROLE_REFS.filter((r) => r !== ADMIN)), countyIndex: fc.constantFrom(0, 1, 2), active: fc.boolean() }),
  grantPerms: perms,
  roles: fc.option(fc.subarray(ROLE_REFS), { nil: undefined }),
  role: fc.constantFrom(...ROLE_REFS),
  createCounty: fc.constantFrom(0, 1, 2, 3),
  patch: fc.oneof(fc.constant({ kind: 'name' as const }), fc.record({ kind: fc.constant('county' as const), countyIndex: fc.constantFrom(0, 1, 2) })),
  roleBefore: perms,
  roleAfter: perms,
}) as fc.Arbitrary<Case>;

// ------------------------------------------------------------------------------------------ the oracle

type Expected = 'ok' | 'guard' | 'denied' | 'not_found' | 'invalid';

interface Who { roles: string[]; perms: Set<string>; via: Via; county: number | null }
interface Target { roles: string[]; perms: Set<string>; county: number | null }

const subset = (a: Iterable<string>, b: Set<string>) => [...a].every((x) => b.has(x));

/** The contract's §5, read literally, with "County Admin has them all" for interactive County Admins. */
function oracle(op: Op, who: Who, target: Target, x: {
  grantRoles: { name: string; perms: string[] }[]; revokeRoles: string[]; createCounty: number | null | undefined;
  patchCounty: number | null | undefined; roleBefore: string[]; roleAfter: string[];
}): Expected {
  const has = (p: string) => who.perms.has(p);
  const isAdmin = who.roles.includes(ADMIN);
  // Unlimited: an interactive County Admin. Tokens act with their permissions only.
  const unlimited = isAdmin && who.via === 'session';
  const inUserModule = isAdmin || (who.roles.includes(OFFICER) && who.county !== null);
  const mayGrant = (r: { name: string; perms: string[] }) => unlimited || (r.name !== ADMIN && subset(r.perms, who.perms));
  const mayRevoke = (name: string) => unlimited || name !== ADMIN;
  const targetIsAdmin = target.roles.includes(ADMIN);
  const mayActOn = unlimited || (!targetIsAdmin && subset(target.perms, who.perms));
  const inScope = isAdmin || target.county === who.county;

  switch (op) {
    case 'createRole':
      if (!has('roles:write')) return 'guard';
      return unlimited || subset(x.roleAfter, who.perms) ? 'ok' : 'denied';
    case 'patchRole':
      if (!has('roles:write')) return 'guard';
      return unlimited || (subset(x.roleBefore, who.perms) && subset(x.roleAfter, who.perms)) ? 'ok' : 'denied';
    case 'createUser': {
      if (!has('users:write') || !inUserModule) return 'guard';
      if (!isAdmin && x.createCounty != null && x.createCounty !== who.county) return 'invalid';
      return x.grantRoles.every(mayGrant) ? 'ok' : 'denied';
    }
    default: {
      const assigning = op === 'putRoles' || op === 'postRole' || op === 'deleteRole';
      if (!has('users:write') || !inUserModule || (assigning && !has('roles:write'))) return 'guard';
      if (!inScope) return 'not_found';
      if (!mayActOn) return 'denied';
      if (op === 'patchUser' && !isAdmin && x.patchCounty !== undefined && x.patchCounty !== who.county) return 'invalid';
      if (!x.grantRoles.every(mayGrant) || !x.revokeRoles.every(mayRevoke)) return 'denied';
      return 'ok';
    }
  }
}

// ------------------------------------------------------------------------------------------ the test

describe('authorization property: no operation succeeds unless the delegation rule allows it', () => {
  let database: TestDatabase;
  let t: TestApp;
  let counties: [number, number];
  let customRoleSeq = 0;
  let emailSeq = 0;
  const roleByPerms = new Map<string, string>();
  const principalCache = new Map<string, { who: Omit<Who, 'via'>; id: number; email: string; session: string }>();
  const tokenCache = new Map<string, string>();
  let cases = 0;
  const outcomes: Record<Expected, number> = { ok: 0, guard: 0, denied: 0, not_found: 0, invalid: 0 };
  const started = Date.now();

  beforeAll(async () => {
    database = await createTestDatabase();
    t = await buildTestApp(database);
    counties = [(await county(t, 'Nairobi')).id, (await county(t, 'Mombasa')).id];
    // Two admins who are never targets: "the last active County Admin" never decides a case.
    for (let i = 0; i < 2; i++) await createUser(t.ctx, { email: `root${i}@example.com`, password: GOOD_PASSWORD, roles: [ADMIN], confirmedAt: new Date() });
  });
  afterAll(async () => {
    // The matrix size and its time, for the report (not an assertion).
    console.log(`delegation matrix: ${cases} cases in ${((Date.now() - started) / 1000).toFixed(1)} s; outcomes ${JSON.stringify(outcomes)}`);
    await t.close();
    await database.drop();
  });

  const countyAt = (i: 0 | 1 | 2) => (i === 2 ? null : counties[i]);

  /** One role per generated permission set, shared by every case that draws the same set (never edited). */
  async function roleFor(p: string[]): Promise<string> {
    const key = [...p].sort().join(',');
    let name = roleByPerms.get(key);
    if (!name) {
      name = `gen-${++customRoleSeq}`;
      await createRole(t.db.db, { name, permissions: p });
      roleByPerms.set(key, name);
    }
    return name;
  }
  const permsOf = (name: string, custom: { name: string; perms: string[] }) => (name === custom.name ? custom.perms : SEEDED[name]!);
  const union = (names: string[], custom: { name: string; perms: string[] }) => new Set(names.flatMap((n) => permsOf(n, custom)));

  async function principal(kind: PrincipalKind, customPerms: string[]) {
    const custom = kind === 'custom' || kind === 'customOfficer1' ? await roleFor(customPerms) : null;
    const key = `${kind}:${custom ?? ''}`;
    let p = principalCache.get(key);
    if (!p) {
      const roles = {
        citizen: [CITIZEN], officer1: [OFFICER], officerNoCounty: [OFFICER], custom: [custom!], customOfficer1: [OFFICER, custom!], admin: [ADMIN],
      }[kind];
      const countyId = kind === 'officerNoCounty' || kind === 'admin' ? null : counties[0];
      const email = `p${++emailSeq}@example.com`;
      const user = await createUser(t.ctx, { email, password: GOOD_PASSWORD, roles, countyId, confirmedAt: new Date() });
      const session = (await login(t.app, email)).access_token;
      p = { who: { roles: user.roles, perms: new Set(user.permissions), county: countyId }, id: user.id, email, session };
      principalCache.set(key, p);
    }
    return p;
  }

  /** A token of the principal; its scopes are the generated ones the owner holds (others would be 400). */
  async function tokenOf(p: { id: number; email: string; who: Omit<Who, 'via'> }, wanted: string[] | null) {
    const scopes = wanted === null ? null : wanted.filter((x) => p.who.perms.has(x));
    const key = `${p.id}:${scopes === null ? '*' : scopes.join(',')}`;
    let token = tokenCache.get(key);
    if (!token) {
      const fresh = (await login(t.app, p.email)).access_token;
      const res = await t.app.inject({ method: 'POST', url: '/auth/tokens', headers: bearer(fresh), payload: { name: 'matrix', ...(scopes ? { permissions: scopes } : {}) } });
      expect(res.statusCode, res.body).toBe(201);
      token = res.json().token as string;
      tokenCache.set(key, token);
    }
    return { token, perms: scopes === null ? p.who.perms : new Set(scopes) };
  }

  /** Everything a refused operation must not have changed (last_used_at slides on reads; it is left out). */
  async function snapshot(): Promise<Record<string, string>> {
    const [row] = await t.db.db.execute<Record<string, string>>(sql`select
      (select md5(coalesce(string_agg(u::text, '|' order by u.id), '')) from users u) as users,
      (select md5(coalesce(string_agg(r::text, '|' order by r.id), '')) from roles r) as roles,
      (select md5(coalesce(string_agg(ru::text, '|' order by ru.user_id, ru.role_id), '')) from roles_users ru) as roles_users,
      (select md5(coalesce(string_agg((s.id, s.user_id, s.revoked_at, s.revoked_reason, s.expires_at, s.fs_paa, s.refresh_token_hash)::text, '|' order by s.id), '')) from sessions s) as sessions,
      (select md5(coalesce(string_agg(p::text, '|' order by p.id), '')) from personal_access_tokens p) as tokens,
      (select md5(coalesce(string_agg(l::text, '|' order by l.email), '')) from login_attempts l) as lockout,
      (select coalesce(max(id), 0)::text from audit_events) as audit_max`);
    return row!;
  }

  /** The audit log is append-only (the database refuses UPDATE/DELETE): what was added after `afterId`. */
  async function auditSince(afterId: string): Promise<{ successes: number; denied: number }> {
    const [row] = await t.db.db.execute<{ successes: number; denied: number }>(sql`select
      count(*) filter (where action not like '%.denied')::int as successes, count(*) filter (where action like '%.denied')::int as denied
      from audit_events where id > ${Number(afterId)}`);
    return row!;
  }

  async function runCase(kind: PrincipalKind, via: Via, op: Op, level: TargetLevel, c: Case): Promise<void> {
    const p = await principal(kind, c.customPerms);
    let headers: Record<string, string>;
    let who: Who;
    if (via === 'token') {
      const tok = await tokenOf(p, c.tokenPerms);
      headers = bearer(tok.token);
      who = { ...p.who, perms: tok.perms, via };
    } else {
      headers = bearer(p.session);
      who = { ...p.who, via };
    }

    const custom = { name: await roleFor(c.grantPerms), perms: c.grantPerms };
    const name = (r: RoleRef) => (r === 'custom' ? custom.name : r);
    const base: Record<TargetLevel, string[]> = { citizen: [CITIZEN], officer: [OFFICER], custom: [custom.name], admin: [ADMIN] };
    const targetRoles = [...new Set([...base[level], ...c.target.extra.map(name)])].sort();
    const targetCounty = countyAt(c.target.countyIndex);
    const needsTarget = op !== 'createUser' && op !== 'createRole' && op !== 'patchRole';
    const target = needsTarget
      ? await createUser(t.ctx, { email: `t${++emailSeq}@example.com`, password: GOOD_PASSWORD, roles: targetRoles, countyId: targetCounty, active: c.target.active, confirmedAt: new Date() })
      : null;
    const editedRole = op === 'patchRole' ? await createRole(t.db.db, { name: `edit-${++customRoleSeq}`, permissions: c.roleBefore }) : null;

    // the request, and what the oracle is told about it
    let method: 'POST' | 'PUT' | 'PATCH' | 'DELETE' = 'POST';
    let url = '';
    let payload: object | undefined;
    let grantRoles: { name: string; perms: string[] }[] = [];
    let revokeRoles: string[] = [];
    let createCounty: number | null | undefined;
    let patchCounty: number | null | undefined;
    const asRole = (n: string) => ({ name: n, perms: permsOf(n, custom) });
    switch (op) {
      case 'createUser': {
        // the level is what is handed out: the default (Citizen) for the citizen level when no roles are drawn
        const roles = c.roles === undefined && level === 'citizen' ? undefined : [...new Set([...base[level], ...(c.roles ?? []).map(name)])];
        createCounty = c.createCounty === 3 ? undefined : countyAt(c.createCounty);
        url = '/users';
        payload = { email: `n${++emailSeq}@example.com`, password: GOOD_PASSWORD, ...(roles ? { roles } : {}), ...(createCounty !== undefined ? { county_id: createCounty } : {}) };
        grantRoles = (roles ?? [CITIZEN]).map(asRole);
        break;
      }
      case 'putRoles': {
        const wanted = [...new Set((c.roles ?? []).map(name))];
        method = 'PUT'; url = `/users/${target!.id}/roles`; payload = { roles: wanted };
        grantRoles = wanted.filter((n) => !targetRoles.includes(n)).map(asRole);
        revokeRoles = targetRoles.filter((n) => !wanted.includes(n));
        break;
      }
      case 'postRole':
        url = `/users/${target!.id}/roles/${encodeURIComponent(name(c.role))}`;
        grantRoles = [asRole(name(c.role))];
        break;
      case 'deleteRole':
        method = 'DELETE'; url = `/users/${target!.id}/roles/${encodeURIComponent(name(c.role))}`;
        revokeRoles = [name(c.role)];
        break;
      case 'patchUser':
        method = 'PATCH'; url = `/users/${target!.id}`;
        if (c.patch.kind === 'county') patchCounty = countyAt(c.patch.countyIndex);
        payload = c.patch.kind === 'name' ? { first_name: `Renamed ${emailSeq}` } : { county_id: patchCounty };
        break;
      case 'deactivate': case 'activate': case 'unlock':
        url = `/users/${target!.id}/${op}`;
        break;
      case 'resetAccess':
        url = `/users/${target!.id}/reset-access`;
        break;
      case 'patchRole':
        method = 'PATCH'; url = `/roles/${editedRole!.id}`; payload = { permissions: c.roleAfter };
        break;
      case 'createRole':
        url = '/roles'; payload = { name: `made-${++customRoleSeq}`, permissions: c.roleAfter };
        break;
    }
    const expected = oracle(op, who, target ? { roles: targetRoles, perms: union(targetRoles, custom), county: targetCounty } : { roles: [], perms: new Set(), county: null }, {
      grantRoles, revokeRoles, createCounty, patchCounty, roleBefore: c.roleBefore, roleAfter: c.roleAfter,
    });

    const before = await snapshot();
    const res = await t.app.inject({ method, url, headers, ...(payload ? { payload } : {}) });
    const label = `${kind}/${via} ${op} on ${level} ${JSON.stringify({ who: [...who.perms], targetRoles, targetCounty, payload })}: ${res.statusCode} ${res.body.slice(0, 300)}`;
    cases++;
    outcomes[expected]++;
    const statusFor: Record<Exclude<Expected, 'ok'>, number> = { guard: 403, denied: 403, not_found: 404, invalid: 400 };
    if (expected === 'ok') {
      expect(res.statusCode, label).toBeLessThan(300);
      return;
    }
    expect(res.statusCode, label).toBe(statusFor[expected]);
    const after = await snapshot();
    // a refused operation wrote nothing; only a refusal by the rule leaves one `.denied` row
    expect({ ...after, audit_max: undefined }, label).toEqual({ ...before, audit_max: undefined });
    expect(await auditSince(before.audit_max!), label).toEqual({ successes: 0, denied: expected === 'denied' ? 1 : 0 });
  }

  for (const op of OPS) {
    it(`${op}: every principal kind × credential × target level`, async () => {
      let cell = 0;
      for (const kind of PRINCIPAL_KINDS) {
        for (const via of VIAS) {
          for (const level of TARGET_LEVELS) {
            // target-less operations do not vary with the target level: one level is enough
            if ((op === 'createRole' || op === 'patchRole') && level !== 'citizen') continue;
            cell++;
            await fc.assert(fc.asyncProperty(caseArb, (c) => runCase(kind, via, op, level, c)), {
              seed: SEED + OPS.indexOf(op) * 1000 + cell, numRuns: runsPerCell(kind, op),
            });
          }
        }
      }
    }, 180_000);
  }
});
