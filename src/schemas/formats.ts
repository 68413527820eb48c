// String formats used by the schemas, registered once with TypeBox's validator.
import Format from 'typebox/format';
// One address, no display name, no whitespace or CR/LF: nothing that can smuggle a header. The mail
// layer checks every recipient with the same rule.
import { isMailAddress } from '../security/mail.js';
import { isSafeText } from './text-policy.js';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// RFC 3339 date-time (a 'T', seconds, an offset or Z). The year range keeps every accepted value
// inside what PostgreSQL's timestamptz and JavaScript's Date both represent exactly.
const DATE_TIME_RE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d{1,9})?(?:Z|[+-](\d{2}):(\d{2}))$/i;
export const MIN_YEAR = 1900;
export const MAX_YEAR = 9999;

export function isDateTime(v: string): boolean {
  const m = DATE_TIME_RE.exec(v);
  if (!m) return false;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  if (year < MIN_YEAR || year > MAX_YEAR || month < 1 || month > 12 || hour > 23 || minute > 59 || second > 60) return false;
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (day < 1 || day > daysInMonth) return false;
  if (m[7] !== undefined && (Number(m[7]) > 23 || Number(m[8]) > 59)) return false;
  const t = Date.parse(v);
  // 9999-12-31T23:59:59-01:00 is year 10000 in UTC; 1900-01-01T00:00:00+01:00 is 1899
  return !Number.isNaN(t) && new Date(t).getUTCFullYear() >= MIN_YEAR && new Date(t).getUTCFullYear() <= MAX_YEAR;
}

export function registerFormats() {
  Format.Set('email', (v) => isSafeText(v) && isMailAddress(v));
  Format.Set('uuid', (v) => UUID_RE.test(v));
  Format.Set('date-time', (v) => isDateTime(v));
}
