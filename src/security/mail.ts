// Email plumbing: address validation, header-safe text, HTML escaping, and the two transports —
// SMTP through nodemailer (MAIL_SERVER), or .eml files under DATA_DIR/outbox when no MAIL_SERVER is
// configured outside production, so `npm start` still lets a person confirm and reset.
//
// Header injection: a recipient is always one validated address (never a parsed list), passed to
// nodemailer as {name, address} with an explicit SMTP envelope naming only that address; display
// names and subjects lose every control character (CR/LF included) before they reach a header.
import nodemailer from 'nodemailer';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../config.js';

export interface MailAddress { name: string; address: string }

/** A message ready to hand to a transport. `id` is the outbox row id (the Message-ID's left part). */
export interface OutgoingMail {
  id: string;
  template: string;
  to: MailAddress;
  subject: string;
  text: string;
  html: string;
  /** the one-time links in the message (the development transport logs them) */
  links: string[];
}

export interface MailTransport {
  readonly kind: 'smtp' | 'file';
  /** where messages go, for logs (no credentials) */
  readonly description: string;
  send(mail: OutgoingMail): Promise<void>;
  close(): Promise<void>;
}

export interface MailLog {
  info(message: string): void;
  warn(message: string): void;
}

/** A delivery that can never succeed as is (bad address, rejected recipient): not retried. */
export class PermanentMailError extends Error {
  readonly permanent = true;
  constructor(message: string) {
    super(message);
    this.name = 'PermanentMailError';
  }
}

// One address, no display name, no whitespace, commas or CR/LF: nothing that can smuggle a header
// or a second recipient. Internationalised addresses are accepted (security/email-address.ts); the
// API's `email` format uses the same rule (schemas/formats.ts).
export { isMailAddress } from './email-address.js';
import { isMailAddress } from './email-address.js';

/** Text that goes into a header (display name, subject): one line, no control characters, bounded. */
export function headerText(value: string | null | undefined, max = 100): string {
  if (!value) return '';
  // eslint-disable-next-line no-control-regex -- stripping control characters is the point
  const oneLine = value.normalize('NFKC').replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ').replace(/\s+/g, ' ').trim();
  return Array.from(oneLine).slice(0, max).join('').trim();
}

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]!);
}

/** MAIL_DEFAULT_SENDER: `Name <address>` or a bare address. */
export function parseSender(value: string): MailAddress {
  const v = value.trim();
  const m = /^(.*?)\s*<([^<>]*)>$/.exec(v);
  const name = m ? m[1]!.replace(/^"(.*)"$/, '$1') : '';
  const address = (m ? m[2]! : v).trim();
  if (/[\r\n]/.test(value) || !isMailAddress(address)) {
    throw new Error('MAIL_DEFAULT_SENDER: must be "Name <address>" or a single address');
  }
  return { name: headerText(name), address };
}

/** The nodemailer message for an outgoing mail; throws PermanentMailError for a bad recipient. */
export function toMessage(sender: MailAddress, mail: OutgoingMail) {
  if (!isMailAddress(mail.to.address)) throw new PermanentMailError('invalid recipient address');
  const domain = sender.address.slice(sender.address.indexOf('@') + 1);
  return {
    from: { name: sender.name, address: sender.address },
    to: { name: headerText(mail.to.name), address: mail.to.address },
    // only ever this one recipient, whatever the headers say
    envelope: { from: sender.address, to: [mail.to.address] },
    subject: headerText(mail.subject, 200),
    text: mail.text,
    html: mail.html,
    messageId: `<${mail.id}@${domain}>`,
    headers: { 'Auto-Submitted': 'auto-generated', 'X-Auto-Response-Suppress': 'All' },
    disableFileAccess: true,
    disableUrlAccess: true,
  };
}

/** SMTP timeouts, ms: a dead server fails a delivery attempt quickly instead of holding the worker. */
const SMTP_TIMEOUTS = { connectionTimeout: 10_000, greetingTimeout: 10_000, socketTimeout: 30_000 };

export function smtpTransport(config: Config): MailTransport {
  const sender = parseSender(config.MAIL_DEFAULT_SENDER);
  // MAIL_USE_TLS: implicit TLS on port 465, otherwise STARTTLS is required (never silently plain).
  const implicitTls = config.MAIL_USE_TLS && config.MAIL_PORT === 465;
  const mailer = nodemailer.createTransport({
    host: config.MAIL_SERVER,
    port: config.MAIL_PORT,
    secure: implicitTls,
    requireTLS: config.MAIL_USE_TLS && !implicitTls,
    ...(config.MAIL_USERNAME ? { auth: { user: config.MAIL_USERNAME, pass: config.MAIL_PASSWORD } } : {}),
    ...SMTP_TIMEOUTS,
  });
  return {
    kind: 'smtp',
    description: `smtp://${config.MAIL_SERVER}:${config.MAIL_PORT}`,
    async send(mail) {
      try {
        await mailer.sendMail(toMessage(sender, mail));
      } catch (err) {
        // 5xx on RCPT TO: the server refuses this recipient for good
        const e = err as { code?: string; responseCode?: number };
        if (e.code === 'EENVELOPE' && typeof e.responseCode === 'number' && e.responseCode >= 500) {
          throw new PermanentMailError(`recipient refused: ${e.responseCode}`);
        }
        throw err;
      }
    },
    async close() {
      mailer.close();
    },
  };
}

/**
 * Development: each message becomes an .eml file (open it with any mail client) and its links are
 * logged, so a person can confirm and reset without an SMTP server.
 */
export function fileTransport(config: Config, dir: string, log: MailLog): MailTransport {
  const sender = parseSender(config.MAIL_DEFAULT_SENDER);
  const composer = nodemailer.createTransport({ streamTransport: true, buffer: true });
  return {
    kind: 'file',
    description: dir,
    async send(mail) {
      const info = await composer.sendMail(toMessage(sender, mail));
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const stamp = new Date().toISOString().replace(/[:.]/g, '-');
      const file = path.join(dir, `${stamp}-${mail.template}-${mail.id}.eml`);
      await writeFile(file, info.message as Buffer, { mode: 0o600 });
      const links = mail.links.length ? ` link: ${mail.links.join(' ')}` : '';
      log.info(`[dev mail] "${headerText(mail.subject)}" to ${mail.to.address} written to ${file}${links}`);
    },
    async close() {
      composer.close();
    },
  };
}

/**
 * The configured transport: SMTP when MAIL_SERVER is set; else .eml files in DATA_DIR/outbox outside
 * production; in production without MAIL_SERVER, none (mail stays queued until one is configured).
 */
export function createMailTransport(config: Config, log: MailLog): MailTransport | null {
  if (config.MAIL_SERVER) return smtpTransport(config);
  if (config.NODE_ENV === 'production') return null;
  return fileTransport(config, path.resolve(config.DATA_DIR, 'outbox'), log);
}
