// What each outbox row means, rendered at delivery time. Links are signed here, from claims that are
// either computed now from the account (confirm, reset: requests by address are resolved only at
// delivery, so known and unknown addresses cost a request the same) or were fixed when the request
// was made (change_email: bound to the account state the password-checked request saw). The row
// never holds a usable token. A null result means "nothing to send" (the row is marked skipped).
import type { OutboxRow } from '../db/schema/index.js';
import type { SecurityContext } from './context.js';
import { findUser, type UserRecord } from './datastore.js';
import { fingerprintMatches, isConfiguredLink, linkClaims, linkLifetime, linkUrl, signLink, type LinkClaims } from './links.js';
import type { OutgoingMail } from './mail.js';
import { signinMailContent } from './unified-signin.js';
import { twoFactorMailContent } from './two-factor.js';
import { humanDuration, mailSafeName, maskEmail, templates, type MailTemplate, type RenderedMail } from './mail-templates.js';

const fullName = (u: UserRecord) => [u.firstName, u.lastName].filter(Boolean).join(' ') || null;
const sameAddress = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();

async function subject(ctx: SecurityContext, row: OutboxRow): Promise<UserRecord | null> {
  if (row.userId !== null) return findUser(ctx.db, { id: row.userId });
  return findUser(ctx.db, { email: row.recipient });
}

function link(ctx: SecurityContext, claims: LinkClaims) {
  return linkUrl(ctx.config, claims.p, signLink(ctx.config, claims));
}

export async function renderOutboxRow(ctx: SecurityContext, row: OutboxRow): Promise<OutgoingMail | null> {
  const { config } = ctx;
  const user = await subject(ctx, row);
  if (!user) return null;
  const name = fullName(user);
  const payload = row.payload as Record<string, unknown>;
  let to = row.recipient;
  let rendered: RenderedMail;

  switch (row.template as MailTemplate) {
    case 'welcome':
      rendered = templates.welcome({ name, email: user.email });
      break;
    case 'confirm': {
      // already confirmed, or the address changed since: the link would be useless
      if (user.confirmedAt || !sameAddress(user.email, row.recipient)) return null;
      to = user.email;
      const url = link(ctx, linkClaims(config, 'confirm', user, row.createdAt));
      rendered = templates.confirm({ name, email: user.email, link: url, within: humanDuration(linkLifetime(config, 'confirm')), welcome: payload.welcome === true });
      break;
    }
    case 'reset': {
      if (!user.active || !sameAddress(user.email, row.recipient)) return null;
      to = user.email;
      const url = link(ctx, linkClaims(config, 'reset', user, row.createdAt));
      rendered = templates.reset({ name, link: url, within: humanDuration(linkLifetime(config, 'reset')) });
      break;
    }
    case 'register_existing': {
      if (!sameAddress(user.email, row.recipient)) return null;
      to = user.email;
      const resetLink = config.SECURITY_RECOVERABLE && user.active ? link(ctx, linkClaims(config, 'reset', user, row.createdAt)) : null;
      rendered = templates.register_existing({ name, email: user.email, resetLink, within: humanDuration(linkLifetime(config, 'reset')) });
      break;
    }
    case 'password_reset':
      rendered = templates.password_reset({ name });
      break;
    case 'password_changed':
      rendered = templates.password_changed({ name });
      break;
    case 'change_email': {
      const claims = payload.claims as LinkClaims | undefined;
      // the account moved on (password, address or sessions reset): the link is already dead
      if (!claims || claims.p !== 'change_email' || !fingerprintMatches(config, claims, user)) return null;
      rendered = templates.change_email({ name, newEmail: row.recipient, link: link(ctx, claims), within: humanDuration(linkLifetime(config, 'change_email')) });
      break;
    }
    case 'change_email_requested':
      rendered = templates.change_email_requested({ name, maskedNew: maskEmail(String(payload.newEmail ?? '')) });
      break;
    case 'email_changed':
      rendered = templates.email_changed({ name, maskedNew: maskEmail(String(payload.newEmail ?? '')) });
      break;
    case 'account_locked': {
      // sent to whoever owns the address; an address without an account is skipped here, so a
      // lockout costs the same for known and unknown addresses
      if (!sameAddress(user.email, row.recipient)) return null;
      to = user.email;
      const until = typeof payload.until === 'string' ? payload.until.replace('T', ' ').replace(/\.\d+Z$/, '') : 'later';
      const resetLink = config.SECURITY_RECOVERABLE && user.active ? link(ctx, linkClaims(config, 'reset', user, row.createdAt)) : null;
      rendered = templates.account_locked({ name, until, resetLink, within: humanDuration(linkLifetime(config, 'reset')) });
      break;
    }
    case 'us_signin': {
      // the address's owner only, while the code is still usable (unknown or disabled: skipped)
      if (!user.active || !sameAddress(user.email, row.recipient)) return null;
      const content = await signinMailContent(ctx, payload.code_id);
      if (!content) return null;
      to = user.email;
      rendered = templates.us_signin({ name, code: content.code, link: content.link, within: humanDuration(config.SECURITY_US_TOKEN_VALIDITY) });
      break;
    }
    case 'tf_email_code': {
      // to the account's address as it is now, while the code is still usable
      if (!user.active || row.userId !== user.id) return null;
      const content = await twoFactorMailContent(ctx, payload.code_id, user.id);
      if (!content) return null;
      to = user.email;
      const within = humanDuration(Math.max(60, Math.round((content.expiresAt.getTime() - row.createdAt.getTime()) / 60_000) * 60));
      rendered = templates.tf_email_code({ name, code: content.code, within, setup: content.purpose === 'setup' });
      break;
    }
    default:
      throw Object.assign(new Error(`unknown mail template "${row.template}"`), { permanent: true });
  }
  // Links only ever point where configuration says (SECURITY_LINK_BASE_URL or a URL template).
  for (const url of rendered.links) {
    if (!isConfiguredLink(config, url)) throw Object.assign(new Error(`mail "${row.template}": a link outside the configured link base`), { permanent: true });
  }
  return { id: row.id, template: row.template, to: { name: mailSafeName(name) ?? '', address: to }, ...rendered };
}
