// Warden's server-rendered OAuth pages (sign-in and consent) in a real browser: Debian's
// Chromium, headless, driven by playwright-core. A fresh project and `warden serve` on port 0;
// a small local HTTP server plays the OAuth client's redirect target, so the final redirect
// lands somewhere real and the test reads code, state and iss from the request it receives.
//
//   WARDEN_BIN=/path/to/warden CHROMIUM=/usr/bin/chromium NODE_PATH=/path/to/node_modules \
//     node --test tests/browser/*.test.mjs
//
// tests/run browser sets all three and runs this with the pinned Node 22.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { CHROMIUM_ARGS, redirectTarget, serve } from './harness.mjs';

// playwright-core comes from the pinned test tools outside the checkout; tests/run puts their
// node_modules on NODE_PATH, which require() honours and ESM imports do not.

const { chromium } = createRequire(import.meta.url)('playwright-core');

const WARDEN = process.env.WARDEN_BIN;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const EMAIL = 'ana@acme.example';
const PASSWORD = 'correct horse battery staple';
const CLIENT_NAME = 'Browser Test';
function warden(args, input) {
  return execFileSync(WARDEN, args, {
    input,
    encoding: 'utf8',
    env: { ...process.env, WARDEN_LOG: 'warn' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

const b64url = (buf) => buf.toString('base64url');

let dir, server, base, target, redirectUri, clientId, browser;

before(async () => {
  assert.ok(WARDEN, 'set WARDEN_BIN to the warden binary');
  dir = mkdtempSync(join(tmpdir(), 'warden-browser-'));
  const project = join(dir, 'p', 'warden.yaml');
  warden(['init', join(dir, 'p')]);
  warden(['org', 'create', 'acme', '-p', project]);
  warden(['user', 'add', EMAIL, '--org', 'acme', '--role', 'admin', '--password-stdin', '-p', project], PASSWORD);

  server = await serve(WARDEN, project);
  base = new URL(server.url).origin;
  target = await redirectTarget();
  redirectUri = `http://127.0.0.1:${target.port}/callback`;

  const reg = await fetch(`${base}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      redirect_uris: [redirectUri],
      client_name: CLIENT_NAME,
      token_endpoint_auth_method: 'none',
    }),
  });
  const client = await reg.json();
  assert.equal(reg.status, 201, JSON.stringify(client));
  clientId = client.client_id;

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

/** A fresh /authorize request: its URL, state and PKCE verifier. */
function authorizeRequest() {
  const state = b64url(randomBytes(16));
  const verifier = b64url(randomBytes(32));
  const challenge = b64url(createHash('sha256').update(verifier).digest());
  const q = new URLSearchParams({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: redirectUri,
    state,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    scope: 'mcp:read mcp:write',
  });
  return { url: `${base}/authorize?${q}`, state, verifier };
}

/** A new browser context (no cookies) with one page. */
async function freshPage() {
  const context = await browser.newContext({ viewport: { width: 900, height: 900 } });
  context.setDefaultTimeout(15_000);
  const page = await context.newPage();
  return { context, page };
}

async function signIn(page, password = PASSWORD) {
  await page.getByLabel('Email', { exact: true }).fill(EMAIL);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
}

/** Clicks a consent button, waits until the browser lands on the redirect target, and returns
 *  the request the target received for this authorization (by its state). */
async function decide(page, button, state) {
  await Promise.all([
    page.waitForURL((u) => u.href.startsWith(redirectUri)),
    page.getByRole('button', { name: button, exact: true }).click(),
  ]);
  const got = target.requests.filter((u) => u.searchParams.get('state') === state);
  assert.equal(got.length, 1, `the client received ${got.length} redirects for this state`);
  return got[0];
}

async function exchange(code, verifier) {
  const res = await fetch(`${base}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code,
      code_verifier: verifier,
      redirect_uri: redirectUri,
      client_id: clientId,
    }),
  });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  return body;
}

/** Signs in and lands on the consent page; checks the sign-in page on the way. */
async function toConsent(page, req, { screenshot } = {}) {
  const res = await page.goto(req.url);
  assert.equal(res.status(), 200);
  await assert.doesNotReject(
    page.getByRole('heading', { name: 'Sign in to Warden' }).waitFor(),
    'the sign-in page did not appear',
  );
  assert.match(await page.locator('main').innerText(), new RegExp(`${CLIENT_NAME} is asking to connect`));
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
  await signIn(page);
  // The consent page is the one with Allow (after this client's first, read-only grant, later
  // authorizations asking for write get the step-up wording: "... now asks to change data").
  await page.getByRole('button', { name: 'Allow', exact: true }).waitFor();
  return res;
}

describe('OAuth sign-in and consent pages in Chromium', () => {
  test('sign in, allow read only: the client gets a code, the token has mcp:read only', async () => {
    const req = authorizeRequest();
    const { context, page } = await freshPage();
    try {
      await toConsent(page, req, { screenshot: '/tmp/warden-login.png' });

      assert.match(await page.getByRole('heading', { level: 1 }).innerText(), /Allow Browser Test to use Warden\?/);
      assert.match(await page.locator('main').innerText(), new RegExp(`signed in as ${EMAIL}`));
      assert.equal(await page.locator('code', { hasText: redirectUri }).innerText(), redirectUri);
      const write = page.getByRole('checkbox', { name: /change data/ });
      assert.equal(await write.count(), 1, 'the write checkbox is missing');
      assert.equal(await write.isChecked(), false, 'write must not be ticked by default');
      assert.equal(await page.getByRole('button', { name: 'Allow', exact: true }).count(), 1);
      assert.equal(await page.getByRole('button', { name: 'Deny', exact: true }).count(), 1);
      await page.screenshot({ path: '/tmp/warden-consent.png', fullPage: true });

      const got = await decide(page, 'Allow', req.state);
      assert.equal(got.pathname, '/callback');
      assert.equal(got.searchParams.get('state'), req.state);
      assert.equal(got.searchParams.get('iss'), base);
      assert.equal(got.searchParams.get('error'), null);
      const code = got.searchParams.get('code');
      assert.ok(code, `no code in ${got}`);

      const tokens = await exchange(code, req.verifier);
      assert.equal(tokens.scope, 'mcp:read');
      assert.equal(tokens.token_type, 'Bearer');
    } finally {
      await context.close();
    }
  });

  test('ticking "change data" grants mcp:read mcp:write', async () => {
    const req = authorizeRequest();
    const { context, page } = await freshPage();
    try {
      await toConsent(page, req);
      const write = page.getByRole('checkbox', { name: /change data/ });
      await write.check();
      assert.equal(await write.isChecked(), true);
      const got = await decide(page, 'Allow', req.state);
      assert.equal(got.searchParams.get('state'), req.state);
      assert.equal(got.searchParams.get('iss'), base);
      const tokens = await exchange(got.searchParams.get('code'), req.verifier);
      assert.equal(tokens.scope, 'mcp:read mcp:write');
    } finally {
      await context.close();
    }
  });

  test('Deny sends the client access_denied and no code', async () => {
    const req = authorizeRequest();
    const { context, page } = await freshPage();
    try {
      await toConsent(page, req);
      const got = await decide(page, 'Deny', req.state);
      assert.equal(got.searchParams.get('error'), 'access_denied');
      assert.equal(got.searchParams.get('state'), req.state);
      assert.equal(got.searchParams.get('code'), null);
    } finally {
      await context.close();
    }
  });

  test('a wrong password shows the error on the page and nothing reaches the client', async () => {
    const req = authorizeRequest();
    const before = target.requests.length;
    const { context, page } = await freshPage();
    try {
      await page.goto(req.url);
      const [res] = await Promise.all([
        page.waitForResponse((r) => r.url() === `${base}/login` && r.request().method() === 'POST'),
        signIn(page, 'not the password'),
      ]);
      assert.equal(res.status(), 401);
      const alert = page.getByRole('alert');
      await alert.waitFor();
      assert.match(await alert.innerText(), /The email or password is not right\./);
      // Still on Warden's sign-in page, the email kept, no session, no redirect.
      assert.ok(page.url().startsWith(`${base}/login`), page.url());
      await page.getByRole('heading', { name: 'Sign in to Warden' }).waitFor();
      assert.equal(await page.getByLabel('Email', { exact: true }).inputValue(), EMAIL);
      assert.equal(await page.getByLabel('Password', { exact: true }).inputValue(), '');
      const cookies = await context.cookies(base);
      assert.equal(cookies.find((c) => c.name === 'warden_session'), undefined);
      assert.equal(target.requests.length, before, 'the client received a redirect');
    } finally {
      await context.close();
    }
  });

  test('the pages cannot be framed and the session cookie is HttpOnly, SameSite=Lax', async () => {
    const req = authorizeRequest();
    const { context, page } = await freshPage();
    try {
      const res = await toConsent(page, req);
      const h = await res.allHeaders();
      assert.equal(h['x-frame-options'], 'DENY');
      assert.match(h['content-security-policy'] ?? '', /frame-ancestors 'none'/);

      const cookies = await context.cookies(base);
      const session = cookies.find((c) => c.name === 'warden_session');
      assert.ok(session, `no session cookie among ${cookies.map((c) => c.name)}`);
      assert.equal(session.httpOnly, true);
      assert.equal(session.sameSite, 'Lax');
      assert.equal(session.path, '/');
      const csrf = cookies.find((c) => c.name === 'warden_csrf');
      assert.ok(csrf, 'no CSRF cookie');
      assert.equal(csrf.httpOnly, true);
      assert.equal(csrf.sameSite, 'Lax');

      // And Chromium really refuses to show the page inside another site's frame.
      const framer = await context.newPage();
      await framer.goto(`http://127.0.0.1:${target.port}/frame?src=${encodeURIComponent(req.url)}`);
      await framer.waitForFunction(() => window.frameLoaded === true);
      const child = framer.frames().find((f) => f !== framer.mainFrame());
      assert.ok(child, 'no iframe');
      assert.ok(!child.url().startsWith(base), `the frame shows ${child.url()}`);
      assert.equal(await child.locator('form').count(), 0, 'a Warden form rendered inside a frame');
    } finally {
      await context.close();
    }
  });

  // The router's security_headers layer must not replace a page's own, fuller policy.
  test('the sign-in page keeps its own CSP (default-src, form-action)', async () => {
    const res = await fetch(authorizeRequest().url);
    const csp = res.headers.get('content-security-policy') ?? '';
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /form-action 'self'/);
    assert.match(csp, /frame-ancestors 'none'/);
  });
});
