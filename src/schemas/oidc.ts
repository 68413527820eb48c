// OpenID Connect sign-in: request and response schemas (spec/api.md §3).
import { Type } from 'typebox';
import { Nullable, Timestamp } from './common.js';

export const ProviderParam = Type.Object({
  provider: Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,31}$', description: 'A provider name from SECURITY_OAUTH_PROVIDERS' }),
}, { additionalProperties: false });

export const OAuthStartQuery = Type.Object({
  next: Type.String({ minLength: 1, maxLength: 2048, description: 'Where the browser returns: must match SECURITY_OAUTH_ALLOWED_REDIRECTS (an origin, a URL prefix, or a custom scheme such as countyapp:)' }),
}, { additionalProperties: false });

// The provider builds this query, not our client: providers add parameters of their own (Google:
// scope, authuser, prompt, hd; Entra: session_state), so unknown ones are accepted and ignored.
export const OAuthResponseQuery = Type.Object({
  code: Type.Optional(Type.String({ maxLength: 4096 })),
  state: Type.Optional(Type.String({ maxLength: 512 })),
  iss: Type.Optional(Type.String({ maxLength: 2048 })),
  error: Type.Optional(Type.String({ maxLength: 256 })),
  error_description: Type.Optional(Type.String({ maxLength: 4096 })),
}, { additionalProperties: true });

export const Redirect = Type.Null({ description: 'Redirect (Location header); no body' });

export const LoginCodeBody = Type.Object({
  login_code: Type.String({ minLength: 1, maxLength: 256, description: 'The one-time login_code from next (single use, 60 s)' }),
  remember: Type.Optional(Type.Boolean()),
}, { additionalProperties: false, examples: [{ login_code: '<login_code from next>' }] });

export const Identity = Type.Object({
  provider: Type.String(),
  display_name: Type.String(),
  email: Nullable(Type.String()),
  created_at: Timestamp,
  last_used_at: Nullable(Timestamp),
}, { additionalProperties: false });

export const IdentitiesResponse = Type.Object({
  identities: Type.Array(Identity),
  providers: Type.Array(Type.Object({ name: Type.String(), display_name: Type.String() }, { additionalProperties: false }),
    { description: 'The configured providers (for "Sign in with …" and "Link …" buttons)' }),
}, { additionalProperties: false });

export const ProvidersResponse = Type.Object({
  providers: Type.Array(Type.Object({ name: Type.String(), display_name: Type.String() }, { additionalProperties: false })),
}, { additionalProperties: false });
