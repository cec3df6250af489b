// A real OpenID Provider for Warden's tests, built on the pinned npm `oidc-provider`.
//
//   NODE_MODULES=<node_modules> <node22> tests/oidc/provider.mjs <config.json>
//
// Environment:
//   NODE_MODULES  the node_modules directory of the pinned test tools (tests/tools); the
//                 package is loaded from there, since NODE_PATH does not apply to ESM imports.
//                 Falls back to NODE_PATH's first entry when NODE_MODULES is unset.
//   OIDC_DEBUG    when set to anything, every request is logged to stderr.
//
// config.json:
//   {
//     "clients": [{"client_id": "...", "client_secret": "...", "redirect_uris": ["..."]}],
//     "users":   [{"sub": "...", "email": "...", "email_verified": true, "name": "...",
//                  "groups": ["..."], "password": "..."}],
//     "admin_token": "optional; a random one is made otherwise",
//     "port": 0,                        // optional; 0 picks a free port
//     "rotate_refresh_tokens": true,    // optional; false keeps the same refresh token
//     "client_auth_methods": ["client_secret_basic", "client_secret_post"]
//                                       // optional; what discovery advertises and the token
//                                       // endpoint accepts (e.g. only client_secret_post;
//                                       // then a Basic header is refused with 401)
//   }
//   A client may also carry "token_endpoint_auth_method" (default: the first of
//   client_auth_methods; either secret method is accepted from any client, as long as
//   client_auth_methods has both). Clients can also be added or replaced while running (see
//   /test-admin/clients), so a test can start the provider before it knows the relying
//   party's port.
//
// Listens on 127.0.0.1; the issuer is http://127.0.0.1:<port> (no trailing slash). When ready
// it prints exactly one line to stdout, {"issuer": "...", "admin_token": "..."}, and then runs
// until killed. Everything else goes to stderr.
//
// What it offers: discovery, JWKS (a fresh RSA 2048 key, RS256 ID tokens), the authorization
// code flow with PKCE (S256, required), nonce, state and the RFC 9207 `iss` response
// parameter, client_secret_basic and client_secret_post, userinfo, revocation, and refresh
// tokens for every client (all clients may use the refresh_token grant; a refresh returns a new
// ID token with the user's current claims, and the nonce of the sign-in it came from). A reused
// authorization code, or a reused refresh token after rotation, revokes the whole grant. Scopes: openid email profile groups (and
// offline_access, which is not needed for a refresh token). The ID token carries the claims of
// the granted scopes (email, email_verified, name, groups).
//
// Sign-in: GET /interaction/:uid is a plain HTML form (login = the e-mail, password) posting to
// /interaction/:uid/login; a wrong password gets the form again with status 401. Consent is
// given automatically, so one form post ends in a redirect (via /auth/:uid) to the client.
//
// Test admin (Authorization: Bearer <admin_token>, else 401):
//   POST   /test-admin/users/<sub>   JSON object of claims merged into that user      -> 204
//   POST   /test-admin/users         JSON user object (as in config.json) to add       -> 204
//   GET    /test-admin/users/<sub>   the user's current record as JSON                 -> 200
//   DELETE /test-admin/users/<sub>   remove the user: refreshes for them then fail     -> 204
//   POST   /test-admin/clients       JSON client (as in config.json): add or replace   -> 204
//   (404 for an unknown sub, 400 for a body that is not a JSON object, 409 for an existing sub)

// oidc-provider prints notices with console.info, which goes to stdout: only the ready line
// may go there, so every console method writes to stderr.
for (const m of ['log', 'info', 'debug', 'warn']) console[m] = (...a) => console.error(...a);

import { createRequire } from 'node:module';
import { generateKeyPairSync, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

function die(msg) {
  console.error(`provider.mjs: ${msg}`);
  process.exit(2);
}

const configFile = process.argv[2];
if (!configFile) die('usage: provider.mjs <config.json>');
const config = JSON.parse(readFileSync(configFile, 'utf8'));

const modulesDir = process.env.NODE_MODULES || (process.env.NODE_PATH || '').split(path.delimiter)[0];
if (!modulesDir) die('set NODE_MODULES to the node_modules directory holding oidc-provider');
const requireFrom = createRequire(path.join(path.resolve(modulesDir), 'noop.js'));
const { default: Provider } = await import(pathToFileURL(requireFrom.resolve('oidc-provider')).href);

const debug = !!process.env.OIDC_DEBUG;
const adminToken = config.admin_token || randomBytes(24).toString('base64url');

// ---- users ------------------------------------------------------------------------------------
const users = new Map();
function addUser(u) {
  if (!u || typeof u !== 'object' || typeof u.sub !== 'string' || !u.sub) {
    throw new TypeError('a user needs a string "sub"');
  }
  users.set(u.sub, { email_verified: true, groups: [], ...u });
}
for (const u of config.users || []) addUser(u);

function userByLogin(login) {
  const want = String(login || '').trim().toLowerCase();
  for (const u of users.values()) {
    if ((u.email || '').toLowerCase() === want || u.sub === login) return u;
  }
  return undefined;
}

// Re-read at every use (authorization code, refresh, userinfo): claims are always current.
async function findAccount(_ctx, sub) {
  if (!users.has(sub)) return undefined;
  return {
    accountId: sub,
    async claims() {
      const u = users.get(sub);
      if (!u) return { sub };
      const out = { sub };
      for (const k of Object.keys(u)) {
        if (k !== 'password' && k !== 'sub') out[k] = u[k];
      }
      return out;
    },
  };
}

// ---- clients and storage -------------------------------------------------------------------------
// Clients are not given to oidc-provider as static configuration but served by the adapter, so
// /test-admin/clients can add or replace one at run time (oidc-provider caches a client by the
// hash of its metadata, so a replaced client takes effect at once).
const clients = new Map();
const clientAuthMethods = config.client_auth_methods || ['client_secret_basic', 'client_secret_post'];
function clientMetadata(c) {
  if (!c || typeof c !== 'object' || typeof c.client_id !== 'string' || !c.client_id) {
    throw new TypeError('a client needs a string "client_id"');
  }
  return {
    token_endpoint_auth_method: clientAuthMethods[0],
    ...c,
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
  };
}

// A plain in-memory adapter (oidc-provider's own keeps at most 1000 entries and warns at start).
const store = new Map(); // "Model:id" -> { payload, exp (ms, 0 = never) }
const sessionUids = new Map();
const userCodes = new Map();
const grantMembers = new Map(); // grantId -> Set of "Model:id"
const GRANTABLE = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode',
  'BackchannelAuthenticationRequest', 'PreAuthorizedCode']);

class TestAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  static read(key) {
    const e = store.get(key);
    if (!e) return undefined;
    if (e.exp && e.exp <= Date.now()) {
      store.delete(key);
      return undefined;
    }
    return e.payload;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    const exp = typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : 0;
    store.set(key, { payload, exp });
    if (this.model === 'Session' && payload.uid) sessionUids.set(payload.uid, id);
    if (payload.userCode) userCodes.set(payload.userCode, id);
    if (GRANTABLE.has(this.model) && payload.grantId) {
      if (!grantMembers.has(payload.grantId)) grantMembers.set(payload.grantId, new Set());
      grantMembers.get(payload.grantId).add(key);
    }
  }

  async find(id) {
    if (this.model === 'Client') return clients.get(id);
    return TestAdapter.read(this.key(id));
  }

  async findByUid(uid) {
    const id = sessionUids.get(uid);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode(userCode) {
    const id = userCodes.get(userCode);
    return id === undefined ? undefined : this.find(id);
  }

  async consume(id) {
    const payload = TestAdapter.read(this.key(id));
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    store.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    for (const key of grantMembers.get(grantId) || []) store.delete(key);
    grantMembers.delete(grantId);
  }
}

// ---- keys -------------------------------------------------------------------------------------
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig' };

// ---- provider configuration ---------------------------------------------------------------------
const rotate = config.rotate_refresh_tokens !== false;
const ttl = (seconds) => () => seconds;

const configuration = {
  adapter: TestAdapter,
  clientAuthMethods,
  jwks: { keys: [jwk] },
  findAccount,
  scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    groups: ['groups'],
  },
  // Claims of the granted scopes go into the ID token itself, not only to userinfo.
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  // A refresh token for every authorization code (and refresh) of a client allowed the grant,
  // without offline_access, and not tied to the browser session.
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  expiresWithSession: async () => false,
  rotateRefreshToken: () => rotate,
  features: {
    devInteractions: { enabled: false },
    userinfo: { enabled: true },
    revocation: { enabled: true },
  },
  interactions: { url: async (_ctx, interaction) => `/interaction/${interaction.uid}` },
  cookies: {
    keys: [randomBytes(32).toString('base64url')],
    // Plain http on 127.0.0.1: never mark cookies Secure (oidc-provider only does so itself
    // when the request is https, and proxy headers are not trusted below).
    long: { httpOnly: true, sameSite: 'lax', secure: false },
    short: { httpOnly: true, sameSite: 'lax', secure: false },
  },
  clientBasedCORS: () => false,
  ttl: {
    AccessToken: ttl(3600),
    AuthorizationCode: ttl(60),
    ClientCredentials: ttl(600),
    DeviceCode: ttl(600),
    BackchannelAuthenticationRequest: ttl(600),
    PreAuthorizedCode: ttl(600),
    IdToken: ttl(3600),
    RefreshToken: ttl(14 * 24 * 3600),
    Interaction: ttl(3600),
    Session: ttl(14 * 24 * 3600),
    Grant: ttl(14 * 24 * 3600),
  },
  async renderError(ctx, out, error) {
    console.error('provider error page:', JSON.stringify(out), error?.message || '');
    ctx.type = 'html';
    ctx.body = `<!DOCTYPE html><html><head><meta charset="utf-8"><title>Error</title></head><body>`
      + `<h1>Error</h1><pre>${esc(JSON.stringify(out, null, 2))}</pre></body></html>`;
  },
};

// ---- small HTTP helpers -------------------------------------------------------------------------
function esc(s) {
  return String(s ?? '').replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
  }[c]));
}

function readBody(req, limit = 1 << 20) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > limit) {
        reject(new Error('body too large'));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res, status, body = '', type = 'text/plain; charset=utf-8') {
  res.statusCode = status;
  res.setHeader('Cache-Control', 'no-store');
  if (body === '') {
    res.end();
    return;
  }
  res.setHeader('Content-Type', type);
  res.end(body);
}

function loginPage(uid, { login = '', message = '', client = '' } = {}) {
  return `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Sign in - test OpenID Provider</title></head>
<body>
<h1>Sign in</h1>
${client ? `<p>to continue to ${esc(client)}</p>` : ''}
${message ? `<p class="error" role="alert">${esc(message)}</p>` : ''}
<form method="post" action="/interaction/${esc(uid)}/login">
  <label>E-mail <input type="email" name="login" value="${esc(login)}" autofocus></label>
  <label>Password <input type="password" name="password"></label>
  <button type="submit">Sign in</button>
</form>
</body></html>
`;
}

// Grants everything the authorization request asked for: its scopes and any claims requested
// with the `claims` parameter. Used both at login (so no consent round trip is needed) and when
// the provider asks for consent on its own (an existing session, a new scope).
async function grantAll(provider, details, accountId) {
  const { params, prompt } = details;
  let grant;
  if (details.grantId) grant = await provider.Grant.find(details.grantId);
  if (!grant) grant = new provider.Grant({ accountId, clientId: params.client_id });
  if (params.scope) grant.addOIDCScope(params.scope);
  if (params.claims) {
    try {
      const requested = JSON.parse(params.claims);
      const names = new Set([
        ...Object.keys(requested.id_token || {}),
        ...Object.keys(requested.userinfo || {}),
      ]);
      if (names.size) grant.addOIDCClaims([...names]);
    } catch { /* the provider itself rejects a malformed claims parameter */ }
  }
  const missing = prompt?.details || {};
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes || {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  return grant.save();
}

// ---- routes of our own: interactions and the test admin API -------------------------------------
async function interactionRoutes(provider, req, res, url) {
  const m = url.pathname.match(/^\/interaction\/([^/]+)(\/login)?$/);
  if (!m) return false;
  const [, uid, isLogin] = m;
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (err) {
    console.error(`interaction ${uid}: ${err.message}`);
    send(res, 400, `interaction not found or expired: ${err.message}\n`);
    return true;
  }
  if (details.uid !== uid) {
    send(res, 400, 'interaction cookie does not match this URL\n');
    return true;
  }
  const clientId = details.params.client_id;

  if (!isLogin && req.method === 'GET') {
    if (details.prompt.name === 'login') {
      send(res, 200, loginPage(uid, { login: details.params.login_hint || '', client: clientId }),
        'text/html; charset=utf-8');
      return true;
    }
    // Consent (or any other prompt): granted automatically.
    const grantId = await grantAll(provider, details, details.session.accountId);
    await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    return true;
  }

  if (isLogin && req.method === 'POST') {
    const form = new URLSearchParams(await readBody(req));
    const login = form.get('login') || '';
    const password = form.get('password') || '';
    const user = userByLogin(login);
    if (!user || typeof user.password !== 'string' || !safeEqual(user.password, password)) {
      console.error(`interaction ${uid}: wrong e-mail or password for ${JSON.stringify(login)}`);
      send(res, 401, loginPage(uid, { login, message: 'Wrong e-mail or password.', client: clientId }),
        'text/html; charset=utf-8');
      return true;
    }
    const grantId = await grantAll(provider, details, user.sub);
    await provider.interactionFinished(req, res, {
      login: { accountId: user.sub, amr: ['pwd'] },
      consent: { grantId },
    }, { mergeWithLastSubmission: false });
    return true;
  }

  send(res, 405, 'method not allowed\n');
  return true;
}

function safeEqual(a, b) {
  const x = Buffer.from(String(a));
  const y = Buffer.from(String(b));
  return x.length === y.length && timingSafeEqual(x, y);
}

async function adminRoutes(provider, req, res, url) {
  if (!url.pathname.startsWith('/test-admin/')) return false;
  const auth = req.headers.authorization || '';
  if (!auth.startsWith('Bearer ') || !safeEqual(auth.slice(7), adminToken)) {
    res.setHeader('WWW-Authenticate', 'Bearer');
    send(res, 401, 'admin token required\n');
    return true;
  }
  const readJson = async () => {
    const text = await readBody(req);
    const v = JSON.parse(text || 'null');
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new TypeError('expected a JSON object');
    return v;
  };
  try {
    if (url.pathname === '/test-admin/clients' && req.method === 'POST') {
      const metadata = clientMetadata(await readJson());
      await provider.Client.validate(metadata);
      clients.set(metadata.client_id, metadata);
      console.error(`test-admin: client ${metadata.client_id} redirect_uris ${JSON.stringify(metadata.redirect_uris)}`);
      send(res, 204);
      return true;
    }
    if (url.pathname === '/test-admin/users' && req.method === 'POST') {
      const u = await readJson();
      if (users.has(u.sub)) {
        send(res, 409, `user ${u.sub} exists\n`);
        return true;
      }
      addUser(u);
      console.error(`test-admin: added user ${u.sub}`);
      send(res, 204);
      return true;
    }
    const m = url.pathname.match(/^\/test-admin\/users\/([^/]+)$/);
    if (m) {
      const sub = decodeURIComponent(m[1]);
      const user = users.get(sub);
      if (!user) {
        send(res, 404, `no user ${sub}\n`);
        return true;
      }
      if (req.method === 'POST') {
        const claims = await readJson();
        delete claims.sub;
        Object.assign(user, claims);
        console.error(`test-admin: user ${sub} now ${JSON.stringify({ ...user, password: undefined })}`);
        send(res, 204);
        return true;
      }
      if (req.method === 'GET') {
        send(res, 200, JSON.stringify({ ...user, password: undefined }), 'application/json');
        return true;
      }
      if (req.method === 'DELETE') {
        users.delete(sub);
        console.error(`test-admin: removed user ${sub}`);
        send(res, 204);
        return true;
      }
      send(res, 405, 'method not allowed\n');
      return true;
    }
  } catch (err) {
    send(res, 400, `${err.message}${err.error_description ? `: ${err.error_description}` : ''}\n`);
    return true;
  }
  send(res, 404, 'not found\n');
  return true;
}

// oidc-provider accepts client_secret_basic and client_secret_post from any client with a
// secret; when the config allows only one of them, the other is refused here, so a test can
// tell which one the relying party used.
async function refuseOtherClientAuth(req, res, url) {
  const basicOk = clientAuthMethods.includes('client_secret_basic');
  const postOk = clientAuthMethods.includes('client_secret_post');
  if ((basicOk && postOk) || req.method !== 'POST' || !url.pathname.startsWith('/token')) return false;
  const body = await readBody(req);
  req.body = body; // oidc-provider reads an already consumed body from req.body
  const basic = /^basic /i.test(req.headers.authorization || '');
  const post = new URLSearchParams(body).has('client_secret');
  const used = (basic && !basicOk && 'client_secret_basic') || (post && !postOk && 'client_secret_post');
  if (!used) return false;
  console.error(`refused ${used} at ${url.pathname}: only ${clientAuthMethods.join(', ')} allowed`);
  send(res, 401, JSON.stringify({
    error: 'invalid_client',
    error_description: `${used} is not allowed here; use ${clientAuthMethods.join(' or ')}`,
  }), 'application/json');
  return true;
}

// ---- start ----------------------------------------------------------------------------------------
let provider;
let providerCallback;

const server = http.createServer(async (req, res) => {
  if (debug) console.error(`${req.method} ${req.url}`);
  try {
    const url = new URL(req.url, 'http://127.0.0.1');
    if (await adminRoutes(provider, req, res, url)) return;
    if (await refuseOtherClientAuth(req, res, url)) return;
    if (await interactionRoutes(provider, req, res, url)) return;
    providerCallback(req, res);
  } catch (err) {
    console.error(`error handling ${req.method} ${req.url}:`, err);
    if (!res.headersSent) send(res, 500, `${err.message}\n`);
    else res.end();
  }
});

await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(Number(config.port || 0), '127.0.0.1', resolve);
});
const issuer = `http://127.0.0.1:${server.address().port}`;

try {
  provider = new Provider(issuer, configuration);
} catch (err) {
  die(`bad provider configuration: ${err.stack || err}`);
}
provider.proxy = false; // never trust X-Forwarded-* headers
for (const c of config.clients || []) {
  const metadata = clientMetadata(c);
  try {
    await provider.Client.validate(metadata);
  } catch (err) {
    die(`bad client ${metadata.client_id}: ${err.message} ${err.error_description || ''}`);
  }
  clients.set(metadata.client_id, metadata);
}
provider.on('server_error', (_ctx, err) => console.error('server_error:', err));
provider.on('grant.error', (_ctx, err) => console.error(`grant.error: ${err.message} ${err.error_description || ''}`));
provider.on('authorization.error', (_ctx, err) => console.error(`authorization.error: ${err.message} ${err.error_description || ''}`));
provider.on('userinfo.error', (_ctx, err) => console.error(`userinfo.error: ${err.message} ${err.error_description || ''}`));
providerCallback = provider.callback();

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    server.close();
    process.exit(0);
  });
}

process.stdout.write(`${JSON.stringify({ issuer, admin_token: adminToken })}\n`);
