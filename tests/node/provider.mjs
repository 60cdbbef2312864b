// The upstream OpenID Provider of the tests: node-oidc-provider (npm `oidc-provider`) with its
// development login (devInteractions: any username, any password; the username becomes `sub`),
// one confidential client for tokenwarden, PKCE required. Started by tests/fixtures/upstream.rs.
//
// Environment: PORT, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, and optionally:
//   WORKLOAD_AUDIENCE  makes it the OIDC issuer of CI jobs as well (workload identity): its
//                      clients `ci-main` and `ci-other` (secret: CLIENT_SECRET) get JWT access
//                      tokens with client_credentials, `sub` their client id and `aud` this
//                      audience, as a CI system's OIDC token names the job;
//   SIGNING_KID        the kid of its signing key (default signing-key-1): a provider started
//                      again with another one has rotated its key;
//   TAMPER, which makes it misbehave as a broken or hostile provider would:
//   TAMPER=nonce      the ID token carries another nonce than the one sent;
//   TAMPER=signature  its JWKS publishes another key under the signing key's kid.
// Prints `ready <issuer>` on stdout once it listens.
import { generateKeyPairSync } from 'node:crypto';
import { Provider } from 'oidc-provider';

const need = (name) => {
  const value = process.env[name];
  if (!value) {
    console.error(`provider.mjs: ${name} is not set`);
    process.exit(2);
  }
  return value;
};

const port = Number(need('PORT'));
const issuer = `http://127.0.0.1:${port}`;

const tamper = process.env.TAMPER ?? '';
const rsaJwk = (kid) => ({
  ...generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' }),
  kid,
  alg: 'RS256',
  use: 'sig',
});
const signingKey = rsaJwk(process.env.SIGNING_KID || 'signing-key-1');

const workloadAudience = process.env.WORKLOAD_AUDIENCE ?? '';
const ciJobs = workloadAudience
  ? ['ci-main', 'ci-other'].map((client_id) => ({
      client_id,
      client_secret: need('CLIENT_SECRET'),
      redirect_uris: [],
      grant_types: ['client_credentials'],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_post',
    }))
  : [];
const workloadFeatures = workloadAudience
  ? {
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => workloadAudience,
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({
          scope: '',
          audience: workloadAudience,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        }),
      },
    }
  : {};

const provider = new Provider(issuer, {
  jwks: { keys: [signingKey] },
  clients: [
    {
      client_id: need('CLIENT_ID'),
      client_secret: need('CLIENT_SECRET'),
      redirect_uris: [need('REDIRECT_URI')],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
    ...ciJobs,
  ],
  features: workloadFeatures,
  // PKCE on every request, so a connector that forgets it fails.
  pkce: { required: () => true },
  claims: { openid: ['sub'], email: ['email', 'email_verified'] },
  // Scope-requested claims in the ID token too (the code flow would put them in userinfo only).
  conformIdTokenClaims: false,
  async findAccount(ctx, sub) {
    return {
      accountId: sub,
      async claims() {
        return { sub, email: `${sub}@example.com`, email_verified: true };
      },
    };
  },
  cookies: { keys: ['tokenwarden-test-cookie-key-not-a-secret'] },
});
// Plain http on loopback: tell it the connection is what it is.
provider.proxy = false;

if (tamper === 'nonce') {
  provider.use(async (ctx, next) => {
    if (ctx.path === '/auth' && ctx.query.nonce) {
      ctx.query = { ...ctx.query, nonce: 'a-nonce-tokenwarden-never-sent' };
    }
    await next();
  });
} else if (tamper === 'signature') {
  const { d, p, q, dp, dq, qi, ...impostor } = rsaJwk(signingKey.kid);
  provider.use(async (ctx, next) => {
    if (ctx.path === '/jwks') {
      ctx.type = 'application/json';
      ctx.body = { keys: [impostor] };
      return;
    }
    await next();
  });
} else if (tamper) {
  console.error(`provider.mjs: unknown TAMPER=${tamper}`);
  process.exit(2);
}

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`ready ${issuer}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
