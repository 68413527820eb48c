// Response shaping: the public user object of the contract (§4). Never the hash, the uniquifier or
// any secret; the response schema enforces the same list on the way out.
import type { UserRecord } from '../security/datastore.js';

const iso = (d: Date | null) => (d ? d.toISOString() : null);

// Users served from the auth cache are the same object across requests: shape each once.
const shaped = new WeakMap<UserRecord, ReturnType<typeof shapeUser>>();

export function publicUser(u: UserRecord, extra: { tfEnabled?: boolean } = {}) {
  if (extra.tfEnabled !== undefined) return shapeUser(u, extra);
  let out = shaped.get(u);
  if (!out) shaped.set(u, (out = shapeUser(u, extra)));
  return out;
}

function shapeUser(u: UserRecord, extra: { tfEnabled?: boolean }) {
  const full = [u.firstName, u.lastName].filter(Boolean).join(' ');
  return {
    id: u.id,
    email: u.email,
    first_name: u.firstName,
    last_name: u.lastName,
    full_name: full || null,
    phone_number: u.phoneNumber,
    address: u.address,
    active: u.active,
    confirmed_at: iso(u.confirmedAt),
    created_at: u.createdAt.toISOString(),
    updated_at: u.updatedAt.toISOString(),
    roles: u.roles,
    permissions: u.permissions,
    county_id: u.countyId,
    department_id: u.departmentId,
    tf_enabled: extra.tfEnabled ?? (u.tfPrimaryMethod !== null && u.tfTotpSecret !== null),
    last_login_at: iso(u.lastLoginAt),
    current_login_at: iso(u.currentLoginAt),
    last_login_ip: u.lastLoginIp,
    current_login_ip: u.currentLoginIp,
    login_count: u.loginCount,
  };
}
