// Scope step-up with the official TypeScript MCP SDKs, unmodified: `@modelcontextprotocol/sdk`
// 1.32.2 (the v1 line) and `@modelcontextprotocol/client` 2.4.0 (the v2 line), each driven by
// a small OAuth client app written the way the SDK's own docs and examples write one: an
// OAuthClientProvider that keeps client information, tokens, PKCE verifier and discovery state
// in memory and whose redirectToAuthorization opens the URL in a browser; a loopback redirect
// server that receives the code; transport.finishAuth() and a reconnect or a retried call.
//
// A person, played by the test in headless Chromium (playwright-core), signs in on Warden's
// pages and answers the consent pages. For each SDK line:
//   1. connect to `warden serve` (fresh `warden init` project, port 0): the 401 makes the SDK
//      register and send the person to /authorize; the consent page offers read only and the
//      person allows it, so the token's scope is mcp:read;
//   2. a read tool works;
//   3. a write tool (update_finding_status) is answered 403 with
//      `WWW-Authenticate: Bearer error="insufficient_scope", scope="mcp:read mcp:write"`; the
//      SDK re-authorizes and the person sees a consent page that says plainly that the app now
//      asks to change data, with the write checkbox in view; the person ticks it and allows;
//   4. the retried write returns Warden's preview (nothing changed yet) and a confirmation
//      token; the confirmed call changes the row, which a read tool then shows.
// A second test per line declines write on the second consent: reads keep working and the
// write is still refused (403 insufficient_scope), the row untouched.
//
//   WARDEN_BIN=/path/to/warden CHROMIUM=/usr/bin/chromium NODE_PATH=/path/to/node_modules \
//     node --test tests/browser/stepup.test.mjs
//
// tests/run browser sets all three and runs this with the pinned Node 22. The SDKs come from
// the pinned tools (tests/tools/package.json) through NODE_PATH, loaded with require() (both
// ship CommonJS builds beside their ES modules).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { CHROMIUM_ARGS, redirectTarget, serve } from './harness.mjs';

const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');

const WARDEN = process.env.WARDEN_BIN;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const EMAIL = 'ana@acme.example';
const PASSWORD = 'correct horse battery staple';
const STEP_UP_CHALLENGE = /^Bearer .*error="insufficient_scope".*scope="mcp:read mcp:write"/;

/** The version in the package.json above a resolved module file (the SDKs do not export it). */
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
    if (up === dir) throw new Error(`no package.json for ${name} above ${moduleId}`);
    dir = up;
  }
}

// The two SDK lines, each as its docs show: v1's example passes the code to finishAuth(code)
// and reconnects on a new transport; v2's guide passes the callback's whole query
// (finishAuth(params), which also checks RFC 9207 `iss`) and reconnects on a new transport.
const SDKS = [
  {
    line: 'v1',
    pkg: '@modelcontextprotocol/sdk',
    version: '1.32.2',
    load() {
      const { Client } = require('@modelcontextprotocol/sdk/client/index.js');
      const { StreamableHTTPClientTransport } = require('@modelcontextprotocol/sdk/client/streamableHttp.js');
      const { UnauthorizedError } = require('@modelcontextprotocol/sdk/client/auth.js');
      const version = installedVersion('@modelcontextprotocol/sdk/client/index.js', this.pkg);
      return { Client, StreamableHTTPClientTransport, UnauthorizedError, version };
    },
    finishAuth: (transport, params) => transport.finishAuth(params.get('code')),
  },
  {
    line: 'v2',
    pkg: '@modelcontextprotocol/client',
    version: '2.4.0',
    load() {
      const { Client, StreamableHTTPClientTransport, UnauthorizedError } = require('@modelcontextprotocol/client');
      const version = installedVersion('@modelcontextprotocol/client', this.pkg);
      return { Client, StreamableHTTPClientTransport, UnauthorizedError, version };
    },
    finishAuth: (transport, params) => transport.finishAuth(params),
  },
];

function warden(args, input) {
  return execFileSync(WARDEN, args, {
    input,
    encoding: 'utf8',
    env: { ...process.env, WARDEN_LOG: 'warn' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

let dir, server, mcpUrl, base, target, redirectUri, browser;

before(async () => {
  assert.ok(WARDEN, 'set WARDEN_BIN to the warden binary');
  dir = mkdtempSync(join(tmpdir(), 'warden-stepup-'));
  const project = join(dir, 'p', 'warden.yaml');
  warden(['init', join(dir, 'p')]);
  warden(['org', 'create', 'acme', '-p', project]);
  warden(['user', 'add', EMAIL, '--org', 'acme', '--role', 'admin', '--password-stdin', '-p', project], PASSWORD);
  server = await serve(WARDEN, project);
  mcpUrl = new URL(server.url);
  base = mcpUrl.origin;
  target = await redirectTarget();
  redirectUri = `http://127.0.0.1:${target.port}/callback`;
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
});

after(async () => {
  await browser?.close();
  target?.server.close();
  if (server && server.proc.exitCode === null) {
    const exited = new Promise((r) => server.proc.once('exit', r));
    server.proc.kill('SIGTERM');
    await exited;
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/**
 * The app's OAuthClientProvider, as the SDKs' docs and examples write one: everything in
 * memory, client information keyed by the authorization server's issuer when the SDK passes it
 * (v2; v1 passes no context), a fresh `state` per authorization for the callback to compare,
 * discovery state kept across the redirect, invalidateCredentials for the SDK to drop what the
 * server refused, and redirectToAuthorization handing the URL to the browser.
 */
class MemoryOAuthProvider {
  constructor(clientName, onRedirect) {
    this.creds = new Map();
    this.onRedirect = onRedirect;
    this.clientName = clientName;
    this.storedTokens = undefined;
    this.verifier = undefined;
    this.discovery = undefined;
    this.lastState = undefined;
    this.invalidated = [];
  }
  get redirectUrl() {
    return redirectUri;
  }
  get clientMetadata() {
    return {
      client_name: this.clientName,
      redirect_uris: [redirectUri],
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
    this.invalidated.push(scope);
    if (scope === 'all' || scope === 'client') this.creds.clear();
    if (scope === 'all' || scope === 'tokens') this.storedTokens = undefined;
    if (scope === 'all' || scope === 'verifier') this.verifier = undefined;
    if (scope === 'all' || scope === 'discovery') this.discovery = undefined;
  }
  redirectToAuthorization(url) {
    this.onRedirect(url);
  }
}

/**
 * One SDK line's app and the person using it: the app's provider, client and transport (whose
 * fetch only records what went over the wire, for the assertions), and a browser context for
 * the person, where redirectToAuthorization opens each authorization URL in a new page.
 */
async function startApp(sdk, clientName) {
  const context = await browser.newContext({ viewport: { width: 900, height: 900 } });
  context.setDefaultTimeout(15_000);
  const opened = []; // one entry per redirectToAuthorization: { url, page: Promise<Page> }
  const provider = new MemoryOAuthProvider(clientName, (url) => {
    const entry = { url: new URL(url) };
    entry.page = (async () => {
      const page = await context.newPage();
      const res = await page.goto(String(url));
      assert.equal(res.status(), 200, `the authorization page answered ${res.status()}`);
      return page;
    })();
    entry.page.catch(() => {}); // awaited by the test; keep an early failure from going unhandled
    opened.push(entry);
  });
  const wire = [];
  const recordingFetch = async (input, init) => {
    const res = await fetch(input, init);
    const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
    const entry = {
      method: init?.method ?? 'GET',
      path: url.pathname,
      status: res.status,
      wwwAuthenticate: res.headers.get('www-authenticate'),
    };
    if (url.pathname === '/token') {
      const body = new URLSearchParams(typeof init?.body === 'string' ? init.body : String(init?.body ?? ''));
      entry.grantType = body.get('grant_type');
      if (!res.ok) entry.error = await res.clone().text();
    }
    wire.push(entry);
    return res;
  };
  const newTransport = () => new sdk.api.StreamableHTTPClientTransport(mcpUrl, { authProvider: provider, fetch: recordingFetch });
  const client = new sdk.api.Client({ name: clientName, version: '1.0.0' });
  return { context, provider, opened, wire, client, newTransport, transport: newTransport() };
}

/** The person at the browser: signs in if Warden asks, then lands on the consent page. */
async function signInIfAsked(page) {
  const signIn = page.getByRole('heading', { name: 'Sign in to Warden' });
  // The consent page is the one with Allow and Deny (its heading differs on a step-up).
  const consent = page.getByRole('button', { name: 'Allow', exact: true });
  await signIn.or(consent).first().waitFor();
  if (await signIn.isVisible()) {
    await page.getByLabel('Email', { exact: true }).fill(EMAIL);
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  }
  await consent.waitFor();
}

/** Whether the element's box lies inside the page's viewport (the person sees it unscrolled). */
async function inViewport(page, locator) {
  const box = await locator.boundingBox();
  const vp = page.viewportSize();
  return !!box && box.y >= 0 && box.x >= 0 && box.y + box.height <= vp.height && box.x + box.width <= vp.width;
}

/** Visible texts on the page that mention changing data, outside the write checkbox's label:
 *  the smallest elements whose text matches, so a wrapper is not counted for its children. */
function changeDataStatements(page) {
  return page.evaluate(() => {
    const label = document.querySelector('input[name=write]')?.closest('label');
    const matches = (el) => /change data/i.test(el.innerText ?? '');
    return [...document.querySelectorAll('main *')]
      .filter((el) => matches(el) && ![...el.children].some(matches))
      .filter((el) => !(label && label.contains(el)) && el.checkVisibility())
      .map((el) => el.innerText);
  });
}

/** Clicks Allow; returns the query the app's redirect target received for this state. */
async function allow(page, state) {
  await Promise.all([
    page.waitForURL((u) => u.href.startsWith(redirectUri)),
    page.getByRole('button', { name: 'Allow', exact: true }).click(),
  ]);
  const got = target.requests.filter((u) => u.searchParams.get('state') === state);
  assert.equal(got.length, 1, `the app received ${got.length} redirects for this authorization`);
  return got[0].searchParams;
}

/** The app's callback handling, per the SDK docs: compare state, then finishAuth. */
async function finish(sdk, app, transport, params) {
  assert.equal(params.get('error'), null, `the authorization failed: ${params}`);
  assert.equal(params.get('state'), app.provider.lastState, 'state mismatch');
  await sdk.finishAuth(transport, params);
}

/** The first authorization, from the 401 on connect: read only, as offered by default. */
async function connectReadOnly(sdk, app) {
  const err = await app.client.connect(app.transport).then(
    () => null,
    (e) => e,
  );
  assert.ok(err instanceof sdk.api.UnauthorizedError, `connect should have asked for authorization, got: ${err}`);
  assert.equal(app.opened.length, 1, 'the SDK did not send the person to the authorization page');
  const first = app.opened[0];
  assert.equal(first.url.origin + first.url.pathname, `${base}/authorize`);
  // The 401's challenge names mcp:read, so that is all the SDK asks for.
  assert.equal(first.url.searchParams.get('scope'), 'mcp:read');
  const page = await first.page;
  await signInIfAsked(page);

  // Read only by default: no write box ticked (the 401 asked for mcp:read).
  const main = await page.locator('main').innerText();
  assert.match(main, /read data through those tools/);
  assert.equal(await page.locator('input[name=write]:checked').count(), 0, 'write must not be ticked by default');
  const params = await allow(page, app.provider.lastState);
  await page.close();
  await finish(sdk, app, app.transport, params);
  assert.equal(app.provider.tokens()?.scope, 'mcp:read', 'the first token should carry mcp:read only');

  // Reconnect on a fresh transport: a started transport cannot be restarted.
  app.transport = app.newTransport();
  await app.client.connect(app.transport);
}

const text = (result) =>
  (result.content ?? [])
    .filter((c) => c.type === 'text')
    .map((c) => c.text)
    .join('\n');

/** Rows from a read tool's result (structured content when present, else the JSON text). */
function rows(result) {
  assert.ok(!result.isError, `the read tool failed: ${text(result)}`);
  const sc = result.structuredContent;
  if (Array.isArray(sc?.rows)) return sc.rows;
  if (Array.isArray(sc)) return sc;
  const parsed = JSON.parse(text(result));
  return Array.isArray(parsed) ? parsed : parsed.rows;
}

async function findings(client, status) {
  return rows(await client.callTool({ name: 'list_findings', arguments: { status, limit: 200 } }));
}

/** An open finding nobody else in this file has touched. */
const claimed = new Set();
async function claimOpenFinding(client) {
  const open = await findings(client, 'open');
  const f = open.find((row) => !claimed.has(row.id));
  assert.ok(f, `no unclaimed open finding among ${open.length}`);
  claimed.add(f.id);
  return f;
}

/** The write attempt that the server answers 403: the SDK re-authorizes and the call fails. */
async function writeNeedsStepUp(sdk, app, args) {
  const before = app.wire.length;
  const opensBefore = app.opened.length;
  const err = await app.client.callTool({ name: 'update_finding_status', arguments: args }).then(
    (r) => new Error(`the write was not challenged; it returned: ${JSON.stringify(r)}`),
    (e) => e,
  );
  const challenged = app.wire
    .slice(before)
    .find((w) => w.method === 'POST' && w.path === mcpUrl.pathname && w.status === 403);
  assert.ok(challenged, `no 403 from /mcp for the write; wire: ${JSON.stringify(app.wire.slice(before))}`);
  assert.match(challenged.wwwAuthenticate ?? '', STEP_UP_CHALLENGE);
  // A refresh cannot widen a grant: the first one tried right after the challenge (v1 tries one
  // before it re-authorizes) is refused with invalid_grant, so the SDK starts a new authorization.
  const refresh = app.wire.slice(before).find((w) => w.path === '/token' && w.grantType === 'refresh_token');
  if (refresh) {
    assert.equal(refresh.status, 400, `the refresh after the step-up challenge was answered ${refresh.status}`);
    assert.equal(JSON.parse(refresh.error).error, 'invalid_grant', refresh.error);
  }
  return { err, wire: app.wire.slice(before), opened: app.opened.slice(opensBefore) };
}

for (const sdk of SDKS) {
  describe(`${sdk.pkg} ${sdk.version} (${sdk.line}): scope step-up to a confirmed write`, () => {
    before(() => {
      sdk.api = sdk.load();
      assert.equal(sdk.api.version, sdk.version, `the pinned ${sdk.pkg} is not the one installed`);
    });

    test('read-only consent, then a write: step-up consent, preview, confirmation, row changed', async (t) => {
      const app = await startApp(sdk, `Step-up ${sdk.line}`);
      try {
        // 1. Connect: 401, registration, the person allows read only.
        await connectReadOnly(sdk, app);

        // 2. Reads work.
        const vendors = rows(await app.client.callTool({ name: 'search_vendors', arguments: { tier: 'critical' } }));
        assert.ok(vendors.length > 0, 'search_vendors found no critical vendor');
        assert.ok(vendors.every((v) => v.tier === 'critical'), JSON.stringify(vendors));
        const finding = await claimOpenFinding(app.client);
        const args = { finding_id: finding.id, status: 'remediated', note: `Fixed; confirmed through the ${sdk.line} SDK` };

        // 3. The write: 403 insufficient_scope, the SDK re-authorizes, the person is asked.
        const step = await writeNeedsStepUp(sdk, app, args);
        t.diagnostic(`wire after the 403: ${JSON.stringify(step.wire.map(({ method, path, status, grantType, error }) => ({ method, path, status, grantType, error })))}`);
        assert.ok(
          step.err instanceof sdk.api.UnauthorizedError,
          `after the 403 the SDK should send the person to authorize and throw UnauthorizedError; got: ${step.err?.stack ?? step.err}`,
        );
        assert.equal(step.opened.length, 1, 'the SDK did not open a new authorization');
        const askWrite = step.opened[0].url;
        assert.deepEqual(askWrite.searchParams.get('scope')?.split(' ').sort(), ['mcp:read', 'mcp:write']);
        const page = await step.opened[0].page;
        await signInIfAsked(page);
        await page.screenshot({ path: `/tmp/warden-stepup-consent-${sdk.line}.png`, fullPage: true });

        // The page says plainly that the app now asks to change data, in a statement of its own
        // (the checkbox's label alone is the same on any consent that offers write); the box is
        // in view.
        const statements = await changeDataStatements(page);
        assert.ok(
          statements.length > 0,
          `no visible statement outside the checkbox label that the app asks to change data; the page reads:\n${await page.locator('main').innerText()}`,
        );
        const write = page.locator('input[name=write]');
        assert.equal(await write.count(), 1, 'the write checkbox is missing');
        assert.equal(await write.isVisible(), true, 'the write checkbox is not visible');
        assert.equal(await inViewport(page, write), true, 'the write checkbox is not in view without scrolling');
        assert.equal(await write.isEnabled(), true, 'the person could not decline (or accept) write');
        await write.check();
        const params = await allow(page, app.provider.lastState);
        await page.close();
        await finish(sdk, app, app.transport, params);
        assert.equal(app.provider.tokens()?.scope, 'mcp:read mcp:write');

        // 4. The retried write: a preview and a confirmation token, nothing changed yet.
        const preview = await app.client.callTool({ name: 'update_finding_status', arguments: args });
        assert.equal(preview.isError, true, `expected a preview, got: ${JSON.stringify(preview)}`);
        assert.match(text(preview), /^Confirmation required/);
        const token = /"?confirmation_token"?\s*:\s*"(wdn_cf_[^"]+)"/.exec(text(preview))?.[1];
        assert.ok(token, `no confirmation token in: ${text(preview)}`);
        assert.ok(
          (await findings(app.client, 'open')).some((f) => f.id === finding.id),
          'the preview changed the finding',
        );

        const done = await app.client.callTool({
          name: 'update_finding_status',
          arguments: { ...args, confirm: true, confirmation_token: token },
        });
        assert.ok(!done.isError, `the confirmed write failed: ${text(done)}`);
        assert.match(text(done), /remediated/);
        const after = (await findings(app.client, 'remediated')).find((f) => f.id === finding.id);
        assert.ok(after, `finding ${finding.id} is not remediated after the confirmed write`);
        assert.ok(!(await findings(app.client, 'open')).some((f) => f.id === finding.id), 'the finding is still open');
      } finally {
        await app.client.close().catch(() => {});
        await app.context.close();
      }
    });

    test('declining write on the step-up consent keeps reads working; the write stays refused', async (t) => {
      const app = await startApp(sdk, `Step-up decline ${sdk.line}`);
      try {
        await connectReadOnly(sdk, app);
        const finding = await claimOpenFinding(app.client);
        const args = { finding_id: finding.id, status: 'risk_accepted', note: 'Declined on the consent page' };

        const step = await writeNeedsStepUp(sdk, app, args);
        t.diagnostic(`wire after the 403: ${JSON.stringify(step.wire.map(({ method, path, status, grantType, error }) => ({ method, path, status, grantType, error })))}`);
        assert.ok(
          step.err instanceof sdk.api.UnauthorizedError,
          `after the 403 the SDK should send the person to authorize and throw UnauthorizedError; got: ${step.err?.stack ?? step.err}`,
        );
        assert.equal(step.opened.length, 1, 'the SDK did not open a new authorization');
        const page = await step.opened[0].page;
        await signInIfAsked(page);
        const write = page.locator('input[name=write]');
        assert.equal(await write.isVisible(), true, 'the write checkbox is not visible');
        // The person declines write: the box left (or made) unticked, and Allow for reading.
        await write.uncheck();
        assert.equal(await write.isChecked(), false);
        const params = await allow(page, app.provider.lastState);
        await page.close();
        await finish(sdk, app, app.transport, params);
        assert.equal(app.provider.tokens()?.scope, 'mcp:read', 'declining write must leave mcp:read only');

        // The write is refused again with the same challenge, and changes nothing.
        const again = await writeNeedsStepUp(sdk, app, args);
        assert.ok(again.err instanceof Error, `the write should fail without mcp:write; got ${again.err}`);
        // Reads keep working on the read-only token.
        const open = await findings(app.client, 'open');
        assert.ok(open.some((f) => f.id === finding.id), 'the declined write changed the finding');
      } finally {
        await app.client.close().catch(() => {});
        await app.context.close();
      }
    });
  });
}
