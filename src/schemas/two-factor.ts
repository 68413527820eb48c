// Request/response schemas of two-factor authentication: the login's second step, setup, disable and
// recovery codes.
import { Type } from 'typebox';
import { LoginResponse, OptionalTokenPair } from './auth.js';
import { UserRef } from './common.js';

const TfToken = Type.String({ minLength: 1, maxLength: 256, description: 'The tf_token from POST /login' });
const Code = Type.String({
  minLength: 6, maxLength: 32,
  description: 'The 6-digit code from the authenticator app or the email, or one recovery code (XXXX-XXXX-XXXX)',
});

const TfMethodName = Type.Union([Type.Literal('authenticator'), Type.Literal('email'), Type.Literal('webauthn')]);

export const TwoFactorRequiredResponse = Type.Object({
  tf_required: Type.Literal(true),
  tf_token: TfToken,
  tf_method: Type.Union([Type.Literal('authenticator'), Type.Literal('email'), Type.Literal('webauthn')], {
    description: 'The account\'s two-factor method: "authenticator" (a code from the app), "email" (a code was just mailed to ' +
      'the account\'s address; POST /tf-send-code mails another), "webauthn" (security keys only: POST /wan-signin with tf_token)',
  }),
  tf_methods: Type.Array(TfMethodName, {
    uniqueItems: true, maxItems: 3,
    description: 'Every method that can complete this login: the code method (POST /tf-validate) and "webauthn" when the ' +
      'account has a security key or passkey (POST /wan-signin with tf_token). A recovery code always works at POST /tf-validate.',
  }),
}, {
  additionalProperties: false,
  description: 'The first factor was right; complete the login with a second (see tf_methods) and tf_token. No session yet.',
});

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
  method: Type.Union([Type.Literal('authenticator'), Type.Literal('email')], {
    description: '"authenticator": a TOTP app (answers a secret and QR code); "email": a code is mailed to the account\'s address',
  }),
  tf_token: Type.Optional(Type.String({
    minLength: 1, maxLength: 256,
    description: 'Only for a forced setup at login (tf_setup_required): the tf_token stands in for a session',
  })),
}, { additionalProperties: false, examples: [{ method: 'authenticator' }] });

export const TfEmailSetupResponse = Type.Object({
  method: Type.Literal('email'),
  tf_setup_token: Type.String({ description: 'POST /tf-setup/{tf_setup_token} with the code mailed to your address to switch 2FA on' }),
  expires_in: Type.Integer({ description: 'Seconds the tf_setup_token (and the mailed code) stay valid' }),
}, { additionalProperties: false, description: 'A code was mailed to the account\'s address' });

export const TfAuthenticatorSetupResponse = Type.Object({
  method: Type.Literal('authenticator'),
  secret: Type.String({ description: 'Base32 TOTP secret, for typing into the app' }),
  otpauth_uri: Type.String({ description: 'otpauth://totp/… URI, what the QR code encodes' }),
  qr_code: Type.String({ description: 'The otpauth URI as a PNG QR code (data: URL)' }),
  tf_setup_token: Type.String({ description: 'POST /tf-setup/{tf_setup_token} with a code from the app to switch 2FA on' }),
  expires_in: Type.Integer({ description: 'Seconds the tf_setup_token stays valid' }),
}, { additionalProperties: false });

export const TfSetupResponse = Type.Union([TfAuthenticatorSetupResponse, TfEmailSetupResponse]);

export const TfSendCodeBody = Type.Object({ tf_token: TfToken }, { additionalProperties: false, examples: [{ tf_token: '<tf_token from /login>' }] });

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
