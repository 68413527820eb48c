// The one encoding an ECDSA signature may have in a WebAuthn assertion: DER, exactly (X.690 §10).
//
// The verifier underneath (@simplewebauthn/server → @peculiar/asn1-schema) reads the two integers and
// ignores what surrounds them, so a signature with a wrong SEQUENCE length, trailing bytes or padded
// integers still verifies. That is not a forgery (r and s are the signer's), but it makes one
// assertion many byte strings, and a security reviewer rightly asks that an authentication token have
// exactly one form. Checked before the signature: anything but the canonical encoding is refused.

/** Reads a DER length at `at`; short form, or long form with one or two bytes and no leading zero. */
function readLength(b: Uint8Array, at: number): { length: number; next: number } | null {
  const first = b[at];
  if (first === undefined) return null;
  if (first < 0x80) return { length: first, next: at + 1 };
  const count = first & 0x7f;
  if (count < 1 || count > 2 || at + 1 + count > b.length) return null;
  let length = 0;
  for (let i = 0; i < count; i++) length = (length << 8) | b[at + 1 + i]!;
  // minimal: long form only when the short form cannot say it, and no leading zero byte
  if (length < 0x80 || (count === 2 && length < 0x100)) return null;
  return { length, next: at + 1 + count };
}

/** Reads one positive INTEGER in minimal two's-complement form; the offset after it, or null. */
function readPositiveInteger(b: Uint8Array, at: number, end: number): number | null {
  if (b[at] !== 0x02) return null;
  const len = readLength(b, at + 1);
  if (!len || len.length === 0 || len.next + len.length > end) return null;
  const first = b[len.next]!;
  if (first & 0x80) return null; // negative
  if (first === 0 && (len.length === 1 || (b[len.next + 1]! & 0x80) === 0)) return null; // zero, or a padding byte not needed
  return len.next + len.length;
}

/** True when `sig` is SEQUENCE { INTEGER r, INTEGER s } in canonical DER with nothing before or after. */
export function isCanonicalDerEcdsaSignature(sig: Uint8Array): boolean {
  if (sig[0] !== 0x30) return false;
  const seq = readLength(sig, 1);
  if (!seq || seq.next + seq.length !== sig.length) return false;
  const afterR = readPositiveInteger(sig, seq.next, sig.length);
  if (afterR === null) return false;
  return readPositiveInteger(sig, afterR, sig.length) === sig.length;
}
