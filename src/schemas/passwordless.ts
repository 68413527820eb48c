// Request/response schemas of passwordless sign-in: passkeys (WebAuthn) and unified sign-in by email.
import { Type } from 'typebox';
import { Email, Timestamp } from './common.js';

const B64url = (max: number, description?: string) => Type.String({ pattern: '^[A-Za-z0-9_-]*$', maxLength: max, ...(description ? { description } : {}) });

const WanState = Type.String({ minLength: 1, maxLength: 128, description: 'From the options request; names the challenge (single use, SECURITY_WAN_CHALLENGE_TIMEOUT)' });
export const WanStateParam = Type.Object({ wan_state: WanState }, { additionalProperties: false });

const Usage = Type.Union([Type.Literal('first'), Type.Literal('secondary')], {
  description: '"first": a passkey that signs in on its own (discoverable, user verification required); "secondary": a key that completes a ' +
    'two-factor login (and, on an account without another method, switches two-factor on)',
});
const CredentialName = Type.String({ minLength: 1, maxLength: 64, description: 'Your name for the key, unique among your keys (case-insensitive)' });

const Transports = Type.Array(Type.String({ maxLength: 32 }), { maxItems: 10 });
const ExtensionResults = Type.Record(Type.String(), Type.Unknown(), { description: 'clientExtensionResults as the browser gave them' });
const Attachment = Type.Union([Type.Literal('platform'), Type.Literal('cross-platform')]);

export const RegistrationCredential = Type.Object({
  id: B64url(1400),
  rawId: B64url(1400),
  type: Type.Literal('public-key'),
  response: Type.Object({
    clientDataJSON: B64url(8192),
    attestationObject: B64url(65536),
    authenticatorData: Type.Optional(B64url(65536)),
    transports: Type.Optional(Transports),
    publicKeyAlgorithm: Type.Optional(Type.Integer()),
    publicKey: Type.Optional(B64url(8192)),
  }, { additionalProperties: false }),
  authenticatorAttachment: Type.Optional(Attachment),
  clientExtensionResults: ExtensionResults,
}, { additionalProperties: false, description: 'The browser\'s RegistrationResponseJSON (e.g. from @simplewebauthn/browser startRegistration)' });

export const AuthenticationCredential = Type.Object({
  id: B64url(1400),
  rawId: B64url(1400),
  type: Type.Literal('public-key'),
  response: Type.Object({
    clientDataJSON: B64url(8192),
    authenticatorData: B64url(65536),
    signature: B64url(8192),
    userHandle: Type.Optional(B64url(512)),
  }, { additionalProperties: false }),
  authenticatorAttachment: Type.Optional(Attachment),
  clientExtensionResults: ExtensionResults,
}, { additionalProperties: false, description: 'The browser\'s AuthenticationResponseJSON (e.g. from @simplewebauthn/browser startAuthentication)' });

const exampleRegistration = {
  id: 'AbCd', rawId: 'AbCd', type: 'public-key',
  response: { clientDataJSON: 'eyJ0eXBlIjoid2ViYXV0aG4uY3JlYXRlIn0', attestationObject: 'o2NmbXRkbm9uZQ', transports: ['internal'] },
  clientExtensionResults: {},
};
const exampleAssertion = {
  id: 'AbCd', rawId: 'AbCd', type: 'public-key',
  response: { clientDataJSON: 'eyJ0eXBlIjoid2ViYXV0aG4uZ2V0In0', authenticatorData: 'SZYN5YgOjGh0NBcP', signature: 'MEUCIQ' },
  clientExtensionResults: {},
};

export const WanRegisterBody = Type.Object({ name: CredentialName, usage: Usage }, {
  additionalProperties: false, examples: [{ name: 'My laptop', usage: 'first' }],
});
export const WanRegisterFinishBody = Type.Object({ credential: RegistrationCredential }, {
  additionalProperties: false, examples: [{ credential: exampleRegistration }],
});
export const WanAssertionBody = Type.Object({ credential: AuthenticationCredential }, {
  additionalProperties: false, examples: [{ credential: exampleAssertion }],
});

export const CreationOptionsResponse = Type.Object({
  wan_state: WanState,
  credential_options: Type.Record(Type.String(), Type.Unknown(), { description: 'PublicKeyCredentialCreationOptionsJSON: hand to startRegistration({ optionsJSON })' }),
}, { additionalProperties: false });
export const RequestOptionsResponse = Type.Object({
  wan_state: WanState,
  credential_options: Type.Record(Type.String(), Type.Unknown(), { description: 'PublicKeyCredentialRequestOptionsJSON: hand to startAuthentication({ optionsJSON })' }),
}, { additionalProperties: false });

export const WanCredential = Type.Object({
  id: Type.String({ format: 'uuid' }),
  name: Type.String(),
  usage: Usage,
  created_at: Timestamp,
  last_used_at: Type.Union([Timestamp, Type.Null()]),
  transports: Type.Array(Type.String()),
  backed_up: Type.Boolean({ description: 'The authenticator says the key is synced (e.g. a cloud keychain)' }),
}, { additionalProperties: false, description: 'A registered passkey or security key (its public key is never shown)' });

export const WanCredentialResponse = Type.Object({ credential: WanCredential }, { additionalProperties: false });
export const WanCredentialsResponse = Type.Object({ credentials: Type.Array(WanCredential) }, { additionalProperties: false });
export const WanDeleteBody = Type.Object({ name: CredentialName }, { additionalProperties: false, examples: [{ name: 'My laptop' }] });
export const WanRenameBody = Type.Object({ name: CredentialName, new_name: CredentialName }, {
  additionalProperties: false, examples: [{ name: 'My laptop', new_name: 'Work laptop' }],
});

export const WanSigninBody = Type.Object({
  identity: Type.Optional(Email),
  remember: Type.Optional(Type.Boolean()),
  tf_token: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'A tf_token from a login that answered tf_required: the key completes it (second factor)' })),
}, { additionalProperties: false, examples: [{}, { identity: 'jane@example.com', remember: true }] });

export const UsSendCodeBody = Type.Object({
  identity: Email,
  chosen_method: Type.Literal('email'),
}, { additionalProperties: false, examples: [{ identity: 'jane@example.com', chosen_method: 'email' }] });

export const UsSigninBody = Type.Object({
  identity: Email,
  passcode: Type.String({ minLength: 6, maxLength: 16, description: 'The 6-digit code from the email' }),
  remember: Type.Optional(Type.Boolean()),
}, { additionalProperties: false, examples: [{ identity: 'jane@example.com', passcode: '123456' }] });

const UsToken = Type.String({ minLength: 1, maxLength: 256, description: 'The token of the sign-in link' });
export const UsLinkBody = Type.Object({ token: UsToken, remember: Type.Optional(Type.Boolean()) }, {
  additionalProperties: false, examples: [{ token: '<token from the link>' }],
});
export const UsLinkParam = Type.Object({ token: UsToken }, { additionalProperties: false });
export const LinkValidResponse = Type.Object({ valid: Type.Literal(true) }, { additionalProperties: false });
export const UserPasskeyParams = Type.Object({
  id: Type.Integer({ minimum: 1, maximum: 2147483647 }),
  credential_id: Type.String({ format: 'uuid', description: 'The `id` of the credential in the list' }),
}, { additionalProperties: false });
