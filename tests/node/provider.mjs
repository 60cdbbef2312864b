// The upstream OpenID Provider of the tests: node-oidc-provider (npm `oidc-provider`) with its
// development login (devInteractions: any username, any password; the username becomes `sub`),
// one confidential client for tokenwarden, PKCE required. Started by tests/fixtures/upstream.rs.
//
// Environment: PORT, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI. Prints `ready <issuer>` on stdout
// once it listens; logs nothing else unless DEBUG is set.
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

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: need('CLIENT_ID'),
      client_secret: need('CLIENT_SECRET'),
      redirect_uris: [need('REDIRECT_URI')],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
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

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`ready ${issuer}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
