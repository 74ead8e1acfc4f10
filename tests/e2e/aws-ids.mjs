// The IDs wsgate gives as AWS's (issue 15): shared by the tests that check
// events, not itself a test file.

/** The apiId wsgate derives from an API's name (FNV-1a 64 in base 36). */
export function derivedApiId(name) {
  let h = 0xcbf29ce484222325n;
  for (const b of Buffer.from(name)) h = ((h ^ BigInt(b)) * 0x100000001b3n) & 0xffffffffffffffffn;
  let s = '';
  for (let i = 0; i < 10; i++) { s = '0123456789abcdefghijklmnopqrstuvwxyz'[Number(h % 36n)] + s; h /= 36n; }
  return s;
}
