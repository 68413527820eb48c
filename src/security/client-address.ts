// The client's address as the core counts and records it, and TRUST_PROXY as the HTTP server applies
// it. One helper for the rate limiter (plugins/rate-limit.ts) and for tracking and the audit log
// (routes/auth/session-response.ts, routes/request-source.ts).
//
// IPv6 forms that carry an IPv4 address are the IPv4 client: IPv4-mapped (::ffff:a.b.c.d), NAT64
// (64:ff9b::/96, RFC 6052) and 6to4 (2002:AABB:CCDD::/16, RFC 3056). Otherwise an IPv6 client is
// counted per /64 (one customer's network), recorded in full.
import { isIP } from 'node:net';

/** Eight 16-bit groups of an IPv6 address (zone id dropped), or null when it is not one. */
function ipv6Groups(ip: string): number[] | null {
  let s = ip.split('%')[0]!.toLowerCase();
  if (isIP(s) !== 6) return null;
  // a dotted-quad tail (::ffff:1.2.3.4) becomes two groups
  const dotted = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (dotted) {
    const [a, b, c, d] = dotted[2]!.split('.').map(Number) as [number, number, number, number];
    s = `${dotted[1]}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = s.includes('::') ? s.split('::') as [string, string] : [s, null];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const fill = tail === null ? [] : Array(8 - h.length - t.length).fill('0');
  const groups = [...h, ...fill, ...t].map((g) => parseInt(g, 16));
  return groups.length === 8 && groups.every((g) => g >= 0 && g <= 0xffff) ? groups : null;
}

const v4 = (hi: number, lo: number) => `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;

/** The IPv4 address an IPv6 address carries (mapped, NAT64, 6to4), or null. */
export function embeddedIPv4(ip: string): string | null {
  const g = ipv6Groups(ip);
  if (!g) return null;
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) return v4(g[6]!, g[7]!); // ::ffff:0:0/96
  if (g[0] === 0x64 && g[1] === 0xff9b && g.slice(2, 6).every((x) => x === 0)) return v4(g[6]!, g[7]!); // 64:ff9b::/96
  if (g[0] === 0x2002) return v4(g[1]!, g[2]!); // 2002::/16
  return null;
}

/** The address to record (tracking, sessions, audit): the embedded IPv4 when there is one. */
export function clientAddress(ip: string | null | undefined): string | null {
  if (!ip) return null;
  return embeddedIPv4(ip) ?? ip;
}

/** What per-IP limits count under: the IPv4 client, or the IPv6 client's /64. */
export function clientKey(ip: string): string {
  let key = clientKeys.get(ip);
  if (key === undefined) {
    key = computeClientKey(ip);
    // bounded: a flood of distinct addresses evicts the oldest (the key is recomputed, never wrong)
    if (clientKeys.size >= 50_000) clientKeys.delete(clientKeys.keys().next().value!);
    clientKeys.set(ip, key);
  }
  return key;
}

/** Every request asks (the global limit): the parse is remembered per address. */
const clientKeys = new Map<string, string>();

function computeClientKey(ip: string): string {
  const four = embeddedIPv4(ip);
  if (four) return four;
  const g = ipv6Groups(ip);
  if (!g) return ip.toLowerCase();
  return `${g.slice(0, 4).map((x) => x.toString(16)).join(':')}::/64`;
}

// ---- TRUST_PROXY ----

export type TrustProxy = boolean | number | readonly string[];

/**
 * The HTTP server's trustProxy option. Fastify 5 treats a numeric trustProxy as "trust nothing", so a
 * hop count becomes proxy-addr's trust function: the socket peer and the next N-1 hops are proxies,
 * and request.ip is the Nth address of X-Forwarded-For counted from the right.
 */
export function trustProxyOption(value: TrustProxy): boolean | string[] | ((addr: string, hop: number) => boolean) {
  if (typeof value === 'number') {
    const hops = value;
    return hops > 0 ? (_addr: string, hop: number) => hop < hops : false;
  }
  return typeof value === 'boolean' ? value : [...value];
}
