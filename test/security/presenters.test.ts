// The presenters are the only place public shapes are built: their keys are exactly the contract's,
// and nothing secret (hashes, uniquifier, token hashes, 2FA secret) is ever among them.
import { describe, expect, it } from 'vitest';
import {
  createdPersonalToken, publicAuditEvent, publicCounty, publicDepartment, publicPersonalToken, publicRole, publicSession, publicUser,
} from '../../src/security/presenters.js';
import type { UserRecord } from '../../src/security/datastore.js';
import type { SessionRow } from '../../src/db/schema/index.js';

const at = new Date('2026-01-02T03:04:05.000Z');
const SECRET_KEYS = ['password', 'fs_uniquifier', 'fsUniquifier', 'tf_totp_secret', 'tfTotpSecret', 'tf_recovery_codes', 'token_hash', 'tokenHash', 'refresh_hash', 'csrf_token'];

describe('presenters', () => {
  it('publicUser: the contract §4 fields, no secret', () => {
    const u = {
      id: 1, email: 'a@b.co', firstName: 'A', lastName: null, phoneNumber: null, address: null, active: true, confirmedAt: null,
      createdAt: at, updatedAt: at, roles: ['Citizen'], permissions: ['profile:write'], countyId: null, departmentId: null,
      tfPrimaryMethod: null, tfTotpSecret: 'sealed', tfRecoveryCodes: ['x'], password: '$2b$hash', fsUniquifier: 'uq',
      lastLoginAt: null, currentLoginAt: at, lastLoginIp: null, currentLoginIp: '127.0.0.1', loginCount: 3,
    } as unknown as UserRecord;
    const out = publicUser(u);
    expect(Object.keys(out).sort()).toEqual([
      'active', 'address', 'confirmed_at', 'county_id', 'created_at', 'current_login_at', 'current_login_ip', 'department_id', 'email',
      'first_name', 'full_name', 'id', 'last_login_at', 'last_login_ip', 'last_name', 'login_count', 'permissions', 'phone_number', 'roles',
      'tf_enabled', 'updated_at',
    ]);
    expect(out.full_name).toBe('A');
    expect(out.current_login_at).toBe(at.toISOString());
    for (const k of SECRET_KEYS) expect(out).not.toHaveProperty(k);
  });

  it('session: what its owner sees, current marked, no csrf token or refresh hash', () => {
    const s = { id: 's1', userId: 1, createdAt: at, lastUsedAt: at, ip: '::1', userAgent: 'ua', csrfToken: 'c', refreshHash: 'h' } as unknown as SessionRow;
    expect(publicSession(s, 's1')).toEqual({ id: 's1', created_at: at.toISOString(), last_used_at: at.toISOString(), ip: '::1', user_agent: 'ua', current: true });
    expect(publicSession(s, 'other').current).toBe(false);
  });

  it('personal tokens: the value only when just created', () => {
    const listed = publicPersonalToken({ id: 't', name: 'n', permissions: null, createdAt: at, expiresAt: at, lastUsedAt: at });
    expect(listed).not.toHaveProperty('token');
    expect(createdPersonalToken({ id: 't', token: 'cspat_x', name: 'n', permissions: ['users:read'], createdAt: at, expiresAt: null }))
      .toEqual({ id: 't', name: 'n', token: 'cspat_x', permissions: ['users:read'], created_at: at.toISOString(), expires_at: null });
  });

  it('role, audit event, county, department: snake_case, ISO timestamps, sorted permissions', () => {
    expect(publicRole({ id: 1, name: 'R', description: null, permissions: ['b', 'a'], seeded: false, userCount: 2, createdAt: at, updatedAt: at } as never))
      .toEqual({ id: 1, name: 'R', description: null, permissions: ['a', 'b'], seeded: false, user_count: 2, created_at: at.toISOString(), updated_at: at.toISOString() });
    expect(Object.keys(publicAuditEvent({ id: 1, action: 'x', actorId: null, targetUserId: 1, ip: null, userAgent: null, requestId: null, createdAt: at, details: {} } as never)).sort())
      .toEqual(['action', 'actor_id', 'created_at', 'details', 'id', 'ip', 'request_id', 'target_user_id', 'user_agent']);
    expect(publicCounty({ id: 1, name: 'C', createdAt: at, updatedAt: at } as never)).toEqual({ id: 1, name: 'C', created_at: at.toISOString(), updated_at: at.toISOString() });
    expect(publicDepartment({ id: 2, countyId: 1, name: 'D', createdAt: at, updatedAt: at } as never))
      .toEqual({ id: 2, county_id: 1, name: 'D', created_at: at.toISOString(), updated_at: at.toISOString() });
  });
});
