import { Type } from 'typebox';
import { Email, LoginPassword, NewPassword, ProfileText, Timestamp, UserRef, Nullable } from './common.js';

export const RegisterBody = Type.Object({
  email: Email,
  password: NewPassword,
  first_name: Type.Optional(ProfileText(100)),
  last_name: Type.Optional(ProfileText(100)),
  phone_number: Type.Optional(ProfileText(32)),
  address: Type.Optional(ProfileText(500)),
  county_id: Type.Optional(Nullable(Type.Integer({ minimum: 1, maximum: 2147483647 }))),
}, { additionalProperties: false, examples: [{ email: 'jane@example.com', password: 'correct horse battery', first_name: 'Jane' }] });

export const LoginBody = Type.Object({
  email: Email,
  password: LoginPassword,
  remember: Type.Optional(Type.Boolean({ description: 'Persist the session cookie across browser restarts' })),
}, { additionalProperties: false, examples: [{ email: 'admin@test.com', password: 'password123' }] });

export const TokenPair = {
  access_token: Type.String(),
  token_type: Type.Literal('Bearer'),
  expires_in: Type.Integer({ description: 'Access token lifetime, seconds' }),
  refresh_token: Type.String(),
  refresh_expires_in: Type.Integer({ description: 'Seconds until the session ends at the latest' }),
  csrf_token: Type.String({ description: 'Send as X-CSRF-Token on unsafe cookie-authenticated requests' }),
};

export const LoginResponse = Type.Object({ user: UserRef, ...TokenPair }, { additionalProperties: false });
/** The token pair's fields for answers that carry a login only sometimes (auto-login, forced 2FA setup). */
export const OptionalTokenPair = {
  access_token: Type.Optional(TokenPair.access_token),
  token_type: Type.Optional(TokenPair.token_type),
  expires_in: Type.Optional(TokenPair.expires_in),
  refresh_token: Type.Optional(TokenPair.refresh_token),
  refresh_expires_in: Type.Optional(TokenPair.refresh_expires_in),
  csrf_token: Type.Optional(TokenPair.csrf_token),
};

export const RegisterResponse = Type.Object({
  user: UserRef,
  ...OptionalTokenPair,
}, { additionalProperties: false, description: 'The new user; with the token pair when no confirmation is required (auto-login)' });

export const RefreshBody = Type.Object({ refresh_token: Type.String({ minLength: 1, maxLength: 512 }) }, {
  additionalProperties: false, examples: [{ refresh_token: '6f1c2a9e-0d7b-4c55-9d1e-2b8f4a7c3e10.0.<mac from the login answer>' }],
});
export const RefreshResponse = Type.Object({ user: UserRef, ...TokenPair }, { additionalProperties: false });
export const LogoutBody = Type.Object({ refresh_token: Type.Optional(Type.String({ maxLength: 512 })) }, { additionalProperties: false, examples: [{}] });

export const CurrentUserResponse = Type.Object({ user: UserRef, status: Type.Literal('success') }, { additionalProperties: false });
export const UserResponse = Type.Object({ user: UserRef }, { additionalProperties: false });
export const ProfilePatchBody = Type.Object({
  first_name: Type.Optional(ProfileText(100)),
  last_name: Type.Optional(ProfileText(100)),
  phone_number: Type.Optional(ProfileText(32)),
  address: Type.Optional(ProfileText(500)),
}, { additionalProperties: false, minProperties: 1, examples: [{ phone_number: '+254700000000' }] });

export const CsrfResponse = Type.Object({ csrf_token: Type.String() }, { additionalProperties: false });
export const SessionItem = Type.Object({
  id: Type.String({ format: 'uuid' }),
  created_at: Timestamp,
  last_used_at: Timestamp,
  ip: Nullable(Type.String()),
  user_agent: Nullable(Type.String()),
  current: Type.Boolean(),
}, { additionalProperties: false });
export const SessionsResponse = Type.Object({ sessions: Type.Array(SessionItem) }, { additionalProperties: false });
