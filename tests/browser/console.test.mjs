// The web console in a real browser: Debian's Chromium, headless, driven by playwright-core.
// A fresh `warden init` project served on port 0, with an Admin (ana) and a Member (mo).
// Each page and action is used as a person would, and each effect is then checked outside
// the browser: at /mcp with the credential concerned, and in `warden log` (source console).
//
//   WARDEN_BIN=/path/to/warden CHROMIUM=/usr/bin/chromium NODE_PATH=/path/to/node_modules \
//     node --test tests/browser/console.test.mjs
//
// With WARDEN_SCREENSHOTS=DIR the pages are also saved there as PNG files (the docs' pictures
// are made this way: WARDEN_SCREENSHOTS=docs/images tests/run browser).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { CHROMIUM_ARGS, redirectTarget, serve } from './harness.mjs';

const { chromium } = createRequire(import.meta.url)('playwright-core');

const WARDEN = process.env.WARDEN_BIN;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOTS = process.env.WARDEN_SCREENSHOTS || '';
const PASSWORD = 'correct horse battery staple';
const ANA = 'ana@acme.example';
const MO = 'mo@acme.example';
let dir, project, server, base, target, browser;

function warden(args, input) {
  return execFileSync(WARDEN, [...args, '-p', project], {
    input,
    encoding: 'utf8',
    env: { ...process.env, WARDEN_LOG: 'warn' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

/** The console's records of `event` in the trail. */
function consoleRecords(event) {
  const out = warden(['log', '--json', '--limit', '100000', '--event', event]);
  return out
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l))
    .filter((r) => r.source === 'console');
}

/** The JSON-RPC message in an MCP answer (JSON, or one SSE event). */
async function rpcBody(res) {
  const text = await res.text();
  if ((res.headers.get('content-type') || '').includes('text/event-stream')) {
    const data = text
      .split('\n')
      .filter((l) => l.startsWith('data:'))
      .map((l) => l.slice(5).trim())
      .filter((l) => l);
    return data.length ? JSON.parse(data[data.length - 1]) : null;
  }
  return text ? JSON.parse(text) : null;
}

/** An MCP session with `bearer`: the HTTP status of `initialize`, and a caller for tools. */
async function mcp(bearer) {
  const headers = {
    authorization: `Bearer ${bearer}`,
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
  };
  const init = await fetch(server.url, {
    method: 'POST',
    headers,
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'console-test', version: '1' } },
    }),
  });
  await init.text();
  if (init.status !== 200) return { status: init.status };
  const session = init.headers.get('mcp-session-id');
  const h = { ...headers, 'mcp-protocol-version': '2025-11-25' };
  if (session) h['mcp-session-id'] = session;
  await fetch(server.url, {
    method: 'POST',
    headers: h,
    body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
  });
  return {
    status: 200,
    async call(name, args) {
      const res = await fetch(server.url, {
        method: 'POST',
        headers: h,
        body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name, arguments: args } }),
      });
      return rpcBody(res);
    },
  };
}

async function shot(page, name) {
  if (SHOTS) await page.screenshot({ path: join(SHOTS, `console-${name}.png`), fullPage: true });
}

async function freshPage() {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  context.setDefaultTimeout(15_000);
  await context.grantPermissions(['clipboard-read', 'clipboard-write']).catch(() => {});
  const page = await context.newPage();
  return { context, page };
}

/** Signed-in browser contexts, one per person: signing in again for every test would run
 *  into the sign-in limits per address, as it should. */
const sessions = new Map();

/** A page in `email`'s signed-in context on /console: the first time, opened signed out,
 *  through the sign-in page it leads to. */
async function signIn(email) {
  if (sessions.has(email)) {
    const context = sessions.get(email);
    const page = await context.newPage();
    await page.goto(`${base}/console`);
    assert.equal(page.url(), `${base}/console`);
    return { context, page };
  }
  const { context, page } = await freshPage();
  await page.goto(`${base}/console`);
  assert.match(page.url(), /\/login\?continue=%2Fconsole$/);
  await page.getByLabel('Email', { exact: true }).fill(email);
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.waitForURL(`${base}/console`);
  sessions.set(email, context);
  return { context, page };
}

/** The secret on a new-key page, after checking its copy button works. */
async function readSecret(page) {
  const secret = (await page.locator('#secret').textContent()).trim();
  assert.match(secret, /^wdn_/);
  const copy = page.getByRole('button', { name: 'Copy key' });
  assert.ok(await copy.isVisible(), 'the copy button is shown when the script runs');
  await copy.click();
  await page.getByRole('button', { name: 'Copied' }).waitFor();
  return secret;
}

/** A connected app for the person signed in on `page`, through the real OAuth flow. */
async function connectApp(page, name) {
  const redirectUri = `http://127.0.0.1:${target.port}/callback`;
  const reg = await fetch(`${base}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ redirect_uris: [redirectUri], client_name: name, token_endpoint_auth_method: 'none' }),
  });
  const client = await reg.json();
  assert.equal(reg.status, 201, JSON.stringify(client));
  const state = randomBytes(12).toString('base64url');
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const q = new URLSearchParams({
    response_type: 'code',
    client_id: client.client_id,
    redirect_uri: redirectUri,
    state,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    scope: 'mcp:read',
  });
  await page.goto(`${base}/authorize?${q}`);
  await Promise.all([
    page.waitForURL((u) => u.href.startsWith(redirectUri)),
    page.getByRole('button', { name: 'Allow', exact: true }).click(),
  ]);
  const got = target.requests.find((u) => u.searchParams.get('state') === state);
  const res = await fetch(`${base}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code: got.searchParams.get('code'),
      code_verifier: verifier,
      redirect_uri: redirectUri,
      client_id: client.client_id,
    }),
  });
  const tokens = await res.json();
  assert.equal(res.status, 200, JSON.stringify(tokens));
  return tokens.access_token;
}

before(async () => {
  assert.ok(WARDEN, 'set WARDEN_BIN to the warden binary');
  if (SHOTS) mkdirSync(SHOTS, { recursive: true });
  dir = mkdtempSync(join(tmpdir(), 'warden-console-'));
  execFileSync(WARDEN, ['init', join(dir, 'p')], { env: { ...process.env, WARDEN_LOG: 'warn' } });
  project = join(dir, 'p', 'warden.yaml');
  warden(['org', 'create', 'acme', '--name', 'Acme']);
  warden(['user', 'add', ANA, '--org', 'acme', '--role', 'admin', '--password-stdin'], PASSWORD);
  warden(['user', 'add', MO, '--org', 'acme', '--role', 'member', '--password-stdin'], PASSWORD);
  server = await serve(WARDEN, project);
  base = new URL(server.url).origin;
  target = await redirectTarget();
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

describe('a Member in the console', () => {
  test('creates, regenerates and revokes an API key, and each takes effect at /mcp', async () => {
    const { page } = await signIn(MO);
    await shot(page, 'member-empty');
    await page.getByText('You have no API keys in Acme').waitFor();
    await page.getByLabel('Name, to recognise it by').fill('laptop');
    await page.getByLabel('Access').selectOption('mcp:read mcp:write');
    await page.getByRole('button', { name: 'Create key' }).click();
    await page.getByRole('heading', { name: /Key “laptop” created/ }).waitFor();
    await shot(page, 'new-key');
    const first = await readSecret(page);
    assert.equal((await mcp(first)).status, 200);

    await page.getByRole('link', { name: 'Back to your access page' }).click();
    const row = page.getByRole('row').filter({ hasText: 'laptop' });
    await row.getByRole('button', { name: 'Regenerate' }).click();
    await page.getByRole('heading', { name: /regenerated/ }).waitFor();
    const second = await readSecret(page);
    assert.notEqual(first, second);
    assert.equal((await mcp(first)).status, 401, 'the old secret stops at once');
    assert.equal((await mcp(second)).status, 200, 'the new one works');
    const regen = consoleRecords('key_regenerated');
    assert.equal(regen.length, 1);
    assert.equal(regen[0].user_email, MO);

    await page.getByRole('link', { name: 'Back to your access page' }).click();
    await page.getByRole('row').filter({ hasText: 'laptop' }).filter({ hasText: 'active' })
      .getByRole('button', { name: 'Revoke' }).click();
    await page.getByText('Key revoked.').waitFor();
    assert.equal((await mcp(second)).status, 401, 'a revoked key stops');
    assert.equal(consoleRecords('key_created').length, 1);
    assert.equal(consoleRecords('key_revoked').length, 1);
    await page.close();
  });

  test('sees a connected app with its name shown inert, and revokes it', async () => {
    const { page } = await signIn(MO);
    const hostile = '<img src=x onerror="window.pwned=1">Notes';
    const token = await connectApp(page, hostile);
    assert.equal((await mcp(token)).status, 200);
    await page.goto(`${base}/console`);
    const row = page.getByRole('row').filter({ hasText: 'Notes' });
    assert.equal(await row.getByRole('cell').first().textContent(), hostile, 'the name is text');
    assert.equal(await page.locator('img').count(), 0, 'no element was injected');
    assert.equal(await page.evaluate(() => window.pwned), undefined);
    await shot(page, 'member-apps');
    await row.getByRole('button', { name: 'Revoke' }).click();
    await page.getByText('App revoked.').waitFor();
    assert.equal((await mcp(token)).status, 401, "a revoked app's token gets 401");
    const rec = consoleRecords('app_revoked');
    assert.equal(rec.length, 1);
    assert.equal(rec[0].user_email, MO);
    await page.close();
  });

  test('is refused every Admin page, on the record', async () => {
    const { page } = await signIn(MO);
    const before = consoleRecords('console_refused').length;
    for (const path of ['/console/admin/members', '/console/admin/access', '/console/admin/tools']) {
      const res = await page.goto(`${base}${path}`);
      assert.equal(res.status(), 403, path);
      await page.getByRole('heading', { name: 'Admins only' }).waitFor();
    }
    await shot(page, 'admins-only');
    assert.equal(consoleRecords('console_refused').length, before + 3);
    await page.close();
  });

  test('cannot be framed', async () => {
    const { page } = await signIn(MO);
    await page.goto(`http://127.0.0.1:${target.port}/frame?src=${encodeURIComponent(`${base}/console`)}`);
    await page.waitForTimeout(500);
    const framed = page.frames().find((f) => f.url().startsWith(`${base}/console`));
    const text = framed ? await framed.evaluate(() => document.body?.innerText || '').catch(() => '') : '';
    assert.ok(!text.includes('Your access to Acme'), 'the console must not render inside a frame');
    await page.close();
  });
});

describe('an Admin in the console', () => {
  test('adds and invites members, demotes one, and the demotion refuses their next write', async () => {
    const key = warden(['key', 'add', '--org', 'acme', '--user', MO, '--name', 'agent', '--scope', 'mcp:read mcp:write']).trim();
    const before = await mcp(key);
    const preview = await before.call('update_finding_status', { finding_id: 1, status: 'resolved' });
    assert.ok(!JSON.stringify(preview).includes('denied'), `a Member's write is previewed: ${JSON.stringify(preview)}`);

    const { page } = await signIn(ANA);
    await page.getByRole('link', { name: 'members' }).click();
    await page.waitForURL(/\/console\/admin\/members/);
    await shot(page, 'members');

    // A newcomer: an account and an invitation link, shown once.
    await page.getByLabel('E-mail address').fill('newcomer@acme.example');
    await page.getByLabel('Role', { exact: true }).selectOption('guest');
    await page.getByRole('button', { name: 'Add member' }).click();
    await page.getByRole('heading', { name: 'newcomer@acme.example is invited to Acme' }).waitFor();
    await shot(page, 'invited');
    const link = (await page.locator('#invitation').textContent()).trim();
    const invitee = await freshPage();
    await invitee.page.goto(link);
    await invitee.page.waitForURL(`${base}/console`);
    await invitee.page.getByRole('heading', { name: 'Your access to Acme' }).waitFor();
    assert.match(await invitee.page.textContent('body'), /Your role here: Guest/);
    await invitee.context.close();
    assert.equal(consoleRecords('member_invited').length, 1);

    // Demote mo to Guest.
    await page.goto(`${base}/console/admin/members?org=acme`);
    const moRow = page.getByRole('row').filter({ hasText: MO });
    await moRow.getByRole('combobox').selectOption('guest');
    await moRow.getByRole('button', { name: 'Change role' }).click();
    await page.getByText('Role changed.').waitFor();
    const after = await mcp(key);
    const refused = await after.call('update_finding_status', { finding_id: 1, status: 'resolved' });
    assert.match(JSON.stringify(refused), /role|denied|may not|not allowed/i, JSON.stringify(refused));
    const changed = consoleRecords('role_changed');
    assert.equal(changed.length, 1);
    assert.equal(changed[0].user_email, ANA);
    await page.close();
  });

  test('sees every key and app of the organisation, and revokes one without touching the others', async () => {
    const keep = warden(['key', 'add', '--org', 'acme', '--user', MO, '--name', 'keep']).trim();
    const drop = warden(['key', 'add', '--org', 'acme', '--user', MO, '--name', 'drop']).trim();
    const { page } = await signIn(ANA);
    await page.goto(`${base}/console/admin/access?org=acme`);
    await shot(page, 'keys-and-apps');
    await page.getByRole('button', { name: `Revoke key drop of ${MO}` }).click();
    await page.getByText('Key revoked.').waitFor();
    assert.equal((await mcp(drop)).status, 401);
    assert.equal((await mcp(keep)).status, 200);
    const rec = consoleRecords('key_revoked').filter((r) => r.user_email === ANA);
    assert.equal(rec.length, 1);

    // One app of another person, revoked by the Admin: its token stops, the keys stay.
    const mo = await signIn(MO);
    const token = await connectApp(mo.page, "Mo's Notes");
    await mo.page.close();
    assert.equal((await mcp(token)).status, 200);
    await page.goto(`${base}/console/admin/access?org=acme`);
    await page.getByRole('button', { name: `Revoke Mo's Notes for ${MO}` }).click();
    await page.getByText('App revoked.').waitFor();
    assert.equal((await mcp(token)).status, 401, "the revoked app's token gets 401");
    assert.equal((await mcp(keep)).status, 200, "the person's key keeps working");
    const apps = consoleRecords('app_revoked').filter((r) => r.user_email === ANA);
    assert.equal(apps.length, 1);
    await page.close();
  });

  test('removes a member after a page that says what removal does', async () => {
    const { page } = await signIn(ANA);
    await page.goto(`${base}/console/admin/members?org=acme`);
    const row = page.getByRole('row').filter({ hasText: 'newcomer@acme.example' });
    await row.getByRole('button', { name: 'Remove' }).click();
    await page.getByRole('heading', { name: 'Remove newcomer@acme.example from Acme?' }).waitFor();
    assert.match(await page.textContent('body'), /revoked at once/);
    assert.match(warden(['member', 'list', '--org', 'acme']), /newcomer@acme\.example/, 'not yet removed');
    await page.getByRole('button', { name: 'Remove newcomer@acme.example' }).click();
    await page.getByText('Member removed').waitFor();
    assert.doesNotMatch(warden(['member', 'list', '--org', 'acme']), /newcomer@acme\.example/);
    const rec = consoleRecords('member_removed');
    assert.equal(rec.length, 1);
    assert.equal(rec[0].user_email, ANA);
    await page.close();
  });

  test("shows each role's tools and answers why", async () => {
    const { page } = await signIn(ANA);
    await page.goto(`${base}/console/admin/tools?org=acme`);
    await page.getByRole('cell', { name: 'update_finding_status' }).first().waitFor();
    await page.getByLabel("Member's e-mail").fill(MO);
    await page.getByLabel('Tool').selectOption('update_finding_status');
    await page.getByRole('button', { name: 'Explain' }).click();
    const answer = page.locator('#why-answer');
    await answer.waitFor();
    const text = await answer.textContent();
    assert.match(text, /DENIED/, 'mo is a Guest now');
    const cli = (() => {
      try {
        return warden(['why', '--user', MO, '--tool', 'update_finding_status', '--org', 'acme']);
      } catch (e) {
        return e.stdout;
      }
    })();
    const denial = cli.split('\n').find((l) => l.includes('DENIED')).split('DENIED ')[1];
    assert.ok(text.includes(denial), `the page says what warden why says: ${denial}`);
    await shot(page, 'tools');
    await page.close();
  });
});

describe('the trail in the console', () => {
  test('a Member sees their own activity, and only theirs', async () => {
    const { page } = await signIn(MO);
    await page.goto(`${base}/console/activity?org=acme`);
    const body = await page.textContent('body');
    assert.match(body, /key_created|key_regenerated/, 'their own console changes are there');
    assert.ok(!body.includes(ANA), "another person's records are not");
    // A user named in the address is ignored for a member.
    await page.goto(`${base}/console/activity?org=acme&user=${encodeURIComponent(ANA)}`);
    assert.ok(!(await page.textContent('body')).includes(ANA));
    await shot(page, 'activity');
    await page.close();
  });

  test('an Admin filters the trail, opens a record, sees the chain verified and downloads a signed export that verifies', async () => {
    const { page } = await signIn(ANA);
    await page.goto(`${base}/console/admin/audit?org=acme`);
    await page.getByText('Chain verified').waitFor();
    await page.getByLabel('Event').fill('role_changed');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.waitForURL(/event=role_changed/);
    const rows = page.locator('tbody tr');
    assert.equal(await rows.count(), 1, 'exactly the one role change');
    await shot(page, 'audit');
    await rows.first().getByRole('link').click();
    await page.waitForURL(/\/console\/admin\/audit\/record/);
    const record = await page.textContent('body');
    assert.match(record, /role_changed/);
    assert.match(record, /console/);
    assert.match(record, /guest/);
    await shot(page, 'record');

    await page.goto(`${base}/console/admin/audit?org=acme`);
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Download signed export' }).click(),
    ]);
    const file = join(dir, 'export.jsonl');
    await download.saveAs(file);
    assert.ok(readFileSync(file, 'utf8').split('\n').length > 3);
    const verified = warden(['audit', 'verify', '--export', file]);
    assert.match(verified, /ok|verified/i, verified);
    // A changed record no longer verifies.
    const lines = readFileSync(file, 'utf8').split('\n');
    const i = lines.findIndex((l) => l.includes('"role_changed"'));
    assert.ok(i > 0);
    lines[i] = lines[i].replace('guest', 'admin');
    const tampered = join(dir, 'tampered.jsonl');
    execFileSync('sh', ['-c', 'cat > "$0"', tampered], { input: lines.join('\n') });
    assert.throws(() => warden(['audit', 'verify', '--export', tampered]));
    assert.equal(consoleRecords('console_audit_export').length, 1);
    await page.close();
  });
});
