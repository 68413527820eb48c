// The delegation rule's pure functions (the HTTP matrix is test/routes/users/delegation.property.test.ts).
import { describe, expect, it } from 'vitest';
import {
  assertMayActOn, assertMayDefineRole, assertMayGrant, assertMayRevoke, DelegationDenied, standingOf, SYSTEM_PRINCIPAL, userPrincipal,
} from '../../src/security/delegation.js';

const officer = userPrincipal({ id: 1, roles: ['Department Officer', 'Writer'], permissions: ['profile:read', 'users:read', 'users:write'] }, 'session');
const admin = userPrincipal({ id: 2, roles: ['County Admin'], permissions: ['users:read', 'users:write'] }, 'session');
const adminToken = userPrincipal({ id: 2, roles: ['County Admin'], permissions: ['users:read', 'users:write'] }, 'personal-token');

const denied = (fn: () => void) => {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(DelegationDenied);
    expect(err).toMatchObject({ statusCode: 403, code: 'FORBIDDEN' });
    return (err as DelegationDenied).missing;
  }
  throw new Error('expected a refusal');
};

describe('security/delegation', () => {
  it('grants only roles within the principal; County Admin only by unlimited principals', () => {
    expect(() => assertMayGrant(officer, { name: 'Writer', permissions: ['users:read', 'users:write'] })).not.toThrow();
    expect(denied(() => assertMayGrant(officer, { name: 'Auditor', permissions: ['audit:read', 'roles:write'] }))).toEqual(['audit:read', 'roles:write']);
    denied(() => assertMayGrant(officer, { name: 'County Admin', permissions: [] }));
    denied(() => assertMayGrant(adminToken, { name: 'County Admin', permissions: [] }));
    expect(() => assertMayGrant(admin, { name: 'County Admin', permissions: ['anything:new'] })).not.toThrow();
    expect(() => assertMayGrant(SYSTEM_PRINCIPAL, { name: 'County Admin', permissions: [] })).not.toThrow();
    denied(() => assertMayRevoke(officer, 'County Admin'));
    expect(() => assertMayRevoke(officer, 'Writer')).not.toThrow();
  });

  it('acts only on accounts whose permissions are a subset; a County Admin target needs an unlimited principal', () => {
    expect(() => assertMayActOn(officer, standingOf({ roles: ['Citizen'], permissions: ['profile:read'] }))).not.toThrow();
    expect(denied(() => assertMayActOn(officer, standingOf({ roles: ['Citizen', 'Auditor'], permissions: ['audit:read', 'profile:read'] })))).toEqual(['audit:read']);
    denied(() => assertMayActOn(officer, standingOf({ roles: ['County Admin'], permissions: [] })));
    denied(() => assertMayActOn(adminToken, standingOf({ roles: ['County Admin'], permissions: [] })));
    expect(() => assertMayActOn(admin, standingOf({ roles: ['County Admin'], permissions: ['x:read'] }))).not.toThrow();
  });

  it('defines roles only within the principal, before and after; the County Admin role only by unlimited principals', () => {
    expect(() => assertMayDefineRole(officer, null, ['users:read'])).not.toThrow();
    denied(() => assertMayDefineRole(officer, null, ['audit:read']));
    denied(() => assertMayDefineRole(officer, { name: 'Auditor', permissions: ['audit:read'] }, []));
    denied(() => assertMayDefineRole(officer, { name: 'County Admin', permissions: [] }, []));
    expect(() => assertMayDefineRole(admin, { name: 'County Admin', permissions: [] }, ['permits:approve'])).not.toThrow();
    denied(() => assertMayDefineRole(adminToken, null, ['permits:approve']));
  });
});
