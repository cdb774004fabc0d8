// Test-only OAuth 2.0 / OpenID Connect authorization server for Growth Engine's integration tests.
//
// Wraps the certified `oidc-provider` package with one confidential client, the built-in
// development login and consent pages (devInteractions), PKCE (S256) required, refresh tokens for
// `offline_access`, and token revocation. NEVER deploy this: the login page accepts any login and
// any password.
//
// Environment:
//   OIDC_PORT                  port on 127.0.0.1 (default 0 = any free port)
//   OIDC_CLIENT_ID             the client's id (required)
//   OIDC_CLIENT_SECRET         the client's secret (required; never printed)
//   OIDC_REDIRECT_URI          the client's only redirect URI (required)
//   OIDC_ACCESS_TOKEN_TTL      access-token lifetime in seconds (default 3600)
//   OIDC_ROTATE_REFRESH_TOKEN  "true": every refresh returns a new refresh token and retires the
//                              old one; "false": never; unset: the package's default policy
//
// stdout carries exactly one line, `oidc-provider listening on http://127.0.0.1:<port>`, once the
// server accepts connections; every other message (the package's notices included) goes to stderr.

import * as crypto from 'node:crypto';
import * as http from 'node:http';

// The package prints its notices with console.info (stdout). Send everything but our one line to
// stderr, before the package is loaded.
console.log = console.error;
console.info = console.error;
console.debug = console.error;

const { default: Provider } = await import('oidc-provider');

function fail(message) {
  process.stderr.write(`oidc-provider harness: ${message}\n`);
  process.exit(2);
}

function required(name) {
  const value = process.env[name]?.trim();
  if (!value) fail(`${name} is required`);
  return value;
}

const port = Number.parseInt(process.env.OIDC_PORT?.trim() || '0', 10);
if (!Number.isInteger(port) || port < 0 || port > 65535) fail('OIDC_PORT must be a port number (0 = any)');
const clientId = required('OIDC_CLIENT_ID');
const clientSecret = required('OIDC_CLIENT_SECRET');
const redirectUri = required('OIDC_REDIRECT_URI');
try {
  new URL(redirectUri);
} catch {
  fail('OIDC_REDIRECT_URI must be an absolute URL');
}
const accessTokenTtl = Number.parseInt(process.env.OIDC_ACCESS_TOKEN_TTL?.trim() || '3600', 10);
if (!Number.isInteger(accessTokenTtl) || accessTokenTtl < 1) fail('OIDC_ACCESS_TOKEN_TTL must be a positive number of seconds');
const rotate = process.env.OIDC_ROTATE_REFRESH_TOKEN?.trim().toLowerCase();
if (rotate && rotate !== 'true' && rotate !== 'false') fail('OIDC_ROTATE_REFRESH_TOKEN must be true or false');

// A fresh signing key and cookie key per run, so the package's published development keys are
// never used.
const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), use: 'sig', alg: 'RS256', kid: crypto.randomUUID() };
const cookieKeys = [crypto.randomBytes(32).toString('base64url')];

const server = http.createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(port, '127.0.0.1', resolve);
});
const issuer = `http://127.0.0.1:${server.address().port}`;

const configuration = {
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: [redirectUri],
    },
  ],
  jwks: { keys: [signingKey] },
  cookies: { keys: cookieKeys },
  features: {
    devInteractions: { enabled: true },
    revocation: { enabled: true },
    userinfo: { enabled: true },
  },
  scopes: ['openid', 'profile', 'email', 'offline_access'],
  claims: {
    openid: ['sub'],
    profile: ['name'],
    email: ['email'],
  },
  pkce: { required: () => true },
  // offline_access survives the authorization request only when `prompt=consent` is requested
  // (OpenID Connect Core 11); the devInteractions consent page then grants every requested scope,
  // offline_access included, and this issues the refresh token.
  issueRefreshToken: async (ctx, client, code) => client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access'),
  ttl: {
    AccessToken: accessTokenTtl,
    AuthorizationCode: 60,
    IdToken: 3600,
    Interaction: 3600,
    Session: 14 * 24 * 3600,
    Grant: 14 * 24 * 3600,
    RefreshToken: 14 * 24 * 3600,
  },
  async findAccount(ctx, sub) {
    return {
      accountId: sub,
      async claims() {
        return { sub, name: 'OIDC Merchant', email: `${sub}@oidc.example` };
      },
    };
  },
  // Errors are rendered as JSON/HTML by the package; keep them short and secret-free.
  renderError(ctx, out) {
    ctx.type = 'json';
    ctx.body = out;
  },
};
if (rotate === 'true') configuration.rotateRefreshToken = true;
if (rotate === 'false') configuration.rotateRefreshToken = false;

const provider = new Provider(issuer, configuration);
provider.on('server_error', (ctx, err) => {
  process.stderr.write(`oidc-provider harness: server_error on ${ctx.method} ${ctx.path}: ${err.message}\n`);
});

server.on('request', provider.callback());

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    server.close();
    process.exit(0);
  });
}

process.stdout.write(`oidc-provider listening on ${issuer}\n`);
