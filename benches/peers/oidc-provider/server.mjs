// node-oidc-provider as a peer of the token endpoint benchmark (scripts/bench-peers.sh):
// client_credentials only, JWT access tokens through resource indicators, 600 s, one resource
// per algorithm (https://es256.bench -> ES256, https://rs256.bench -> RS256), keys made at start.
//
//   node server.mjs PORT CLIENT_SECRET
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const [port, secret] = process.argv.slice(2);
if (!port || !secret) {
  console.error('usage: node server.mjs PORT CLIENT_SECRET');
  process.exit(2);
}

const jwk = (type, options, alg, kid) => ({
  ...generateKeyPairSync(type, options).privateKey.export({ format: 'jwk' }),
  alg,
  kid,
  use: 'sig',
});
const algorithms = { 'https://es256.bench': 'ES256', 'https://rs256.bench': 'RS256' };

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: 'worker',
    client_secret: secret,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: {
    keys: [
      jwk('ec', { namedCurve: 'P-256' }, 'ES256', 'es256'),
      jwk('rsa', { modulusLength: 2048 }, 'RS256', 'rs256'),
    ],
  },
  scopes: ['read'],
  ttl: { ClientCredentials: 600 },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: (_ctx, _client, oneOf) => oneOf,
      getResourceServerInfo: (_ctx, resource) => {
        const alg = algorithms[resource];
        if (!alg) throw new Provider.errors.InvalidTarget();
        return {
          scope: 'read',
          audience: resource,
          accessTokenTTL: 600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg } },
        };
      },
    },
  },
});

provider.listen(Number(port), '127.0.0.1', () => {
  console.error(`oidc-provider listening on 127.0.0.1:${port}`);
});
