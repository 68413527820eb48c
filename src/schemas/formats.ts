// String formats used by the schemas, registered once with TypeBox's validator.
import Format from 'typebox/format';
// One address, no display name, no whitespace or CR/LF: nothing that can smuggle a header. The mail
// layer checks every recipient with the same rule.
import { isMailAddress } from '../security/mail.js';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function registerFormats() {
  Format.Set('email', (v) => isMailAddress(v));
  Format.Set('uuid', (v) => UUID_RE.test(v));
  Format.Set('date-time', (v) => !Number.isNaN(Date.parse(v)) && /^\d{4}-\d{2}-\d{2}T/.test(v));
}
