// The example SPA's static server (node:http, no dependencies). It serves the three files of this
// directory and @simplewebauthn/browser's bundle, and nothing else (an allow-list, so no path ever reaches the file system from the URL),
// plus /config.json naming the API origin. Every page carries a strict CSP whose connect-src is that
// one API origin: the page can talk to the API and nowhere else, whatever ?api= says.
//
//   npm run spa -- --port 5173 --api http://localhost:5000
//
// Serve it on the same host name as the API (localhost and localhost, or app.example.org and
// api.example.org): the session cookie is SameSite=Lax, so the browser sends it only to the same site.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { createRequire } from 'node:module';

const DIR = path.dirname(fileURLToPath(import.meta.url));

// @simplewebauthn/browser's self-contained UMD bundle (no build step): resolved from the installed
// package, never from the URL.
const WEBAUTHN_BUNDLE = path.join(path.dirname(createRequire(import.meta.url).resolve('@simplewebauthn/browser')), '..', 'dist', 'bundle', 'index.umd.min.js');

const FILES: Readonly<Record<string, { file: string; type: string }>> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/index.html': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
  '/simplewebauthn-browser.js': { file: WEBAUTHN_BUNDLE, type: 'text/javascript; charset=utf-8' },
};

/** The origin of an http(s) API base URL ("http://localhost:5000/" → "http://localhost:5000"). */
export function apiOrigin(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new Error(`--api must be an http(s) URL (got "${value}")`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`--api must be an http(s) URL (got "${value}")`);
  return url.origin;
}

export function contentSecurityPolicy(api: string): string {
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    // 'self' for /config.json; the API origin for everything else
    `connect-src 'self' ${api}`,
    // the login form is submitted by app.js only; never by the browser (no password in a URL)
    "form-action 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

export interface SpaServer {
  /** where the page is, e.g. http://localhost:5173 (always a host name: see the note above) */
  url: string;
  port: number;
  /** the API origin the page may connect to; until it is set the server answers 503 */
  setApi(url: string): void;
  close(): Promise<void>;
}

function securityHeaders(res: ServerResponse, api: string) {
  res.setHeader('Content-Security-Policy', contentSecurityPolicy(api));
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('X-Frame-Options', 'DENY');
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
  res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
  res.setHeader('Cache-Control', 'no-store');
}

function send(res: ServerResponse, status: number, type: string, body: string | Buffer, head: boolean) {
  res.statusCode = status;
  res.setHeader('Content-Type', type);
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(head ? undefined : body);
}

export async function startSpaServer(opts: { port?: number; host?: string; api?: string } = {}): Promise<SpaServer> {
  let api = opts.api === undefined ? null : apiOrigin(opts.api);

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const head = req.method === 'HEAD';
    if (req.method !== 'GET' && !head) {
      res.setHeader('Allow', 'GET, HEAD');
      return send(res, 405, 'text/plain; charset=utf-8', 'Method Not Allowed\n', false);
    }
    if (api === null) return send(res, 503, 'text/plain; charset=utf-8', 'The API origin is not configured yet\n', head);
    securityHeaders(res, api);
    const pathname = new URL(req.url ?? '/', 'http://spa.invalid').pathname;
    if (pathname === '/config.json') return send(res, 200, 'application/json', JSON.stringify({ api }), head);
    // browsers ask for it; nothing to show
    if (pathname === '/favicon.ico') {
      res.statusCode = 204;
      return res.end();
    }
    const entry = Object.hasOwn(FILES, pathname) ? FILES[pathname] : undefined;
    if (!entry) return send(res, 404, 'text/plain; charset=utf-8', 'Not Found\n', head);
    send(res, 200, entry.type, await readFile(path.isAbsolute(entry.file) ? entry.file : path.join(DIR, entry.file)), head);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      console.error(err);
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'Internal Server Error\n', false);
      else res.destroy();
    });
  });
  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 5173, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const loopback = ['127.0.0.1', '::1', 'localhost'].includes(host);
  return {
    url: `http://${loopback ? 'localhost' : host}:${port}`,
    port,
    setApi(url) {
      api = apiOrigin(url);
    },
    close: () => new Promise<void>((resolve, reject) => {
      server.close((err) => (err ? reject(err) : resolve()));
      server.closeAllConnections();
    }),
  };
}

async function main() {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '5173' },
      host: { type: 'string', default: '127.0.0.1' },
      api: { type: 'string', default: 'http://localhost:5000' },
    },
  });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port must be a port number (got "${values.port}")`);
  const spa = await startSpaServer({ port, host: values.host, api: values.api });
  const api = apiOrigin(values.api);
  console.log(`Example SPA on ${spa.url}/ talking to ${api}`);
  console.log(`Start the API with CORS_ORIGINS=${spa.url} (and open the page on the same host name as the API).`);
  const stop = () => {
    spa.close().then(() => process.exit(0), () => process.exit(1));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
