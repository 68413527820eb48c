// A real OpenID provider on loopback for the OIDC tests: oidc-provider (the certified Node
// implementation) with one confidential test client, PKCE required, a few accounts with email and
// email_verified claims, and its development login and consent pages (devInteractions: a form that
// takes any password; the account is chosen by the login name).
//
// Test levers, none of which change how the relying party is driven:
//   rotateKeys()     the provider starts signing with a new key (the old one stays published)
//   tamperIdToken    rewrites the id_token of the next token responses (forged issuer, audience,
//                    expiry, nonce, signature): what a compromised network path or a confused
//                    deputy would deliver
//   tokenRequests    how many times the token endpoint was called
//   signIn(url, …)   a browser's walk through the redirects with a cookie jar: follows 30x, posts
//                    the login form (and the consent form), stops at a URL you name
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import Provider from 'oidc-provider';
import { decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair, importJWK, SignJWT, type JWK } from 'jose';

export interface IdpAccount { email?: string; email_verified?: boolean; name?: string }
export interface IdpClient { client_id: string; client_secret: string; redirect_uris: string[] }

export interface ForgeOptions {
  /** claims to set (undefined deletes) */
  claims?: Record<string, unknown>;
  /** 'provider': the provider's current key (valid signature); 'foreign': a key the provider never published */
  key?: 'provider' | 'foreign';
  /** the kid header (default: the provider key's kid, so a foreign key "impersonates" it) */
  kid?: string;
}

export interface TestIdp {
  issuer: string;
  accounts: Record<string, IdpAccount>;
  tokenRequests: number;
  tamperIdToken: ((idToken: string) => Promise<string>) | null;
  rotateKeys(): Promise<string>;
  currentKid(): string;
  forge(idToken: string, opts: ForgeOptions): Promise<string>;
  signIn(startUrl: string, opts: SignInOptions): Promise<string>;
  close(): Promise<void>;
}

/** Cookies per host, as a browser keeps them (Path and expiry aside). */
export type CookieJar = Map<string, Map<string, string>>;

/** The Cookie header a browser with `jar` would send to `url` (undefined: none). */
export function cookieHeader(jar: CookieJar, url: string): string | undefined {
  const cookies = jar.get(new URL(url).host);
  return cookies?.size ? [...cookies].map(([k, v]) => `${k}=${v}`).join('; ') : undefined;
}

export interface SignInOptions {
  /** the browser's cookies (default: a fresh browser); kept up to date */
  jar?: CookieJar;
  /** the account id (the ID token's sub) to type into the login form */
  login: string;
  /** stop when the browser is sent to a URL starting with this (the app's next) */
  stopAt: string;
  /** cancel at the login page (the provider answers error=access_denied) */
  abort?: boolean;
  /** called with each URL the browser visits, before visiting it */
  onVisit?: (url: string) => void;
}

async function newKey(): Promise<JWK> {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  return { ...(await exportJWK(privateKey)), kid: randomUUID(), alg: 'RS256', use: 'sig' };
}

/** A free loopback port (for an app whose own URL must be in its config before it listens). */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

export async function startIdp(input: { clients: IdpClient[]; accounts: Record<string, IdpAccount> }): Promise<TestIdp> {
  let handler: ((req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => void) | null = null;
  const server: Server = createServer((req, res) => handler!(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  let keys: JWK[] = [await newKey()];
  const foreign = await newKey();

  const idp: TestIdp = {
    issuer,
    accounts: input.accounts,
    tokenRequests: 0,
    tamperIdToken: null,
    async rotateKeys() {
      keys = [await newKey(), ...keys];
      build();
      return keys[0]!.kid!;
    },
    currentKid: () => keys[0]!.kid!,
    async forge(idToken, opts) {
      const payload: Record<string, unknown> = { ...decodeJwt(idToken) };
      for (const [k, v] of Object.entries(opts.claims ?? {})) {
        if (v === undefined) delete payload[k];
        else payload[k] = v;
      }
      const signer = opts.key === 'foreign' ? foreign : keys[0]!;
      const header = decodeProtectedHeader(idToken);
      return new SignJWT(payload as Record<string, never>)
        .setProtectedHeader({ alg: 'RS256', typ: header.typ as string | undefined, kid: opts.kid ?? keys[0]!.kid })
        .sign(await importJWK(signer, 'RS256'));
    },
    signIn: (startUrl, opts) => walk(startUrl, opts),
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };

  function build() {
    const provider = new Provider(issuer, {
      clients: input.clients.map((c) => ({
        ...c, grant_types: ['authorization_code'], response_types: ['code'], token_endpoint_auth_method: 'client_secret_basic',
      })),
      jwks: { keys },
      async findAccount(_ctx: unknown, id: string) {
        const account = input.accounts[id];
        if (!account) return undefined;
        return { accountId: id, claims: async () => ({ sub: id, ...account }) };
      },
      claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
      // email in the ID token itself, as Google and Entra send it (the relying party reads only the ID token)
      conformIdTokenClaims: false,
      features: { devInteractions: { enabled: true } },
      pkce: { required: () => true },
      cookies: { keys: ['test-idp-cookie-key-0123456789'] },
      ttl: { IdToken: 300, AccessToken: 300, AuthorizationCode: 60, Interaction: 600, Session: 600, Grant: 600 },
    });
    provider.use(async (ctx, next) => {
      await next();
      if (ctx.method === 'POST' && ctx.path === '/token') {
        idp.tokenRequests += 1;
        const body = ctx.body as { id_token?: string } | undefined;
        if (idp.tamperIdToken && ctx.status === 200 && body?.id_token) ctx.body = { ...body, id_token: await idp.tamperIdToken(body.id_token) };
      }
    });
    handler = provider.callback();
  }
  build();

  // A browser: cookies per host, 30x followed by hand, forms posted.
  async function walk(startUrl: string, opts: SignInOptions): Promise<string> {
    const jar: CookieJar = opts.jar ?? new Map();
    let url = startUrl;
    let method = 'GET';
    let body: string | undefined;
    for (let step = 0; step < 20; step++) {
      if (url.startsWith(opts.stopAt)) return url;
      opts.onVisit?.(url);
      const host = new URL(url).host;
      const cookies = jar.get(host) ?? new Map<string, string>();
      jar.set(host, cookies);
      const res = await fetch(url, {
        method, body, redirect: 'manual',
        headers: {
          ...(cookies.size ? { cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join('; ') } : {}),
          ...(body ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
        },
      });
      for (const line of res.headers.getSetCookie()) {
        const [pair] = line.split(';');
        const eq = pair!.indexOf('=');
        const name = pair!.slice(0, eq).trim();
        const value = pair!.slice(eq + 1).trim();
        if (!value || /expires=Thu, 01 Jan 1970/i.test(line)) cookies.delete(name);
        else cookies.set(name, value);
      }
      const location = res.headers.get('location');
      if (res.status >= 300 && res.status < 400 && location) {
        await res.arrayBuffer();
        url = new URL(location, url).toString();
        method = 'GET';
        body = undefined;
        continue;
      }
      const text = await res.text();
      const form = /<form[^>]*action="([^"]+)"[^>]*method="post"[\s\S]*?name="prompt" value="([a-z]+)"/.exec(text);
      if (res.status === 200 && form) {
        const action = new URL(form[1]!, url).toString();
        if (form[2] === 'login' && opts.abort) {
          url = `${action}/abort`;
          method = 'GET';
          body = undefined;
          continue;
        }
        body = form[2] === 'login'
          ? new URLSearchParams({ prompt: 'login', login: opts.login, password: 'any' }).toString()
          : new URLSearchParams({ prompt: 'consent' }).toString();
        url = action;
        method = 'POST';
        continue;
      }
      throw new Error(`test IdP walk: unexpected ${res.status} at ${url}: ${text.slice(0, 400)}`);
    }
    throw new Error('test IdP walk: too many steps');
  }

  return idp;
}
