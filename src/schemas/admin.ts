// Schemas of the administration modules: users, roles, organisation, audit. Those with an $id are
// registered once (app.ts) and become OpenAPI components.
import { Type } from 'typebox';
import { Email, NewPassword, Nullable, ProfileText, Timestamp, UserRef } from './common.js';
import { MAX_PER_PAGE, USER_SORT_FIELDS } from '../security/users.js';
import { PERMISSION_PATTERN, ROLE_NAME_PATTERN } from '../security/roles.js';

const Id = Type.Integer({ minimum: 1, maximum: 2147483647 });
const RoleNameRef = Type.String({ minLength: 1, maxLength: 64, description: 'A role name, e.g. "Department Officer"' });
const Permission = Type.String({ pattern: PERMISSION_PATTERN, maxLength: 64, description: 'resource:action, e.g. users:read' });

// ---- users ----

const sortField = `-?(${Object.keys(USER_SORT_FIELDS).join('|')})`;
export const UserListQuery = Type.Object({
  page: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, default: 1 })),
  per_page: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_PER_PAGE, default: 20 })),
  q: Type.Optional(Type.String({ minLength: 1, maxLength: 254, description: 'Case-insensitive substring of email, first, last or full name' })),
  role: Type.Optional(RoleNameRef),
  active: Type.Optional(Type.Boolean()),
  county_id: Type.Optional(Id),
  sort: Type.Optional(Type.String({
    pattern: `^${sortField}(,${sortField})*$`, maxLength: 200,
    description: `Comma-separated fields, "-" for descending: ${Object.keys(USER_SORT_FIELDS).join(', ')}. Default id.`,
    examples: ['email,-created_at'],
  })),
}, { additionalProperties: false });

export const UserListResponse = Type.Object({
  users: Type.Array(UserRef),
  page: Type.Integer(),
  per_page: Type.Integer(),
  total: Type.Integer({ description: 'Users matching the filters (in your scope), across all pages' }),
}, { additionalProperties: false });

export const CreateUserBody = Type.Object({
  email: Email,
  password: NewPassword,
  first_name: Type.Optional(ProfileText(100)),
  last_name: Type.Optional(ProfileText(100)),
  phone_number: Type.Optional(ProfileText(32)),
  address: Type.Optional(ProfileText(500)),
  roles: Type.Optional(Type.Array(RoleNameRef, { maxItems: 20, description: 'Role names; default ["Citizen"]' })),
  active: Type.Optional(Type.Boolean({ description: 'Default true' })),
  confirmed: Type.Optional(Type.Boolean({ description: 'Default true: an administrator vouches for the address' })),
  county_id: Type.Optional(Nullable(Id)),
  department_id: Type.Optional(Nullable(Type.Integer({ minimum: 1, maximum: 2147483647, description: "Must belong to the user's county" }))),
}, {
  additionalProperties: false,
  examples: [{ email: 'officer@example.com', password: 'Quiet-Harbor-93-Lantern', first_name: 'Otieno', roles: ['Department Officer'], county_id: 1, department_id: 1 }],
});

export const PatchUserBody = Type.Object({
  first_name: Type.Optional(ProfileText(100)),
  last_name: Type.Optional(ProfileText(100)),
  phone_number: Type.Optional(ProfileText(32)),
  address: Type.Optional(ProfileText(500)),
  county_id: Type.Optional(Nullable(Id)),
  department_id: Type.Optional(Nullable(Type.Integer({ minimum: 1, maximum: 2147483647, description: "Must belong to the user's (new) county" }))),
}, { additionalProperties: false, minProperties: 1, examples: [{ department_id: 2 }] });

export const UserRolesBody = Type.Object({
  roles: Type.Array(RoleNameRef, { maxItems: 20, description: 'The complete set of role names' }),
}, { additionalProperties: false, examples: [{ roles: ['Citizen', 'Department Officer'] }] });

export const UserRoleParams = Type.Object({ id: Id, role: RoleNameRef }, { additionalProperties: false });

// ---- roles ----

export const RoleSchema = Type.Object({
  id: Type.Integer(),
  name: Type.String(),
  description: Nullable(Type.String()),
  permissions: Type.Array(Type.String()),
  seeded: Type.Boolean({ description: 'Seeded roles can be edited but not renamed or deleted' }),
  user_count: Type.Integer(),
  created_at: Timestamp,
  updated_at: Timestamp,
}, { $id: 'Role', additionalProperties: false });
export const RoleRef = Type.Ref('Role');

const RoleName = Type.String({ pattern: ROLE_NAME_PATTERN, maxLength: 64 });
const Description = Nullable(Type.String({ maxLength: 500 }));
const Permissions = Type.Array(Permission, { maxItems: 100 });

export const CreateRoleBody = Type.Object({
  name: RoleName,
  description: Type.Optional(Description),
  permissions: Type.Optional(Permissions),
}, { additionalProperties: false, examples: [{ name: 'Auditor', description: 'Reads the audit log', permissions: ['audit:read'] }] });

export const PatchRoleBody = Type.Object({
  name: Type.Optional(RoleName),
  description: Type.Optional(Description),
  permissions: Type.Optional(Type.Array(Permission, { maxItems: 100, description: 'The complete set' })),
}, { additionalProperties: false, minProperties: 1, examples: [{ permissions: ['audit:read', 'users:read'] }] });

export const DeleteRoleQuery = Type.Object({
  force: Type.Optional(Type.Boolean({ description: 'Delete even when assigned; the assignments go too' })),
}, { additionalProperties: false });

export const RoleResponse = Type.Object({ role: RoleRef }, { additionalProperties: false });
export const RoleListResponse = Type.Object({ roles: Type.Array(RoleRef) }, { additionalProperties: false });

// ---- organisation ----

export const CountySchema = Type.Object({
  id: Type.Integer(), name: Type.String(), created_at: Timestamp, updated_at: Timestamp,
}, { $id: 'County', additionalProperties: false });
export const DepartmentSchema = Type.Object({
  id: Type.Integer(), county_id: Type.Integer(), name: Type.String(), created_at: Timestamp, updated_at: Timestamp,
}, { $id: 'Department', additionalProperties: false });

export const NameBody = Type.Object({ name: Type.String({ minLength: 1, maxLength: 100 }) }, { additionalProperties: false, examples: [{ name: 'Nakuru' }] });
export const CountyResponse = Type.Object({ county: Type.Ref('County') }, { additionalProperties: false });
export const CountyListResponse = Type.Object({ counties: Type.Array(Type.Ref('County')) }, { additionalProperties: false });
export const DepartmentResponse = Type.Object({ department: Type.Ref('Department') }, { additionalProperties: false });
export const DepartmentListResponse = Type.Object({ departments: Type.Array(Type.Ref('Department')) }, { additionalProperties: false });

// ---- audit ----

export const AuditEventSchema = Type.Object({
  id: Type.Integer(),
  action: Type.String({ description: 'e.g. login.succeeded, login.failed, user.deactivated, role.updated' }),
  actor_id: Nullable(Type.Integer({ description: 'Who did it; null when anonymous or the ops CLI' })),
  target_user_id: Nullable(Type.Integer({ description: 'Whom it concerns' })),
  ip: Nullable(Type.String()),
  user_agent: Nullable(Type.String()),
  request_id: Nullable(Type.String()),
  created_at: Timestamp,
  details: Type.Record(Type.String(), Type.Unknown(), { description: 'Context: reasons, changed fields, role names. Never a secret.' }),
}, { $id: 'AuditEvent', additionalProperties: false });

const Limit = Type.Integer({ minimum: 1, maximum: 100, default: 50 });
const Cursor = Type.String({ minLength: 1, maxLength: 200, description: 'next_cursor of the previous page' });

export const AuditQuery = Type.Object({
  user_id: Type.Optional(Type.Integer({ minimum: 1, maximum: 2147483647, description: 'Events where this user is the actor or the target' })),
  action: Type.Optional(Type.String({ pattern: '^[a-z_]+(\\.[a-z_]+)*$', maxLength: 64 })),
  from: Type.Optional(Type.String({ format: 'date-time', description: 'Inclusive' })),
  to: Type.Optional(Type.String({ format: 'date-time', description: 'Exclusive' })),
  cursor: Type.Optional(Cursor),
  limit: Type.Optional(Limit),
}, { additionalProperties: false });

export const ActivityQuery = Type.Object({
  cursor: Type.Optional(Cursor),
  limit: Type.Optional(Limit),
}, { additionalProperties: false });

export const AuditPageResponse = Type.Object({
  events: Type.Array(Type.Ref('AuditEvent')),
  next_cursor: Nullable(Type.String({ description: 'Pass as cursor for the next (older) page; null on the last page' })),
}, { additionalProperties: false });

/**
 * An event of GET /auth/activity. Events another principal caused (an administrator, the ops CLI) carry
 * only a label: never that principal's id, IP, user agent or request id.
 */
export const ActivityEventSchema = Type.Object({
  id: Type.Integer(),
  action: Type.String({ description: 'e.g. login.succeeded, profile.updated, user.updated' }),
  actor: Type.Union([Type.Literal('self'), Type.Literal('administrator'), Type.Literal('system'), Type.Literal('anonymous')], {
    description: 'self: you; administrator: another account acting on yours; system: the ops CLI or the service itself; ' +
      'anonymous: an unauthenticated request naming your account (e.g. a failed login)',
  }),
  actor_id: Nullable(Type.Integer({ description: 'Your id when actor is self, else null' })),
  target_user_id: Nullable(Type.Integer()),
  ip: Nullable(Type.String({ description: 'Only for self and anonymous events' })),
  user_agent: Nullable(Type.String({ description: 'Only for self and anonymous events' })),
  request_id: Nullable(Type.String({ description: 'Only for self and anonymous events' })),
  created_at: Timestamp,
  details: Type.Record(Type.String(), Type.Unknown()),
}, { $id: 'ActivityEvent', additionalProperties: false });

export const ActivityPageResponse = Type.Object({
  events: Type.Array(Type.Ref('ActivityEvent')),
  next_cursor: Nullable(Type.String({ description: 'Pass as cursor for the next (older) page; null on the last page' })),
}, { additionalProperties: false });

export const ADMIN_SCHEMAS = [RoleSchema, CountySchema, DepartmentSchema, AuditEventSchema, ActivityEventSchema];
