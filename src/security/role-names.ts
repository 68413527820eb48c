// The role vocabulary of the contract (§5): the three seeded roles and their permissions. The core,
// the routes and the seed all name roles through this module.
export const ROLE_CITIZEN = 'Citizen';
export const ROLE_OFFICER = 'Department Officer';
export const ROLE_ADMIN = 'County Admin';

export const SEEDED_ROLES = [
  { name: ROLE_CITIZEN, description: 'A member of the public using county services', permissions: ['profile:read', 'profile:write'] },
  {
    name: ROLE_OFFICER,
    description: 'Staff of a county department; reads the users of their own county',
    permissions: ['profile:read', 'profile:write', 'users:read', 'org:read'],
  },
  {
    name: ROLE_ADMIN,
    description: 'Administers users, roles and the organisation',
    permissions: ['profile:read', 'profile:write', 'users:read', 'users:write', 'roles:read', 'roles:write', 'audit:read', 'org:read', 'org:write'],
  },
] as const;

export const SEEDED_ROLE_NAMES: readonly string[] = SEEDED_ROLES.map((r) => r.name);
