// A real SMTP server for tests (the `smtp-server` package) on 127.0.0.1, capturing every message,
// with a small MIME reader to get the plain-text and HTML bodies (and the links in them) back out.
import { SMTPServer } from 'smtp-server';
import type { AddressInfo } from 'node:net';
import type { Config } from '../../src/config.js';
import { createMailTransport, type MailLog, type MailTransport } from '../../src/security/mail.js';

export interface CapturedMail {
  /** the client sent MAIL FROM … SMTPUTF8 (RFC 6531) */
  smtpUtf8?: boolean;
  /** SMTP envelope */
  mailFrom: string;
  rcptTo: string[];
  raw: string;
  headers: Array<[string, string]>;
  header(name: string): string | undefined;
  subject: string;
  messageId: string;
  text: string;
  html: string;
}

function unfold(block: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const line of block.split(/\r?\n/)) {
    if (/^[ \t]/.test(line) && out.length) out[out.length - 1]![1] += ' ' + line.trim();
    else {
      const i = line.indexOf(':');
      if (i > 0) out.push([line.slice(0, i).toLowerCase(), line.slice(i + 1).trim()]);
    }
  }
  return out;
}

function decodeQuotedPrintable(s: string): string {
  const soft = s.replace(/=\r?\n/g, '');
  const bytes: number[] = [];
  for (let i = 0; i < soft.length; i++) {
    const c = soft[i]!;
    if (c === '=' && /^[0-9A-F]{2}$/i.test(soft.slice(i + 1, i + 3))) {
      bytes.push(parseInt(soft.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(...Buffer.from(c, 'utf8'));
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

function decodePart(headers: Array<[string, string]>, body: string): string {
  const cte = headers.find(([k]) => k === 'content-transfer-encoding')?.[1].toLowerCase() ?? '7bit';
  if (cte === 'quoted-printable') return decodeQuotedPrintable(body);
  if (cte === 'base64') return Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8');
  return body;
}

function splitMessage(raw: string): { headers: Array<[string, string]>; body: string } {
  const m = /\r?\n\r?\n/.exec(raw);
  if (!m) return { headers: unfold(raw), body: '' };
  return { headers: unfold(raw.slice(0, m.index)), body: raw.slice(m.index + m[0].length) };
}

/** text/plain and text/html of a message (single part or multipart/alternative, possibly nested). */
function bodies(headers: Array<[string, string]>, body: string, out: { text: string; html: string }) {
  const type = headers.find(([k]) => k === 'content-type')?.[1] ?? 'text/plain';
  const boundary = /boundary="?([^";]+)"?/i.exec(type)?.[1];
  if (/^multipart\//i.test(type) && boundary) {
    for (const part of body.split(`--${boundary}`).slice(1)) {
      if (part.startsWith('--')) break;
      const p = splitMessage(part.replace(/^\r?\n/, ''));
      bodies(p.headers, p.body, out);
    }
  } else if (/^text\/html/i.test(type)) out.html = decodePart(headers, body);
  else if (/^text\/plain/i.test(type)) out.text = decodePart(headers, body);
}

export function parseMail(raw: string, mailFrom = '', rcptTo: string[] = []): CapturedMail {
  const { headers, body } = splitMessage(raw);
  const out = { text: '', html: '' };
  bodies(headers, body, out);
  const header = (name: string) => headers.find(([k]) => k === name.toLowerCase())?.[1];
  return {
    mailFrom, rcptTo, raw, headers, header,
    subject: header('subject') ?? '',
    messageId: header('message-id') ?? '',
    text: out.text,
    html: out.html,
  };
}

/** The token of the first link to `/<path>/<token>` (or a template's `token=`) in a message's text. */
export function linkToken(mail: CapturedMail, path: 'reset' | 'confirm' | 'change-email'): string {
  const m = new RegExp(`/${path}/([A-Za-z0-9_.%-]+)`).exec(mail.text);
  if (!m) throw new Error(`no /${path}/ link in: ${mail.subject}\n${mail.text}`);
  return decodeURIComponent(m[1]!);
}

export class SmtpCapture {
  readonly messages: CapturedMail[] = [];
  /** recipients this server refuses for good (550 on RCPT TO) */
  readonly refuse = new Set<string>();
  /** how long the server takes to accept a message's data, ms (a slow server) */
  acceptDelayMs = 0;
  /** how long the server takes to accept a recipient, ms: a slow server before anything is recorded */
  rcptDelayMs = 0;
  /** called on every RCPT TO, before the delay (tests act at a known point of a delivery) */
  onRcpt: ((address: string) => void) | undefined;
  port = 0;
  private server: SMTPServer | undefined;
  private waiters: Array<() => void> = [];

  /** Listens on `port` (0: any free port; later starts reuse the first one). */
  async start(port = this.port): Promise<this> {
    const server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['AUTH', 'STARTTLS'],
      logger: false,
      closeTimeout: 200,
      onRcptTo: (address, _session, callback) => {
        if (this.refuse.has(address.address.toLowerCase())) {
          return callback(Object.assign(new Error('5.1.1 mailbox unavailable'), { responseCode: 550 }));
        }
        this.onRcpt?.(address.address);
        if (this.rcptDelayMs) setTimeout(() => callback(), this.rcptDelayMs);
        else callback();
      },
      onData: (stream, session, callback) => {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
          const mail = parseMail(Buffer.concat(chunks).toString('utf8'), from, session.envelope.rcptTo.map((r) => r.address));
          this.messages.push({ ...mail, smtpUtf8: (session.envelope as { smtpUtf8?: boolean }).smtpUtf8 === true });
          for (const w of this.waiters.splice(0)) w();
          if (this.acceptDelayMs) setTimeout(() => callback(), this.acceptDelayMs);
          else callback();
        });
      },
    });
    const net = await new Promise<ReturnType<SMTPServer['listen']>>((resolve, reject) => {
      server.once('error', reject);
      const s = server.listen(port, '127.0.0.1', () => resolve(s));
    });
    this.port = (net.address() as AddressInfo).port;
    this.server = server;
    return this;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Waits until at least `count` messages arrived in total. */
  async waitFor(count: number, timeoutMs = 5000): Promise<CapturedMail[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.messages.length < count) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`expected ${count} message(s), got ${this.messages.length}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
    return this.messages;
  }

  /** Messages whose envelope names this recipient (case-insensitive). */
  to(address: string): CapturedMail[] {
    return this.messages.filter((m) => m.rcptTo.some((r) => r.toLowerCase() === address.toLowerCase()));
  }

  /** The only message to this address, asserting there is exactly one. */
  single(address: string): CapturedMail {
    const found = this.to(address);
    if (found.length !== 1) throw new Error(`expected one message to ${address}, got ${found.length}: ${found.map((m) => m.subject).join(' | ')}`);
    return found[0]!;
  }

  clear(): void {
    this.messages.length = 0;
  }
}

/** Config overrides that point the app's mail at this server. */
export const mailEnv = (smtp: SmtpCapture, extra: Record<string, string> = {}): Record<string, string> => ({
  MAIL_SERVER: '127.0.0.1',
  MAIL_PORT: String(smtp.port),
  ...extra,
});

export const quietLog: MailLog = { info: () => undefined, warn: () => undefined };

/** The SMTP transport the app would use, from its config. */
export function smtpTransportFor(config: Config): MailTransport {
  const t = createMailTransport(config, quietLog);
  if (!t || t.kind !== 'smtp') throw new Error('MAIL_SERVER must be set for an SMTP transport');
  return t;
}
