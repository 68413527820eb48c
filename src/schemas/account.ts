// Request/response schemas of the account lifecycle views: confirm, reset, change password, verify,
// change email.
import { Type } from 'typebox';
import { Email, LoginPassword, NewPassword } from './common.js';

export const EmailBody = Type.Object({ email: Email }, { additionalProperties: false, examples: [{ email: 'jane@example.com' }] });

/** One-time link tokens travel in the path (up to 1 KB, the router's maxParamLength). */
export const LinkTokenParam = Type.Object({
  token: Type.String({ minLength: 1, maxLength: 1024, description: 'The token from the emailed link' }),
}, { additionalProperties: false });

export const ResetPasswordBody = Type.Object({ password: NewPassword }, { additionalProperties: false, examples: [{ password: 'Quiet-Harbor-93-Lantern' }] });
export const ResetLinkResponse = Type.Object({ valid: Type.Literal(true), email: Type.String() }, { additionalProperties: false });
export const ConfirmResponse = Type.Object({ confirmed: Type.Literal(true) }, { additionalProperties: false });

export const ChangePasswordBody = Type.Object({
  password: LoginPassword,
  new_password: NewPassword,
}, { additionalProperties: false, examples: [{ password: 'Quiet-Harbor-93-Lantern', new_password: 'Amber-Meadow-41-Compass' }] });

export const VerifyBody = Type.Object({ password: LoginPassword }, { additionalProperties: false, examples: [{ password: 'Quiet-Harbor-93-Lantern' }] });

export const ChangeEmailBody = Type.Object({
  email: Email,
  password: LoginPassword,
}, { additionalProperties: false, examples: [{ email: 'jane.new@example.com', password: 'Quiet-Harbor-93-Lantern' }] });

/** POST /change-email/{token} takes no fields; an empty object (or no body) is accepted. */
export const EmptyBody = Type.Object({}, { additionalProperties: false, examples: [{}] });
