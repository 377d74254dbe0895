// A test GitHub App: an RSA key pair, and the RS256 JSON web tokens GitHub wants from an App
// (signed here for tests that forge or age one, verified by the stand-in).
import { createPrivateKey, generateKeyPairSync, sign, verify } from 'node:crypto';

export interface TestApp {
  appId: number;
  slug: string;
  /** PKCS#1 PEM, as GitHub hands out and octokit's auth-app takes */
  privateKeyPem: string;
  /** SPKI PEM */
  publicKeyPem: string;
}

let nextAppId = 1000;

export function makeTestApp(opts: { appId?: number; slug?: string } = {}): TestApp {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  const appId = opts.appId ?? nextAppId++;
  return { appId, slug: opts.slug ?? `natops-test-${appId}`, privateKeyPem: privateKey, publicKeyPem: publicKey };
}

const b64url = (b: Buffer | string): string => Buffer.from(b).toString('base64url');

/** Signs claims as an App would (RS256); tests use it to make tokens GitHub must refuse. */
export function signAppJwt(
  privateKeyPem: string,
  claims: Record<string, unknown>,
  header: Record<string, unknown> = { alg: 'RS256', typ: 'JWT' },
): string {
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  const sig = sign('RSA-SHA256', Buffer.from(input), createPrivateKey(privateKeyPem));
  return `${input}.${b64url(sig)}`;
}

/** A fresh, valid App JWT, shaped like universal-github-app-jwt's (iat 30 s back, 10 min life). */
export function appJwt(app: TestApp, nowSeconds = Math.floor(Date.now() / 1000)): string {
  return signAppJwt(app.privateKeyPem, { iat: nowSeconds - 30, exp: nowSeconds - 30 + 600, iss: app.appId });
}

/** GitHub's wording for each way an App JWT fails. */
export const JWT_ERRORS = {
  undecodable: 'A JSON web token could not be decoded',
  expired:
    "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires",
  tooLong: "'Expiration time' claim ('exp') is too far in the future",
  issuedLater: "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued",
  issuer: "'Issuer' claim ('iss') must be an Integer",
  unknownApp: 'Integration not found',
} as const;

/** Leeway GitHub grants for clocks that differ. */
export const JWT_CLOCK_SKEW_SECONDS = 60;

/**
 * Checks an App JWT as GitHub does: RS256 under the App's public key, `iss` the App id (number or
 * numeric string), `iat` not in the future (60 s leeway for skewed clocks), `exp` in the future
 * and at most 10 minutes after `iat`. Returns GitHub's message for the first failure.
 */
export function verifyAppJwt(
  app: TestApp,
  jwt: string,
  nowSeconds = Math.floor(Date.now() / 1000),
): { ok: true } | { ok: false; message: string } {
  const parts = jwt.split('.');
  if (parts.length !== 3) return { ok: false, message: JWT_ERRORS.undecodable };
  const [h, p, s] = parts as [string, string, string];
  let header: unknown;
  let claims: unknown;
  try {
    header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8'));
    claims = JSON.parse(Buffer.from(p, 'base64url').toString('utf8'));
  } catch {
    return { ok: false, message: JWT_ERRORS.undecodable };
  }
  if (typeof header !== 'object' || header === null || (header as Record<string, unknown>).alg !== 'RS256')
    return { ok: false, message: JWT_ERRORS.undecodable };
  if (typeof claims !== 'object' || claims === null) return { ok: false, message: JWT_ERRORS.undecodable };
  const c = claims as Record<string, unknown>;
  const iss = typeof c.iss === 'string' && /^\d+$/.test(c.iss) ? Number(c.iss) : c.iss;
  if (typeof iss !== 'number' || !Number.isInteger(iss)) return { ok: false, message: JWT_ERRORS.issuer };
  if (iss !== app.appId) return { ok: false, message: JWT_ERRORS.unknownApp };
  let good = false;
  try {
    good = verify('RSA-SHA256', Buffer.from(`${h}.${p}`), app.publicKeyPem, Buffer.from(s, 'base64url'));
  } catch {
    good = false;
  }
  if (!good) return { ok: false, message: JWT_ERRORS.undecodable };
  if (typeof c.iat !== 'number' || !Number.isInteger(c.iat) || c.iat > nowSeconds + JWT_CLOCK_SKEW_SECONDS)
    return { ok: false, message: JWT_ERRORS.issuedLater };
  if (typeof c.exp !== 'number' || !Number.isInteger(c.exp) || c.exp <= nowSeconds)
    return { ok: false, message: JWT_ERRORS.expired };
  if (c.exp - c.iat > 600 || c.exp > nowSeconds + 600 + JWT_CLOCK_SKEW_SECONDS)
    return { ok: false, message: JWT_ERRORS.tooLong };
  return { ok: true };
}
