// The keyring's derivation is part of the wire format: these vectors were computed with the
// derivation as it stood before the keyring existed (HMAC-SHA256(secret, "county-services/<purpose>")
// in tokens.ts), so refresh tokens, links, 2FA tokens, recovery-code hashes, sealed secrets and cookie
// signatures issued by earlier releases keep verifying.
import { describe, expect, it } from 'vitest';
import { jwtSecrets, keyId, purposeKeyBytes, purposeKeys, signingKey, type KeyPurpose } from '../../src/security/keyring.js';

const A = 'a'.repeat(32);
const B = 'fallback-secret-b-0123456789abcdef';
const VECTORS: Record<string, [string, string]> = {
  'refresh-token': ['c6fd36188e30a5e8d220fd85c7331f3196e4f6217f0f69cd220e616117a49aad', '6ff76824727fd180b65bb3c5be84ba30ca9836cb8b2441608d4cbd9f56c0040a'],
  'session-cookie': ['539d3a15a0935052040999064375d72aa1e60de10dc9b19b400c450da527c808', 'a235f830712d5637426050b974164ad5f41e89844b4a18f065e38e97e6506870'],
  'tf-token': ['c7af2cacbe54a5d1862d8d575df670df71d34f924f56b58f48f7c8fb27a777b3', 'b73df29b7ed37edd5a0b95239359e7df3316cbd076bf9778cd26d802c154097e'],
  'recovery-code': ['b4ec6e14db8618578258319b41dfd8d8e9bf6d7755e9026eb2cdafc3523f62cd', '44ef564319dc2ceda1e6d8dc0988f4a14c3bff0bb2ae1f5a5fdb93b1faae86d5'],
  'link/confirm': ['a548e69f3c0af232e476c62df02b9a5f642425c46c2b69cae688f05cca7d7695', 'd54cad3455d4fd61e39fdf72e1550ad78fac1915b1a3d3e54c60f2304d1a12ff'],
  'link/reset': ['f71d2c43f5e8281f43ad3ce671952fcb194fa6793d3e029e5c750b9f5ff02d0f', '025c7d0cc564e7ebc3ef06e457e00cfbf87890994d35e156816d1e20b7cc8e4a'],
  'link/change_email': ['af39f4df1b738a2f26544fbbd15f3fb5bc5bc09ae97f8f84e3e45baa86d2c286', '9104a3382200eb727f2928d70e127f3f0dae8b0f7d8203b53531b78785cf357c'],
  'secret-box/totp-secret': ['9124449ea30756199af1b281a2696195b748cca9f96cd49cdb20d32003155bd8', '82cb9c2c498755121aede3cea4f1a5e86f8406c90c51e1ac8178a95170882de9'],
  'secret-box/tf-setup': ['ba2ca3bb4c2c2ed56cb4a6d56b0e34624d5cc8b01dd5993a1842775dedb8202d', '41b0b69fc82c3eb79eb82058925375af0a567a37cb9295bfb9a31ef4e3d3cae2'],
};

describe('keyring', () => {
  const config = { SECRET_KEY: A, SECRET_KEY_FALLBACKS: [B] };

  it.each(Object.entries(VECTORS))('derives %s byte for byte as before, signing key first, then the fallback', (purpose, [a, b]) => {
    const keys = purposeKeys(config, purpose as KeyPurpose);
    expect(keys.map((k) => k.key.toString('hex'))).toEqual([a, b]);
    expect(keys.map((k) => k.kid)).toEqual(['vZhMxfFGz7Go', '0rjY8SR_K1j0']);
    expect(signingKey(config, purpose as KeyPurpose).key.toString('hex')).toBe(a);
    expect(purposeKeyBytes(config, purpose as KeyPurpose).map((k) => k.toString('hex'))).toEqual([a, b]);
  });

  it('gives every purpose a different key', () => {
    const all = Object.keys(VECTORS).map((p) => signingKey(config, p as KeyPurpose).key.toString('hex'));
    expect(new Set(all).size).toBe(all.length);
  });

  it('memoises per config object and purpose', () => {
    expect(purposeKeys(config, 'tf-token')).toBe(purposeKeys(config, 'tf-token'));
    expect(purposeKeys({ ...config }, 'tf-token')).not.toBe(purposeKeys(config, 'tf-token'));
  });

  it('names the JWT secrets by kid, the signing secret first', () => {
    expect(keyId(A)).toBe('vZhMxfFGz7Go');
    expect(jwtSecrets(config)).toEqual([{ kid: 'vZhMxfFGz7Go', secret: A }, { kid: '0rjY8SR_K1j0', secret: B }]);
  });
});
