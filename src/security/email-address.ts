// Email addresses, internationalised (RFC 6530/6531, what Flask-Security's email_validator accepts):
// a UTF-8 local part and an IDN domain are welcome; the syntax stays strict (one address, no display
// name, no whitespace, quotes, comments or controls), so an address can never smuggle a header or a
// second recipient.
//
// Canonical form (stored, compared, unique): NFC, the domain through UTS #46 (node:url's
// domainToASCII: lower-cased, mapped, punycoded) and back to Unicode, so "Jane@BÜCHER.example",
// "Jane@xn--bcher-kva.example" and "Jane@bücher.example" are one account. The local part keeps its
// case (PostgreSQL's lower() compares it case-insensitively as before).
//
// Confusables: each domain label and the local part must be "highly restrictive" in the sense of
// UTS #39 §5.2 — one script, or Latin with Han/Hiragana/Katakana (Japanese), Han with Hangul
// (Korean), Han with Bopomofo (Chinese) — so "pаypal.example" with a Cyrillic "а" is refused. This
// is built on the regular expressions' Unicode script properties; no extra library is needed (a
// full confusable-skeleton check, UTS #39 §4, would need the confusables table: not done).
import { domainToASCII, domainToUnicode } from 'node:url';

// RFC 5322 atext plus any non-ASCII letter, mark or number (RFC 6531's UTF8-non-ascii, minus
// spaces, symbols and controls).
const LOCAL_RE = /^[\p{L}\p{M}\p{N}!#$%&'*+/=?^_`{|}~-]+(?:\.[\p{L}\p{M}\p{N}!#$%&'*+/=?^_`{|}~-]+)*$/u;
const ULABEL_RE = /^[\p{L}\p{M}\p{N}](?:[\p{L}\p{M}\p{N}-]{0,61}[\p{L}\p{M}\p{N}])?$/u;
const ALABEL_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

const SCRIPTS = ['Latin', 'Greek', 'Cyrillic', 'Armenian', 'Hebrew', 'Arabic', 'Syriac', 'Thaana', 'Devanagari', 'Bengali', 'Gurmukhi',
  'Gujarati', 'Oriya', 'Tamil', 'Telugu', 'Kannada', 'Malayalam', 'Sinhala', 'Thai', 'Lao', 'Tibetan', 'Myanmar', 'Georgian', 'Hangul',
  'Ethiopic', 'Cherokee', 'Khmer', 'Mongolian', 'Hiragana', 'Katakana', 'Bopomofo', 'Han'] as const;
const SCRIPT_RES = SCRIPTS.map((s) => [s, new RegExp(`\\p{Script=${s}}`, 'u')] as const);
const ALLOWED_MIXES: Array<Set<string>> = [
  new Set(['Latin', 'Han', 'Hiragana', 'Katakana']),
  new Set(['Latin', 'Han', 'Hangul']),
  new Set(['Latin', 'Han', 'Bopomofo']),
];

/** The scripts of the letters in `s` (Common and Inherited characters — digits, '-', marks — belong to none). */
function scriptsOf(s: string): Set<string> {
  const found = new Set<string>();
  for (const ch of s) {
    if (!/\p{L}/u.test(ch)) continue;
    const hit = SCRIPT_RES.find(([, re]) => re.test(ch));
    found.add(hit ? hit[0] : 'Other');
  }
  return found;
}

/** True when `s` mixes scripts in a way UTS #39's "highly restrictive" level does not allow. */
export function isMixedScript(s: string): boolean {
  const scripts = scriptsOf(s);
  if (scripts.size <= 1) return false;
  return !ALLOWED_MIXES.some((allowed) => [...scripts].every((x) => allowed.has(x)));
}

const utf8Length = (s: string) => Buffer.byteLength(s, 'utf8');

/** The ASCII (punycode) form of a domain, or '' when it is not a valid host name for mail. */
function asciiDomain(domain: string): string {
  const labels = domain.split('.');
  if (labels.length < 2 || labels.some((l) => !ULABEL_RE.test(l) || isMixedScript(l))) return '';
  const ascii = domainToASCII(domain);
  if (!ascii || ascii.length > 253) return '';
  const aLabels = ascii.split('.');
  if (aLabels.length !== labels.length || aLabels.some((l) => !ALABEL_RE.test(l))) return '';
  if (/^[0-9]+$/.test(aLabels[aLabels.length - 1]!)) return '';
  return ascii;
}

/** One plain address (internationalised allowed), nothing else. */
export function isMailAddress(value: string): boolean {
  if (typeof value !== 'string' || value.length > 320) return false;
  const at = value.lastIndexOf('@');
  if (at < 1 || value.indexOf('@') !== at) return false;
  const local = value.slice(0, at).normalize('NFC');
  const domain = value.slice(at + 1).normalize('NFC');
  if (utf8Length(local) > 64 || !LOCAL_RE.test(local) || isMixedScript(local)) return false;
  const ascii = asciiDomain(domain);
  return ascii !== '' && utf8Length(local) + 1 + ascii.length <= 254;
}

/** The canonical form of an address (see the header comment); call on valid addresses. */
export function canonicalEmail(email: string): string {
  const v = email.trim().normalize('NFC');
  const at = v.lastIndexOf('@');
  if (at < 1) return v;
  const ascii = domainToASCII(v.slice(at + 1));
  if (!ascii) return v;
  return `${v.slice(0, at)}@${domainToUnicode(ascii).normalize('NFC')}`;
}

/** True when the address needs SMTPUTF8 (a non-ASCII local part; an IDN domain alone is punycoded). */
export function needsSmtpUtf8(email: string): boolean {
  const at = email.lastIndexOf('@');
  return /[\u0080-\u{10FFFF}]/u.test(email.slice(0, at));
}
