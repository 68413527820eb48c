// The canonical-DER rule for ECDSA signatures (security/der-signature.ts), as properties: every
// canonical encoding passes, and whatever passes is the canonical encoding of what it contains, so a
// signature has exactly one accepted form.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { generateKeyPairSync, sign } from 'node:crypto';
import { isCanonicalDerEcdsaSignature } from '../../src/security/der-signature.js';

/** The minimal positive INTEGER content of a big-endian magnitude (leading zeros dropped, one added for a high bit). */
function integer(magnitude: Uint8Array): Buffer {
  let i = 0;
  while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
  const body = Buffer.from(magnitude.subarray(i));
  return body[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), body]) : body;
}

function length(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  return n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 0xff]);
}

function encode(r: Uint8Array, s: Uint8Array): Buffer {
  const ints = [integer(r), integer(s)].map((b) => Buffer.concat([Buffer.from([0x02]), length(b.length), b]));
  const body = Buffer.concat(ints);
  return Buffer.concat([Buffer.from([0x30]), length(body.length), body]);
}

/** The two integers' contents read naively (as a lenient parser would), for re-encoding. */
function naiveIntegers(sig: Buffer): [Buffer, Buffer] {
  let at = sig[1]! & 0x80 ? 2 + (sig[1]! & 0x7f) : 2;
  const out: Buffer[] = [];
  for (let k = 0; k < 2; k++) {
    const n = sig[at + 1]!;
    out.push(sig.subarray(at + 2, at + 2 + n));
    at += 2 + n;
  }
  return [out[0]!, out[1]!];
}

const magnitude = fc.uint8Array({ minLength: 1, maxLength: 66 }).filter((b) => b.some((x) => x !== 0));

describe('canonical DER ECDSA signatures', () => {
  it('every canonical encoding of (r, s) is accepted', () => {
    fc.assert(fc.property(magnitude, magnitude, (r, s) => {
      expect(isCanonicalDerEcdsaSignature(encode(r, s))).toBe(true);
    }), { numRuns: 2000 });
  });

  it('a one-byte change, a byte added or a byte removed is accepted only if it is the canonical form of what it says', () => {
    const edit = fc.oneof(
      fc.record({ kind: fc.constant('xor' as const), at: fc.nat(), value: fc.integer({ min: 1, max: 255 }) }),
      fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), value: fc.constant(0) }),
    );
    fc.assert(fc.property(magnitude, magnitude, edit, (r, s, e) => {
      const sig = encode(r, s);
      let changed: Buffer;
      if (e.kind === 'xor') {
        changed = Buffer.from(sig);
        const i = e.at % sig.length;
        changed[i] = changed[i]! ^ e.value;
      } else if (e.kind === 'insert') {
        const i = e.at % (sig.length + 1);
        changed = Buffer.concat([sig.subarray(0, i), Buffer.from([e.value]), sig.subarray(i)]);
      } else {
        const i = e.at % sig.length;
        changed = Buffer.concat([sig.subarray(0, i), sig.subarray(i + 1)]);
      }
      if (!isCanonicalDerEcdsaSignature(changed)) return;
      const [r2, s2] = naiveIntegers(changed);
      expect(encode(r2, s2).equals(changed)).toBe(true);
      expect(encode(r2, s2).equals(sig)).toBe(false);
    }), { numRuns: 5000 });
  });

  it('the lenient forms a DER-ignoring parser accepts are refused', () => {
    const sig = encode(Buffer.alloc(32, 0x81), Buffer.alloc(32, 0x11));
    const wrongLength = Buffer.from(sig); wrongLength[1] = wrongLength[1]! ^ 1;
    const trailing = Buffer.concat([sig, Buffer.from([0])]);
    const longForm = Buffer.concat([Buffer.from([0x30, 0x81, sig[1]!]), sig.subarray(2)]);
    const padded = encode(Buffer.alloc(32, 0x11), Buffer.alloc(32, 0x11));
    const paddedR = Buffer.concat([Buffer.from([0x30, padded[1]! + 1, 0x02, 0x21, 0x00]), padded.subarray(4)]);
    const negative = encode(Buffer.alloc(32, 0x11), Buffer.alloc(32, 0x11)); negative[4] = 0x91;
    for (const bad of [wrongLength, trailing, longForm, paddedR, negative, Buffer.alloc(0), Buffer.from([0x30, 0])]) {
      expect(isCanonicalDerEcdsaSignature(bad), bad.toString('hex')).toBe(false);
    }
  });

  it('signatures made by OpenSSL for P-256, P-384 and P-521 keys are all accepted', () => {
    for (const namedCurve of ['P-256', 'P-384', 'P-521']) {
      const { privateKey } = generateKeyPairSync('ec', { namedCurve });
      for (let i = 0; i < 300; i++) {
        const sig = sign('sha256', Buffer.from(`message ${i}`), { key: privateKey, dsaEncoding: 'der' });
        expect(isCanonicalDerEcdsaSignature(sig), `${namedCurve} #${i}`).toBe(true);
      }
    }
  });
});
