// mcpkey's end-to-end authorization server: oidc-provider with PKCE required,
// resource indicators (JWT access tokens whose aud is the resource), open
// dynamic client registration, revocation and rotating refresh tokens with
// reuse detection. See ../shared/design/test-components.md §6.
//
// Environment:
//   AS_PORT         port on 127.0.0.1; 0 (the default) picks a free one
//   AS_RESOURCES    comma-separated resource URLs tokens may be issued for
//                   (more can be added at runtime: POST /_test/resources)
//   AS_SCOPES       space-separated scopes of those resources (default mcp:tools)
//   AS_ACCESS_TTL   access token lifetime in seconds (default 300)
//   AS_REFRESH_TTL  refresh token lifetime in seconds (default 86400)
//   AS_DPOP_NONCE   1: token requests with a DPoP proof must carry the AS's
//                   nonce (answered use_dpop_nonce + DPoP-Nonce first)
//   AS_ID_TOKEN_TTL ID token lifetime in seconds (default 3600)
//
// DPoP (RFC 9449) is on, as oidc-provider has it by default: the metadata
// lists dpop_signing_alg_values_supported, and a token request with a proof
// gets a token bound to its key (token_type DPoP, cnf.jkt in the JWT). A
// request without a proof gets a bearer token, as before.
//
// Once listening it prints one JSON line on stdout:
//   {"issuer":"http://127.0.0.1:PORT","port":PORT}
// Everything else goes to stderr. Test-only endpoints (loopback only, like the
// server itself):
//   GET  /_test/stats      counters: {code_grants, refresh_grants,
//                          refresh_tokens_consumed, revocation_requests,
//                          grants_revoked, registrations, live_refresh_tokens,
//                          resources, refresh_clients: {client_id: refresh
//                          grants}, refresh_errors: {error code: count}}
//
// Static clients (the pre-registered path): mcpkey-e2e (public) and
// mcpkey-e2e-confidential (client_secret_basic, secret
// STATIC_CLIENT_SECRET below; a test fixture, not a credential).
// Enterprise-managed authorization (the MCP extension's profile), both
// halves on this one server: as the identity provider it exchanges an ID
// token it issued to mcpkey-e2e for an identity assertion (RFC 8693,
// requested_token_type id-jag, signed with a key of this process); as the
// MCP server's authorization server it trades that assertion with the JWT
// bearer grant (RFC 7523) for an access token of mcpkey-e2e-confidential
// for the resource. Stats: token_exchanges, jwt_bearer_grants.
// mcpkey-e2e-machine is a machine client (client_secret_basic, the same
// secret) allowed only the client_credentials grant, which is enabled with
// resource indicators; stats count its grants as client_credentials_grants.
//   POST /_test/resources  body {"resource": URL}: accept one more resource
//   POST /_test/revoke-grants  revoke every grant issued so far (its refresh
//                          tokens die, so the next refresh gets invalid_grant)
//
// No token, code or secret is ever logged.
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

// The pinned packages live in e2e/node (one package-lock for every fixture).
const requireFixture = createRequire(new URL('../node/package.json', import.meta.url));
const oidcEntry = requireFixture.resolve('oidc-provider');
const { default: Provider, errors: oidcErrors } = await import(pathToFileURL(oidcEntry).href);
// The grant helpers the built-in client_credentials grant uses, for the
// enterprise profile's JWT bearer grant below (oidc-provider has no such
// grant; it lets one be registered).
const grantHelpers = await import(pathToFileURL(oidcEntry.replace(/index\.js$/, 'helpers/grants.js')).href);
const jose = await import(pathToFileURL(requireFixture.resolve('jose')).href);

const port = Number(process.env.AS_PORT ?? 0);
const resources = new Set(
  (process.env.AS_RESOURCES ?? '').split(',').map((s) => s.trim()).filter(Boolean),
);
const resourceScopes = (process.env.AS_SCOPES ?? 'mcp:tools').split(' ').filter(Boolean);
const accessTTL = Number(process.env.AS_ACCESS_TTL ?? 300);
const refreshTTL = Number(process.env.AS_REFRESH_TTL ?? 86400);
const dpopNonce = process.env.AS_DPOP_NONCE === '1';
const idTokenTTL = Number(process.env.AS_ID_TOKEN_TTL ?? 3600);

const STATIC_CLIENT_SECRET = 'e2e-static-client-secret';

const stats = {
  refresh_clients: {},
  refresh_errors: {},
  code_grants: 0,
  refresh_grants: 0,
  refresh_tokens_consumed: 0,
  revocation_requests: 0,
  grants_revoked: 0,
  registrations: 0,
  client_credentials_grants: 0,
  token_exchanges: 0,
  jwt_bearer_grants: 0,
};
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const ID_JAG = 'urn:ietf:params:oauth:token-type:id-jag';
const jagKey = await jose.generateKeyPair('ES256');
const grantIds = new Set();
const refreshJtis = new Set();

const log = (...args) => console.error('as:', ...args);

const server = http.createServer();
server.listen(port, '127.0.0.1', () => {
  const actual = server.address().port;
  const issuer = `http://127.0.0.1:${actual}`;
  const provider = newProvider(issuer);
  const oidc = provider.callback();
  server.on('request', (req, res) => {
    if (req.url.startsWith('/_test/')) {
      testEndpoint(provider, req, res).catch((err) => {
        log('test endpoint error:', err.message);
        res.writeHead(500).end();
      });
      return;
    }
    oidc(req, res);
  });
  process.stdout.write(`${JSON.stringify({ issuer, port: actual })}\n`);
  log(`listening on ${issuer}; resources: ${[...resources].join(', ') || '(none yet)'}`);
});

function newProvider(issuer) {
  const provider = new Provider(issuer, {
    clients: [{
      client_id: 'mcpkey-e2e',
      token_endpoint_auth_method: 'none',
      application_type: 'native',
      redirect_uris: ['http://127.0.0.1/callback'], // native loopback: any port matches
      grant_types: ['authorization_code', 'refresh_token', TOKEN_EXCHANGE],
      response_types: ['code'],
    }, {
      client_id: 'mcpkey-e2e-confidential',
      client_secret: STATIC_CLIENT_SECRET,
      token_endpoint_auth_method: 'client_secret_basic',
      application_type: 'native',
      redirect_uris: ['http://127.0.0.1/callback'],
      grant_types: ['authorization_code', 'refresh_token', JWT_BEARER],
      response_types: ['code'],
    }, {
      client_id: 'mcpkey-e2e-machine',
      client_secret: STATIC_CLIENT_SECRET,
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
    }],
    pkce: { required: () => true },
    scopes: ['openid', 'offline_access', ...resourceScopes],
    // By default a refresh token needs offline_access and prompt=consent; here
    // every client allowed the grant gets one.
    issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: true,
    ttl: { AccessToken: accessTTL, RefreshToken: refreshTTL, IdToken: idTokenTTL },
    features: {
      devInteractions: { enabled: true }, // HTML login (any user/password) + consent
      registration: { enabled: true }, // open DCR at /reg
      revocation: { enabled: true },
      dPoP: { enabled: true, nonceSecret: randomBytes(32), requireNonce: () => dpopNonce },
      clientCredentials: { enabled: true }, // machine to machine (mcpkey-e2e-machine)
      resourceIndicators: {
        enabled: true,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (ctx, resource) => {
          if (!resources.has(resource)) {
            // surfaces as invalid_target
            throw new Error('unknown resource');
          }
          return {
            audience: resource,
            scope: resourceScopes.join(' '),
            accessTokenFormat: 'jwt',
            accessTokenTTL: accessTTL,
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    findAccount: async (ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
  });

  registerEnterpriseGrants(provider, issuer);
  provider.on('grant.success', (ctx) => {
    const grantType = ctx.oidc.params?.grant_type;
    if (grantType === 'refresh_token') {
      stats.refresh_grants++;
      const id = ctx.oidc.client?.clientId ?? '?';
      stats.refresh_clients[id] = (stats.refresh_clients[id] ?? 0) + 1;
    }
    if (grantType === 'authorization_code') stats.code_grants++;
    if (grantType === 'client_credentials') stats.client_credentials_grants++;
    log(`grant.success ${grantType}`);
  });
  provider.on('authorization.error', (ctx, err) => {
    const p = ctx.oidc?.params ?? {};
    log(`authorization.error: ${err.error ?? err.message}: ${err.error_description ?? ''}`
      + ` (scope=${p.scope} prompt=${p.prompt} resource=${p.resource})`);
  });
  provider.on('grant.error', (ctx, err) => {
    if (ctx.oidc?.params?.grant_type === 'refresh_token') {
      const code = err.error ?? 'server_error';
      stats.refresh_errors[code] = (stats.refresh_errors[code] ?? 0) + 1;
    }
    log(`grant.error ${ctx.oidc?.params?.grant_type}: ${err.error ?? err.message}: ${err.error_description ?? ''}`);
  });
  provider.on('refresh_token.saved', (token) => {
    refreshJtis.add(token.jti);
    if (token.grantId) grantIds.add(token.grantId);
  });
  provider.on('refresh_token.consumed', () => { stats.refresh_tokens_consumed++; });
  provider.on('grant.revoked', () => { stats.grants_revoked++; });
  provider.on('registration_create.success', () => { stats.registrations++; });
  provider.on('server_error', (ctx, err) => log('server_error:', err.message));
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.method === 'POST' && ctx.path === '/token/revocation' && ctx.status === 200) {
      stats.revocation_requests++;
      log('revocation');
    }
  });
  return provider;
}

function registerEnterpriseGrants(provider, issuer) {
  const { InvalidGrant, InvalidRequest } = oidcErrors;
  const jwks = jose.createRemoteJWKSet(new URL(`${issuer}/jwks`));
  provider.registerGrantType(TOKEN_EXCHANGE, async (ctx) => {
    const p = ctx.oidc.params;
    if (p.subject_token_type !== 'urn:ietf:params:oauth:token-type:id_token' || p.requested_token_type !== ID_JAG
      || !p.audience || !p.resource) {
      throw new InvalidRequest('expected an ID token exchanged for an id-jag with audience and resource');
    }
    let claims;
    try {
      ({ payload: claims } = await jose.jwtVerify(p.subject_token, jwks, { issuer, audience: ctx.oidc.client.clientId }));
    } catch {
      throw new InvalidGrant('subject_token is not an ID token this provider issued to this client');
    }
    const jag = await new jose.SignJWT({ sub: claims.sub, resource: p.resource, client_id: 'mcpkey-e2e-confidential' })
      .setProtectedHeader({ alg: 'ES256', typ: 'oauth-id-jag+jwt' })
      .setIssuer(issuer).setAudience(p.audience).setIssuedAt().setExpirationTime('5m').setJti(crypto.randomUUID())
      .sign(jagKey.privateKey);
    stats.token_exchanges++;
    ctx.body = { access_token: jag, issued_token_type: ID_JAG, token_type: 'N_A', expires_in: 300 };
  }, ['subject_token', 'subject_token_type', 'requested_token_type', 'audience', 'resource', 'scope'], ['audience', 'resource']);

  provider.registerGrantType(JWT_BEARER, async (ctx) => {
    const p = ctx.oidc.params;
    const { client } = ctx.oidc;
    let claims;
    try {
      ({ payload: claims } = await jose.jwtVerify(p.assertion, jagKey.publicKey, { issuer, audience: issuer, typ: 'oauth-id-jag+jwt' }));
    } catch (err) {
      log(`jwt-bearer: assertion refused: ${err.code ?? err.message}`);
      throw new InvalidGrant('assertion is not a valid identity assertion');
    }
    if (claims.client_id !== client.clientId || claims.resource !== p.resource) {
      log(`jwt-bearer: assertion for client ${claims.client_id} and ${claims.resource}, not ${client.clientId} and ${p.resource}`);
      throw new InvalidGrant('identity assertion is for another client or resource');
    }
    const resourceServers = await grantHelpers.resolveRequestedResources(provider, ctx);
    const scopes = [...grantHelpers.validateClientScope(provider, ctx)];
    const token = new provider.ClientCredentials({ client, scope: scopes.join(' ') || undefined });
    const [resourceServer] = resourceServers;
    if (resourceServer) {
      token.resourceServer = resourceServer;
      token.scope = scopes.filter(Set.prototype.has.bind(new Set(resourceServer.scope.split(' ')))).join(' ') || undefined;
    }
    const value = await token.save();
    stats.jwt_bearer_grants++;
    ctx.body = grantHelpers.buildTokenResponse(provider, {
      accessToken: value, expiresIn: token.expiration, scope: token.scope || undefined, tokenType: token.tokenType,
    });
  }, ['assertion', 'scope', 'resource']);
}

async function liveRefreshTokens(provider) {
  let live = 0;
  const now = Math.floor(Date.now() / 1000);
  for (const jti of refreshJtis) {
    const payload = await provider.RefreshToken.adapter.find(jti);
    if (payload && !payload.consumed && (!payload.exp || payload.exp > now)) live++;
  }
  return live;
}

async function readJSON(req) {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 65536) throw new Error('body too large');
  }
  return body ? JSON.parse(body) : {};
}

async function testEndpoint(provider, req, res) {
  const send = (status, obj) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(obj));
  };
  const path = req.url.split('?')[0];
  if (req.method === 'GET' && path === '/_test/stats') {
    send(200, { ...stats, live_refresh_tokens: await liveRefreshTokens(provider), resources: [...resources] });
    return;
  }
  if (req.method === 'POST' && path === '/_test/resources') {
    const { resource } = await readJSON(req);
    if (typeof resource !== 'string' || !URL.canParse(resource)) {
      send(400, { error: 'resource must be a URL' });
      return;
    }
    resources.add(resource);
    log(`resource added: ${resource}`);
    send(200, { resources: [...resources] });
    return;
  }
  if (req.method === 'POST' && path === '/_test/revoke-grants') {
    let n = 0;
    for (const grantId of grantIds) {
      await provider.RefreshToken.revokeByGrantId(grantId);
      await provider.AuthorizationCode.revokeByGrantId(grantId);
      await provider.Grant.adapter.destroy(grantId);
      n++;
    }
    grantIds.clear();
    log(`revoked ${n} grants`);
    send(200, { revoked: n });
    return;
  }
  send(404, { error: 'not found' });
}

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => server.close(() => process.exit(0)));
}
