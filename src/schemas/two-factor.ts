// Request/response schemas of two-factor authentication: the login's second step, setup, disable and
// recovery codes.
import { Type } from 'typebox';
import { LoginResponse, OptionalTokenPair } from './auth.js';
import { UserRef } from './common.js';

const TfToken = Type.String({ minLength: 1, maxLength: 256, description: 'The tf_token from POST /login' });
const Code = Type.String({
  minLength: 6, maxLength: 32,
  description: 'The 6-digit code from the authenticator app, or one recovery code (XXXX-XXXX-XXXX)',
});

export const TwoFactorRequiredResponse = Type.Object({
  tf_required: Type.Literal(true),
  tf_token: TfToken,
  tf_method: Type.Literal('authenticator'),
}, { additionalProperties: false, description: 'The password was right; send a code to POST /tf-validate with tf_token. No session yet.' });

export const TwoFactorSetupRequiredResponse = Type.Object({
  tf_required: Type.Literal(true),
  tf_setup_required: Type.Literal(true),
  tf_token: TfToken,
}, {
  additionalProperties: false,
  description: 'Your role requires two-factor authentication and it is not set up: POST /tf-setup with tf_token, then ' +
    'POST /tf-setup/{tf_setup_token} with a code, which completes the login. No session yet.',
});

/** The replay (Idempotent-Replayed) of a registration answered with the forced setup: its tf_token is not stored, not replayed. */
export const TwoFactorSetupReplayResponse = Type.Object({
  tf_required: Type.Literal(true),
  tf_setup_required: Type.Literal(true),
}, {
  additionalProperties: false,
  description: 'The replay of a registration that answered tf_setup_required: the tf_token is a credential and is not replayed; ' +
    'POST /login with the registered password for a new one.',
});

export const LoginOrTwoFactorResponse = Type.Union([LoginResponse, TwoFactorRequiredResponse, TwoFactorSetupRequiredResponse]);

export const TfValidateBody = Type.Object({ tf_token: TfToken, code: Code }, {
  additionalProperties: false, examples: [{ tf_token: '<tf_token from /login>', code: '123456' }],
});

export const TfSetupBody = Type.Object({
  method: Type.Literal('authenticator'),
  tf_token: Type.Optional(Type.String({
    minLength: 1, maxLength: 256,
    description: 'Only for a forced setup at login (tf_setup_required): the tf_token stands in for a session',
  })),
}, { additionalProperties: false, examples: [{ method: 'authenticator' }] });

export const TfSetupResponse = Type.Object({
  secret: Type.String({ description: 'Base32 TOTP secret, for typing into the app' }),
  otpauth_uri: Type.String({ description: 'otpauth://totp/… URI, what the QR code encodes' }),
  qr_code: Type.String({ description: 'The otpauth URI as a PNG QR code (data: URL)' }),
  tf_setup_token: Type.String({ description: 'POST /tf-setup/{tf_setup_token} with a code from the app to switch 2FA on' }),
  expires_in: Type.Integer({ description: 'Seconds the tf_setup_token stays valid' }),
}, { additionalProperties: false });

export const TfSetupTokenParam = Type.Object({
  tf_setup_token: Type.String({ minLength: 1, maxLength: 1024, description: 'From POST /tf-setup' }),
}, { additionalProperties: false });

export const TfCodeBody = Type.Object({ code: Code }, { additionalProperties: false, examples: [{ code: '123456' }] });

const RecoveryCodes = Type.Array(Type.String(), { minItems: 10, maxItems: 10, description: 'Single-use recovery codes, shown once' });

export const RecoveryCodesResponse = Type.Object({ recovery_codes: RecoveryCodes }, { additionalProperties: false });

export const TfSetupDoneResponse = Type.Object({
  recovery_codes: RecoveryCodes,
  user: Type.Optional(UserRef),
  ...OptionalTokenPair,
}, {
  additionalProperties: false,
  description: 'The recovery codes; after a forced setup at login also the login answer (user, token pair, csrf_token; the cookie is set)',
});
