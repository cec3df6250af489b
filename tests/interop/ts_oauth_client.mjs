// An OAuth client app written with the official TypeScript MCP SDK v2
// (`@modelcontextprotocol/client`, pinned in tests/tools/package.json), unmodified, the way its
// docs show one: an in-memory OAuthClientProvider; connect, which answers 401 and makes the SDK
// discover, register and send the person to /authorize through redirectToAuthorization;
// transport.finishAuth(callback params) once the redirect comes back; a reconnect on a fresh
// transport; then tool calls.
//
// The person at the browser is played headlessly with fetch: GET the authorization URL, follow
// same-server redirects by hand, keep cookies (Set-Cookie -> Cookie), fill Warden's sign-in form
// (email, password, csrf_token and every other hidden input) and its consent form (Allow, the
// write box left unticked), until a redirect to the app's redirect_uri carries code, state and
// iss. Nothing listens on the redirect_uri: the app reads the callback from that Location.
//
// Then: list tools, call search_vendors {"limit": 2} nine times, check each result is not an
// error and has 2 rows, and print one JSON line on stdout:
//   {"calls":9,"scope":"mcp:read","sdk":"@modelcontextprotocol/client","version":"2.4.0",...}
// Any failure: a message on stderr, exit status 1.
//
//   NODE_PATH=/path/to/tools/node_modules node tests/interop/ts_oauth_client.mjs URL EMAIL PASSWORD
//   (or MCP_URL, WARDEN_EMAIL, WARDEN_PASSWORD in the environment)
//
// tests/interop/test_balancer.py runs it with the pinned Node 22 against HAProxy in front of
// three `warden serve` instances.
//
// Options, in the environment (unset: the behaviour above, which test_balancer relies on):
//   CIMD_URL=https://host/client.json  the app identifies itself with this Client ID Metadata
//                                      Document URL (OAuthClientProvider.clientMetadataUrl)
//                                      instead of registering; the document must list
//                                      REDIRECT_URI below (tests/interop/test_cimd.py)
//   VERSION_NEGOTIATION=legacy|auto    v2's Client versionNegotiation mode (SDK default: legacy)
//   SDK_LINE=v1                        the v1 SDK (`@modelcontextprotocol/sdk`, 2025-11-25 only)
//                                      instead of v2, loaded and finished as its docs show
// The summary also says which client_id the app used, whether it registered (POST
// /register), and the protocol version it negotiated.

import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);

const SDK_LINE = process.env.SDK_LINE || 'v2';
const CIMD_URL = process.env.CIMD_URL || undefined;
const VERSION_NEGOTIATION = process.env.VERSION_NEGOTIATION || undefined;
// Each line as its docs show: v1 hands finishAuth the code; v2 the whole callback query (and
// checks RFC 9207 `iss`).
const LINES = {
  v1: {
    sdk: '@modelcontextprotocol/sdk',
    load() {
      const { Client } = require('@modelcontextprotocol/sdk/client/index.js');
      const { StreamableHTTPClientTransport } = require('@modelcontextprotocol/sdk/client/streamableHttp.js');
      const { UnauthorizedError } = require('@modelcontextprotocol/sdk/client/auth.js');
      const version = installedVersion('@modelcontextprotocol/sdk/client/index.js', this.sdk);
      return { Client, StreamableHTTPClientTransport, UnauthorizedError, version };
    },
    finishAuth: (transport, params) => transport.finishAuth(params.get('code')),
    protocolVersion: (client, transport) => transport.protocolVersion,
  },
  v2: {
    sdk: '@modelcontextprotocol/client',
    load() {
      const { Client, StreamableHTTPClientTransport, UnauthorizedError } = require(this.sdk);
      return { Client, StreamableHTTPClientTransport, UnauthorizedError, version: installedVersion(this.sdk, this.sdk) };
    },
    finishAuth: (transport, params) => transport.finishAuth(params),
    protocolVersion: (client) => client.getNegotiatedProtocolVersion(),
  },
};
const LINE = LINES[SDK_LINE];
const SDK = LINE?.sdk;
const CLIENT_NAME = `warden-interop-ts-${SDK_LINE}`;
const CALLS = 9;
const TIMEOUT_MS = 120_000;
// The app's registered redirect URI. The headless person stops at the redirect to it, so no
// listener is needed (the port is arbitrary).
const REDIRECT_URI = 'http://127.0.0.1:33419/callback';

function fail(message) {
  const err = new Error(message);
  err.name = 'ts_oauth_client';
  throw err;
}

function check(cond, message) {
  if (!cond) fail(message);
}

/** The version in the package.json above a resolved module file (the SDK does not export it). */
function installedVersion(moduleId, name) {
  let dir = dirname(require.resolve(moduleId));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
      if (pkg.name === name) return pkg.version;
    } catch {
      // not this directory
    }
    const up = dirname(dir);
    if (up === dir) return 'unknown';
    dir = up;
  }
}

// ---------------------------------------------------------------------------------------------
// HTML forms: a small tolerant parser (attributes in any order, either quote or none, entities)
// ---------------------------------------------------------------------------------------------

const ENTITIES = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0' };

function decodeEntities(s) {
  return s.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (m, e) => {
    if (e[0] === '#') {
      const n = e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
      return Number.isFinite(n) ? String.fromCodePoint(n) : m;
    }
    return ENTITIES[e.toLowerCase()] ?? m;
  });
}

function parseAttrs(s) {
  const attrs = {};
  const re = /([^\s"'>\/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g;
  for (const m of s.matchAll(re)) {
    const name = m[1].toLowerCase();
    if (name in attrs) continue; // HTML: the first occurrence wins
    attrs[name] = decodeEntities(m[2] ?? m[3] ?? m[4] ?? '');
  }
  return attrs;
}

function textOf(html) {
  return decodeEntities(html.replace(/<script[\s\S]*?<\/script>|<style[\s\S]*?<\/style>/gi, '').replace(/<[^>]*>/g, ' '))
    .replace(/\s+/g, ' ')
    .trim();
}

/**
 * Every <form> on the page: action, method, fields (input, select, textarea: name, type, value,
 * checked) and submit buttons (name, value, label), in document order.
 */
function parseForms(html) {
  const body = html.replace(/<!--[\s\S]*?-->/g, '');
  const forms = [];
  for (const fm of body.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form\s*>/gi)) {
    const fa = parseAttrs(fm[1]);
    const form = { action: fa.action ?? '', method: (fa.method || 'get').toLowerCase(), fields: [], buttons: [] };
    const inner = fm[2];
    const re = /<(input|button|select|textarea)\b([^>]*)>|<\/(select|textarea|button)\s*>/gi;
    let select = null;
    let textarea = null;
    let button = null;
    let last = 0;
    for (const m of inner.matchAll(re)) {
      const between = inner.slice(last, m.index);
      last = m.index + m[0].length;
      if (textarea) textarea.value += decodeEntities(between);
      if (button) button.label += between;
      if (select) {
        for (const om of between.matchAll(/<option\b([^>]*)>([^<]*)/gi)) {
          const oa = parseAttrs(om[1]);
          const value = 'value' in oa ? oa.value : decodeEntities(om[2]).trim();
          if (!select.chosen || 'selected' in oa) {
            select.value = value;
            select.chosen = true;
          }
        }
      }
      if (m[3]) {
        const end = m[3].toLowerCase();
        if (end === 'select') select = null;
        if (end === 'textarea') textarea = null;
        if (end === 'button' && button) {
          button.label = textOf(button.label);
          button = null;
        }
        continue;
      }
      const tag = m[1].toLowerCase();
      const a = parseAttrs(m[2]);
      if (tag === 'input') {
        const type = (a.type || 'text').toLowerCase();
        if (type === 'submit' || type === 'image') {
          form.buttons.push({ name: a.name ?? '', value: a.value ?? '', label: a.value ?? '' });
        } else if (!['button', 'reset', 'file'].includes(type)) {
          form.fields.push({ tag, type, name: a.name ?? '', value: a.value ?? (type === 'checkbox' || type === 'radio' ? 'on' : ''), checked: 'checked' in a, disabled: 'disabled' in a });
        }
      } else if (tag === 'button') {
        const type = (a.type || 'submit').toLowerCase();
        button = { name: a.name ?? '', value: a.value ?? '', label: '', type };
        if (type === 'submit') form.buttons.push(button);
      } else if (tag === 'select') {
        select = { tag, type: 'select', name: a.name ?? '', value: '', chosen: false, disabled: 'disabled' in a };
        form.fields.push(select);
      } else if (tag === 'textarea') {
        textarea = { tag, type: 'textarea', name: a.name ?? '', value: '', disabled: 'disabled' in a };
        form.fields.push(textarea);
      }
    }
    if (select) {
      for (const om of inner.slice(last).matchAll(/<option\b([^>]*)>([^<]*)/gi)) {
        const oa = parseAttrs(om[1]);
        if (!select.chosen || 'selected' in oa) {
          select.value = 'value' in oa ? oa.value : decodeEntities(om[2]).trim();
          select.chosen = true;
        }
      }
    }
    forms.push(form);
  }
  return forms;
}

/** What a browser submits for `form` with `button`, after `fill` chose values and boxes. */
function formData(form, button, fill) {
  const data = new URLSearchParams();
  for (const f of form.fields) {
    if (!f.name || f.disabled) continue;
    const v = fill(f);
    if (f.type === 'checkbox' || f.type === 'radio') {
      if (v === true || (v === undefined && f.checked)) data.append(f.name, f.value);
      continue;
    }
    data.append(f.name, v === undefined ? f.value : v);
  }
  if (button?.name) data.append(button.name, button.value);
  return data;
}

// ---------------------------------------------------------------------------------------------
// The person at the browser, headless: cookies, same-server redirects, sign-in, consent
// ---------------------------------------------------------------------------------------------

class HeadlessPerson {
  constructor(email, password) {
    this.email = email;
    this.password = password;
    this.cookies = new Map();
    this.steps = []; // "GET /authorize 200 (sign-in)", ... for the error messages and the summary
  }

  async request(url, init = {}) {
    const headers = new Headers(init.headers);
    if (this.cookies.size) headers.set('cookie', [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; '));
    const res = await fetch(url, { ...init, headers, redirect: 'manual' });
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const gone = attrs.some((a) => /^\s*max-age\s*=\s*(0|-\d+)\s*$/i.test(a)) ||
        attrs.some((a) => /^\s*expires\s*=/i.test(a) && Date.parse(a.split('=').slice(1).join('=')) < Date.now());
      if (gone) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return res;
  }

  /**
   * From the authorization URL to the redirect to `redirectUri`; returns that redirect's URL.
   * Only follows redirects within the authorization server's origin; answers the sign-in form
   * and the consent form (Allow, write unticked); anything else is a failure.
   */
  async authorize(authorizationUrl, redirectUri) {
    const origin = new URL(authorizationUrl).origin;
    let url = new URL(authorizationUrl);
    let res = await this.request(url);
    let signedIn = false;
    let consented = false;
    for (let step = 0; step < 12; step++) {
      const where = `${res.status} ${url.pathname}`;
      if (res.status >= 300 && res.status < 400) {
        const location = res.headers.get('location');
        check(location, `${where}: a redirect without Location`);
        const next = new URL(location, url);
        this.steps.push(`${where} -> ${next.origin === origin ? next.pathname : next.origin + next.pathname}`);
        await res.arrayBuffer();
        if (next.href.startsWith(redirectUri)) return next;
        check(next.origin === origin, `${where}: redirected off the server to ${next.href} (expected ${redirectUri})`);
        url = next;
        res = await this.request(url);
        continue;
      }
      const html = await res.text();
      check(res.status === 200, `${where}: unexpected status; the page says: ${textOf(html).slice(0, 600)}`);
      const forms = parseForms(html);
      const alert = /<[^>]*role="alert"[^>]*>([\s\S]*?)<\//i.exec(html);
      const signIn = forms.find((f) => f.fields.some((x) => x.type === 'password'));
      const consent = forms.find((f) => f.buttons.some((b) => /^allow$/i.test(b.value) || /^allow$/i.test(b.label)));
      if (signIn) {
        check(!signedIn, `${where}: the sign-in page came back after signing in${alert ? `: ${textOf(alert[1])}` : ''}`);
        signedIn = true;
        const email = signIn.fields.find((f) => f.type === 'email' || /^(email|username|login)$/i.test(f.name));
        check(email, `${where}: the sign-in form has no email field`);
        check(signIn.fields.some((f) => f.name === 'csrf_token' && f.value), `${where}: the sign-in form has no csrf_token`);
        const data = formData(signIn, signIn.buttons[0], (f) => {
          if (f === email) return this.email;
          if (f.type === 'password') return this.password;
          return undefined;
        });
        this.steps.push(`${where} (sign-in form)`);
        url = new URL(signIn.action || url.href, url);
        res = await this.request(url, { method: signIn.method === 'post' ? 'POST' : 'GET', body: data, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
        continue;
      }
      if (consent) {
        check(!consented, `${where}: the consent page came back after allowing${alert ? `: ${textOf(alert[1])}` : ''}`);
        consented = true;
        check(consent.fields.some((f) => f.name === 'csrf_token' && f.value), `${where}: the consent form has no csrf_token`);
        const allow = consent.buttons.find((b) => /^allow$/i.test(b.value) || /^allow$/i.test(b.label));
        const write = consent.fields.filter((f) => f.type === 'checkbox' && /write/i.test(`${f.name} ${f.value}`));
        check(write.every((f) => !f.checked), `${where}: the write box is ticked by default`);
        // Leave the write box unticked: a read-only grant. Every other field as the page has it.
        const data = formData(consent, allow, (f) => (write.includes(f) ? false : undefined));
        this.steps.push(`${where} (consent form: allow, write unticked)`);
        url = new URL(consent.action || url.href, url);
        res = await this.request(url, { method: consent.method === 'post' ? 'POST' : 'GET', body: data, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
        continue;
      }
      fail(`${where}: neither a sign-in nor a consent form; the page says: ${textOf(html).slice(0, 600)}`);
    }
    fail(`no redirect to ${redirectUri} after 12 steps: ${this.steps.join('; ')}`);
  }
}

// ---------------------------------------------------------------------------------------------
// The app: the SDK's OAuthClientProvider, in memory, as its docs write one
// ---------------------------------------------------------------------------------------------

class InMemoryOAuthClientProvider {
  constructor(onRedirect, clientMetadataUrl) {
    this.onRedirect = onRedirect;
    // Read by the SDK's auth(): with the server's client_id_metadata_document_supported, this
    // URL is the client_id and nothing is registered. (The SDK falls back to registering
    // silently otherwise: the summary's `registered` tells.)
    if (clientMetadataUrl) this.clientMetadataUrl = clientMetadataUrl;
    this.creds = new Map();
    this.storedTokens = undefined;
    this.verifier = undefined;
    this.discovery = undefined;
    this.lastState = undefined;
  }
  get redirectUrl() {
    return REDIRECT_URI;
  }
  get clientMetadata() {
    return {
      client_name: CLIENT_NAME,
      redirect_uris: [REDIRECT_URI],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }
  state() {
    this.lastState = randomUUID();
    return this.lastState;
  }
  clientInformation(ctx) {
    return this.creds.get(ctx?.issuer ?? '');
  }
  saveClientInformation(info, ctx) {
    this.creds.set(ctx?.issuer ?? '', info);
  }
  tokens() {
    return this.storedTokens;
  }
  saveTokens(tokens) {
    this.storedTokens = tokens;
  }
  saveCodeVerifier(verifier) {
    this.verifier = verifier;
  }
  codeVerifier() {
    if (!this.verifier) throw new Error('no code verifier saved');
    return this.verifier;
  }
  saveDiscoveryState(state) {
    this.discovery = state;
  }
  discoveryState() {
    return this.discovery;
  }
  invalidateCredentials(scope) {
    if (scope === 'all' || scope === 'client') this.creds.clear();
    if (scope === 'all' || scope === 'tokens') this.storedTokens = undefined;
    if (scope === 'all' || scope === 'verifier') this.verifier = undefined;
    if (scope === 'all' || scope === 'discovery') this.discovery = undefined;
  }
  redirectToAuthorization(url) {
    this.onRedirect(new URL(url));
  }
}

const text = (result) =>
  (result.content ?? [])
    .filter((c) => c.type === 'text')
    .map((c) => c.text)
    .join('\n');

/** Rows from a read tool's result (structured content when present, else the JSON text). */
function rows(result) {
  const sc = result.structuredContent;
  if (Array.isArray(sc?.rows)) return sc.rows;
  let parsed;
  try {
    parsed = JSON.parse(text(result));
  } catch {
    fail(`search_vendors answered text that is not JSON: ${text(result).slice(0, 300)}`);
  }
  return Array.isArray(parsed) ? parsed : parsed?.rows;
}

async function main() {
  const [url, email, password] = [
    process.argv[2] ?? process.env.MCP_URL,
    process.argv[3] ?? process.env.WARDEN_EMAIL,
    process.argv[4] ?? process.env.WARDEN_PASSWORD,
  ];
  check(url && email && password, 'usage: ts_oauth_client.mjs MCP_URL EMAIL PASSWORD (or MCP_URL, WARDEN_EMAIL, WARDEN_PASSWORD)');
  check(LINE, `SDK_LINE must be v1 or v2, not '${SDK_LINE}'`);
  check(!(VERSION_NEGOTIATION && SDK_LINE === 'v1'), 'VERSION_NEGOTIATION is a v2 option; v1 speaks only 2025-11-25');
  let sdk;
  try {
    sdk = LINE.load();
  } catch (e) {
    fail(`cannot load ${SDK} (set NODE_PATH to the test tools' node_modules): ${e.message}`);
  }
  const { Client, StreamableHTTPClientTransport, UnauthorizedError, version } = sdk;
  const mcpUrl = new URL(url);

  // The app's side of the redirect: redirectToAuthorization hands the URL to the (headless)
  // person, and the app waits for the callback the way it would wait on its redirect listener.
  const person = new HeadlessPerson(email, password);
  const authorizations = [];
  const provider = new InMemoryOAuthClientProvider((authUrl) => {
    const callback = person.authorize(authUrl, REDIRECT_URI);
    callback.catch(() => {}); // awaited below; keep an early failure from going unhandled
    authorizations.push({ url: authUrl, callback });
  }, CIMD_URL);

  // Only records which requests went out (paths and statuses) for the summary and the messages.
  const wire = [];
  const recordingFetch = async (input, init) => {
    const res = await fetch(input, init);
    const u = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
    wire.push(`${init?.method ?? 'GET'} ${u.pathname} ${res.status}`);
    return res;
  };
  const newTransport = () => new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider, fetch: recordingFetch });
  const client = new Client(
    { name: CLIENT_NAME, version: '1.0.0' },
    VERSION_NEGOTIATION ? { versionNegotiation: { mode: VERSION_NEGOTIATION } } : undefined,
  );

  // 1. Connect: the 401 sends the SDK through discovery, registration and redirectToAuthorization.
  let transport = newTransport();
  const err = await client.connect(transport).then(() => null, (e) => e);
  check(err instanceof UnauthorizedError, `connect should have asked for authorization (UnauthorizedError), got: ${err?.stack ?? err}; wire: ${wire.join(', ')}`);
  check(authorizations.length === 1, `the SDK opened ${authorizations.length} authorizations, expected 1; wire: ${wire.join(', ')}`);
  const auth = authorizations[0];
  check(auth.url.origin === mcpUrl.origin && auth.url.pathname === '/authorize', `unexpected authorization URL ${auth.url}`);

  // 2. The person signs in and allows; the app receives the callback.
  let callback;
  try {
    callback = await auth.callback;
  } catch (e) {
    fail(`the headless sign-in and consent failed: ${e.message}; steps: ${person.steps.join('; ')}`);
  }
  const params = callback.searchParams;
  check(!params.get('error'), `the authorization failed: ${params}`);
  for (const name of ['code', 'state', 'iss']) check(params.get(name), `the redirect to the app carries no ${name}: ${callback.href}`);
  check(params.get('state') === provider.lastState, `state mismatch: sent ${provider.lastState}, got ${params.get('state')}`);

  // 3. finishAuth with the callback (v2: its query, and checks iss per RFC 9207; v1: the code).
  await LINE.finishAuth(transport, params);
  const tokens = provider.tokens();
  check(tokens?.access_token, 'finishAuth saved no tokens');

  // 4. Reconnect on a fresh transport (a started transport cannot be restarted), then work.
  transport = newTransport();
  await client.connect(transport);
  const tools = (await client.listTools()).tools.map((t) => t.name);
  check(tools.includes('search_vendors'), `search_vendors is not among the tools: ${tools.join(', ')}`);
  for (let i = 1; i <= CALLS; i++) {
    const result = await client.callTool({ name: 'search_vendors', arguments: { limit: 2 } });
    check(!result.isError, `call ${i}: search_vendors answered an error: ${text(result)}`);
    const found = rows(result);
    check(Array.isArray(found) && found.length === 2, `call ${i}: expected 2 rows, got ${JSON.stringify(found)?.slice(0, 300)}`);
  }
  check(authorizations.length === 1, `the SDK asked for authorization again during the calls (${authorizations.length} in all)`);
  const protocolVersion = LINE.protocolVersion(client, transport) ?? null;
  await client.close();

  const summary = {
    calls: CALLS,
    scope: tokens.scope ?? null,
    sdk: SDK,
    version,
    tools: tools.length,
    iss: params.get('iss'),
    authorizations: authorizations.length,
    requested_scope: auth.url.searchParams.get('scope'),
    pages: person.steps,
    token_type: tokens.token_type,
    refresh_token: Boolean(tokens.refresh_token),
    mcp_posts: wire.filter((w) => w.startsWith(`POST ${mcpUrl.pathname} `)).length,
    client_id: [...provider.creds.values()][0]?.client_id ?? null,
    authorize_client_id: auth.url.searchParams.get('client_id'),
    registered: wire.some((w) => w.startsWith('POST /register ')),
    protocol_version: protocolVersion,
  };
  process.stdout.write(`${JSON.stringify(summary)}\n`);
}

const timer = setTimeout(() => {
  process.stderr.write(`ts_oauth_client: FAILED: no result after ${TIMEOUT_MS / 1000}s\n`);
  process.exit(1);
}, TIMEOUT_MS);
timer.unref();

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`ts_oauth_client: FAILED: ${e?.name === 'ts_oauth_client' ? e.message : e?.stack ?? e}\n`);
    process.exit(1);
  },
);
