// The messages: small templates producing a plain-text and an HTML body. Every value that comes
// from a user (names, addresses) is HTML-escaped in the HTML body; links come from configuration
// and signed tokens and are escaped too.
import { escapeHtml, headerText } from './mail.js';

export interface RenderedMail { subject: string; text: string; html: string; links: string[] }

type Block = { p: string } | { link: string; label: string };

const SIGNATURE = 'County Services';

/** The longest name a message repeats (greeting, To display name). */
export const MAIL_NAME_MAX = 50;
// A name that carries a link: a scheme ("https:", "javascript:", "mailto:"), "://", "www.", an "@",
// or a bare domain ("evil.example", "secure-login.co.uk", IDN labels too). Mail clients turn these
// into clickable links, so an attacker's "first name" would reach the real owner of an address as a
// link in our own message; such a name is left out.
const SCHEME_RE = /(^|[^\p{L}\p{N}])[\p{L}][\p{L}\p{N}+.-]*:(?=\S)/u;
const DOMAIN_RE = /[\p{L}\p{N}-]+(\.[\p{L}\p{N}-]+)*\.\p{L}[\p{L}\p{N}-]{1,62}(?![\p{L}\p{N}])/u;

/**
 * A user-supplied name as the messages may show it: one line of plain text without controls,
 * length-capped, or null when it looks like a link (see above). Escaping for HTML happens at output.
 */
export function mailSafeName(name: string | null | undefined): string | null {
  const text = headerText(name, MAIL_NAME_MAX);
  if (!text) return null;
  const folded = text.normalize('NFKC');
  if (folded.includes('://') || /www\./i.test(folded) || folded.includes('@') || SCHEME_RE.test(folded) || DOMAIN_RE.test(folded)) return null;
  return text;
}

function compose(subject: string, name: string | null, blocks: Block[]): RenderedMail {
  const greetingName = mailSafeName(name);
  const greeting = greetingName ? `Hello ${greetingName},` : 'Hello,';
  const text: string[] = [greeting, ''];
  const html: string[] = [`<p>${escapeHtml(greeting)}</p>`];
  const links: string[] = [];
  for (const b of blocks) {
    if ('p' in b) {
      text.push(b.p, '');
      html.push(`<p>${escapeHtml(b.p)}</p>`);
    } else {
      links.push(b.link);
      text.push(`${b.label}:`, b.link, '');
      html.push(`<p><a href="${escapeHtml(b.link)}">${escapeHtml(b.label)}</a></p>`,
        `<p style="font-size:12px;color:#555">If the button does not work, copy this address into your browser:<br>${escapeHtml(b.link)}</p>`);
    }
  }
  text.push(`-- ${SIGNATURE}`, '');
  const doc = [
    '<!doctype html>',
    '<html><head><meta charset="utf-8">',
    `<title>${escapeHtml(subject)}</title></head>`,
    '<body style="font-family:Arial,Helvetica,sans-serif;line-height:1.5;color:#222">',
    ...html,
    `<p>-- ${escapeHtml(SIGNATURE)}</p>`,
    '</body></html>',
    '',
  ].join('\n');
  return { subject, text: text.join('\n'), html: doc, links };
}

/** 3600 → "1 hour", 172800 → "48 hours", 90 → "90 seconds". */
export function humanDuration(seconds: number): string {
  const unit = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
  if (seconds >= 3600 && seconds % 3600 === 0) return unit(seconds / 3600, 'hour');
  if (seconds >= 60 && seconds % 60 === 0) return unit(seconds / 60, 'minute');
  return unit(seconds, 'second');
}

/** "jane.doe@example.com" → "j***@example.com": enough to recognise, not enough to harvest. */
export function maskEmail(email: string): string {
  const at = email.lastIndexOf('@');
  if (at < 1) return '***';
  return `${email[0]}***${email.slice(at)}`;
}

export const templates = {
  welcome: (d: { name: string | null; email: string }) => compose('Welcome to County Services', d.name, [
    { p: `Your County Services account for ${d.email} is ready. You can sign in with this address and the password you chose.` },
    { p: 'If you did not create this account, contact the county so it can be closed.' },
  ]),

  confirm: (d: { name: string | null; email: string; link: string; within: string; welcome: boolean }) => compose(
    d.welcome ? 'Welcome to County Services: confirm your email address' : 'Confirm your email address', d.name, [
      ...(d.welcome ? [{ p: 'Thank you for creating a County Services account.' }] : []),
      { p: `Please confirm that ${d.email} is your email address by opening the link below. It is valid for ${d.within}.` },
      { link: d.link, label: 'Confirm my email address' },
      { p: 'If you did not create an account, you can ignore this message.' },
    ]),

  register_existing: (d: { name: string | null; email: string; resetLink: string | null; within: string }) => compose(
    'Someone tried to register with your email address', d.name, [
      { p: `Someone (perhaps you) tried to create a County Services account with ${d.email}. This address already has an account, so no new account was created.` },
      ...(d.resetLink
        ? [{ p: `If you forgot your password, you can choose a new one with this link (valid for ${d.within}):` }, { link: d.resetLink, label: 'Reset my password' }]
        : []),
      { p: 'If it was not you, you can ignore this message; your account is unchanged.' },
    ]),

  reset: (d: { name: string | null; link: string; within: string }) => compose('Reset your password', d.name, [
    { p: `We received a request to reset the password of your County Services account. Open the link below to choose a new password. It is valid for ${d.within} and works once.` },
    { link: d.link, label: 'Choose a new password' },
    { p: 'If you did not ask for this, ignore this message: your password stays as it is.' },
  ]),

  password_reset: (d: { name: string | null }) => compose('Your password was reset', d.name, [
    { p: 'The password of your County Services account was just reset, and every session was signed out.' },
    { p: 'If you did not do this, reset your password again at once and contact the county.' },
  ]),

  password_changed: (d: { name: string | null }) => compose('Your password was changed', d.name, [
    { p: 'The password of your County Services account was just changed. Your other sessions were signed out.' },
    { p: 'If you did not do this, reset your password at once ("forgot password") and contact the county.' },
  ]),

  change_email: (d: { name: string | null; newEmail: string; link: string; within: string }) => compose(
    'Confirm your new email address', d.name, [
      { p: `Open the link below to make ${d.newEmail} the email address of your County Services account. It is valid for ${d.within}.` },
      { link: d.link, label: 'Confirm my new email address' },
      { p: 'If you did not ask for this, ignore this message: nothing changes.' },
    ]),

  change_email_requested: (d: { name: string | null; maskedNew: string }) => compose(
    'A change of your email address was requested', d.name, [
      { p: `Someone signed in to your County Services account asked to change its email address to ${d.maskedNew}. Nothing changes until the link sent to the new address is opened.` },
      { p: 'If this was not you, change your password now and sign out of all sessions.' },
    ]),

  email_changed: (d: { name: string | null; maskedNew: string }) => compose('Your email address was changed', d.name, [
    { p: `The email address of your County Services account was changed to ${d.maskedNew}. This address will no longer receive messages about the account.` },
    { p: 'If you did not do this, contact the county at once.' },
  ]),

  account_locked: (d: { name: string | null; until: string; resetLink: string | null; within: string }) => compose(
    'Sign-in to your account was paused', d.name, [
      { p: `There were too many failed attempts to sign in to your County Services account, so sign-in is paused until ${d.until} (UTC).` },
      { p: 'If it was you, wait until then. If it was not, someone may be guessing your password: choose a new one.' },
      ...(d.resetLink ? [{ link: d.resetLink, label: 'Reset my password' }, { p: `The link is valid for ${d.within}.` }] : []),
    ]),

  us_signin: (d: { name: string | null; code: string; link: string; within: string }) => compose('Your sign-in code', d.name, [
    { p: `Your County Services sign-in code is ${d.code}. Enter it where you asked for it, or open the link below on this device. Both work once and are valid for ${d.within}.` },
    { link: d.link, label: 'Sign me in' },
    { p: 'If you did not ask to sign in, ignore this message: nobody can sign in without the code or the link. Never tell anyone the code.' },
  ]),

  tf_email_code: (d: { name: string | null; code: string; within: string; setup: boolean }) => compose(
    d.setup ? 'Confirm two-factor sign-in by email' : 'Your two-factor sign-in code', d.name, d.setup
      ? [
          { p: `Your County Services confirmation code is ${d.code}. Enter it where you asked for it to receive your second sign-in step by email from now on. It works once and is valid for ${d.within}.` },
          { p: 'If you did not ask for this, someone may know your password: change it, and ignore this message (nothing changes without the code).' },
        ]
      : [
          { p: `Your County Services two-factor code is ${d.code}. Enter it where you signed in. It works once and is valid for ${d.within}.` },
          { p: 'If you did not just sign in, someone knows your password: change it now. Never tell anyone the code.' },
        ]),
} as const;

export type MailTemplate = keyof typeof templates;
