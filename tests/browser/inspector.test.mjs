// The MCP Inspector's CLI (`@modelcontextprotocol/inspector` 2.12.0, pinned in tests/tools, the
// release that `npx @modelcontextprotocol/inspector --cli` gives a README reader today) against
// `warden demo`, as its docs/cli-smoke-testing.md drives a server from a shell or CI job: one
// non-interactive process per step, `--format json` on stdout, the exit code and the one-line
// error envelope on stderr, a static `Authorization: Bearer` header instead of OAuth, and
// `--stored-auth-only` so it never waits on a browser.
//
// `warden demo --port 0` (WARDEN_LOG left at its default) prints its MCP URL and two API keys,
// read-only and read-write. With them the Inspector lists the tools, calls a read tool, makes a
// write with the read-write key (a preview, nothing changed; then the confirmed call changes the
// row), and tries the same write with the read-only key, which does not see the write tool and is
// refused.
//
// Secrets stay out of ~/.mcp-inspector: every run gets a temporary HOME, MCP_STORAGE_DIR and
// MCP_INSPECTOR_OAUTH_STATE_PATH (the docs' isolation recipe) and MCP_INSPECTOR_SECRET_STORE=memory
// (docs/secret-storage.md: nothing written anywhere); the test checks that no file there holds a key.
//
//   WARDEN_BIN=/path/to/warden NODE_PATH=/path/to/node_modules node --test tests/browser/inspector.test.mjs
//
// tests/run browser sets both and runs it with the pinned Node 22 (the Inspector needs >= 22.19).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

const WARDEN = process.env.WARDEN_BIN;
const INSPECTOR_VERSION = '2.12.0';

/** The pinned Inspector package on NODE_PATH (it exports no package.json, so by path). */
function inspectorPackage() {
  for (const dir of (process.env.NODE_PATH ?? '').split(delimiter).filter(Boolean)) {
    const root = join(dir, '@modelcontextprotocol', 'inspector');
    if (existsSync(join(root, 'package.json'))) {
      const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
      return { version: pkg.version, bin: join(root, pkg.bin['mcp-inspector']) };
    }
  }
  throw new Error('@modelcontextprotocol/inspector is not on NODE_PATH (tests/run installs it from tests/tools)');
}

/** `warden demo --port 0`: resolves once the banner is complete, with its URL and keys. */
function demo() {
  return new Promise((resolve, reject) => {
    const env = { ...process.env };
    delete env.WARDEN_LOG;
    const proc = spawn(WARDEN, ['demo', '--port', '0'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let done = false;
    proc.stdout.setEncoding('utf8').on('data', (chunk) => {
      out += chunk;
      if (!done && out.includes('Press Ctrl-C to stop.')) {
        done = true;
        const url = /MCP endpoint\s+(http:\/\/\S+)/.exec(out)?.[1];
        const readKey = /^\s*read-only\s+(wdn_key_\S+)/m.exec(out)?.[1];
        const writeKey = /^\s*read-write\s+(wdn_key_\S+)/m.exec(out)?.[1];
        if (!url || !readKey || !writeKey) {
          reject(new Error(`the demo banner lacks the URL or a key:\n${out}`));
        } else {
          resolve({ proc, url, readKey, writeKey, banner: out, stderr: () => err });
        }
      }
    });
    proc.stderr.setEncoding('utf8').on('data', (chunk) => {
      err += chunk;
    });
    proc.on('error', reject);
    proc.on('exit', (code) => {
      if (!done) reject(new Error(`warden demo exited (${code}) before its banner:\n${out}\n${err}`));
    });
  });
}

let server, inspector, home;

before(async () => {
  assert.ok(WARDEN, 'set WARDEN_BIN to the warden binary');
  inspector = inspectorPackage();
  assert.equal(inspector.version, INSPECTOR_VERSION, 'the pinned Inspector is not the one installed');
  const [major, minor] = process.versions.node.split('.').map(Number);
  assert.ok(major > 22 || (major === 22 && minor >= 19), `the Inspector needs Node >= 22.19, this is ${process.version}`);
  home = mkdtempSync(join(tmpdir(), 'warden-inspector-'));
  mkdirSync(join(home, 'storage'));
  server = await demo();
});

after(async () => {
  if (server && server.proc.exitCode === null) {
    const exited = new Promise((r) => server.proc.once('exit', r));
    server.proc.kill('SIGINT');
    await exited;
  }
  if (home) rmSync(home, { recursive: true, force: true });
});

/**
 * One Inspector CLI run against the demo with `key` as the bearer: resolves with the exit code,
 * the parsed stdout (`--format json`: one object) and the last stderr line parsed as the error
 * envelope when it is one.
 */
function inspect(key, ...args) {
  const argv = [
    inspector.bin,
    '--cli',
    '--transport', 'http',
    '--server-url', server.url,
    '--header', `Authorization: Bearer ${key}`,
    '--stored-auth-only',
    '--connect-timeout', '15000',
    '--format', 'json',
    ...args,
  ];
  const env = {
    PATH: process.env.PATH,
    HOME: home,
    MCP_STORAGE_DIR: join(home, 'storage'),
    MCP_INSPECTOR_OAUTH_STATE_PATH: join(home, 'storage', 'oauth.json'),
    MCP_CLIENT_CONFIG_PATH: join(home, 'storage', 'client.json'),
    MCP_CATALOG_PATH: join(home, 'storage', 'mcp.json'),
    MCP_INSPECTOR_SECRET_STORE: 'memory',
  };
  return new Promise((resolve) => {
    const child = execFile(process.execPath, argv, { env, timeout: 60_000, maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      let json;
      try {
        json = stdout.trim() ? JSON.parse(stdout) : undefined;
      } catch {
        json = undefined;
      }
      const last = stderr.trim().split('\n').pop() ?? '';
      let envelope;
      try {
        envelope = JSON.parse(last);
      } catch {
        envelope = undefined;
      }
      resolve({ code, json, stdout, stderr, envelope });
    });
    child.stdin?.end();
  });
}

const show = (r) => `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;

const resultText = (r) =>
  (r.json?.result?.content ?? [])
    .filter((c) => c.type === 'text')
    .map((c) => c.text)
    .join('\n');

/** Rows of a read tool called through the Inspector (Warden answers {"rows": [...]} as text). */
async function readRows(key, tool, args) {
  const r = await inspect(key, '--method', 'tools/call', '--tool-name', tool, '--tool-args-json', JSON.stringify(args));
  assert.equal(r.code, 0, show(r));
  assert.equal(r.json?.result?.isError, false, show(r));
  return JSON.parse(resultText(r)).rows;
}

describe(`MCP Inspector CLI ${INSPECTOR_VERSION} against warden demo`, () => {
  test('tools/list with the read-write key shows every demo tool', async () => {
    const r = await inspect(server.writeKey, '--method', 'tools/list');
    assert.equal(r.code, 0, show(r));
    const names = r.json?.result?.tools?.map((t) => t.name).sort();
    // The hand-written tools, those the example's `tables:` generate, and those of `files`.
    assert.deepEqual(names, [
      'assessments_of_vendors',
      'count_findings_by',
      'count_vendors_by',
      'delete_obligations',
      'export_vendors',
      'filter_assessments',
      'filter_findings',
      'filter_obligations',
      'filter_vendors',
      'findings_of_vendors',
      'get_assessments',
      'get_findings',
      'get_vendors',
      'ingest_obligations',
      'insert_obligations',
      'list_assessments',
      'list_files',
      'list_findings',
      'list_obligations',
      'list_vendors',
      'obligations_of_vendors',
      'portfolio_report',
      'request_download_url',
      'request_upload_url',
      'search_findings',
      'search_vendors',
      'upcoming_obligations',
      'update_finding_status',
      'update_obligations',
      'vendor_detail',
    ]);
    const write = r.json.result.tools.find((t) => t.name === 'update_finding_status');
    assert.equal(write.annotations?.readOnlyHint, false, JSON.stringify(write.annotations));
  });

  test('a read tool with the read-only key', async () => {
    const vendors = await readRows(server.readKey, 'search_vendors', { tier: 'critical', limit: 5 });
    assert.ok(vendors.length > 0 && vendors.length <= 5, JSON.stringify(vendors));
    assert.ok(vendors.every((v) => v.tier === 'critical' && /^V-\d{3}$/.test(v.id)), JSON.stringify(vendors));
  });

  test('a write with the read-write key: preview first, then the confirmed call changes the row', async () => {
    const [finding] = await readRows(server.readKey, 'list_findings', { status: 'open', limit: 1 });
    assert.ok(finding, 'the demo has no open finding');
    const args = { finding_id: finding.id, status: 'remediated', note: 'Closed from the Inspector CLI' };

    // The preview is a tool error (isError: true, the CLI's exit 5) that changes nothing.
    const preview = await inspect(
      server.writeKey, '--method', 'tools/call', '--tool-name', 'update_finding_status', '--tool-args-json', JSON.stringify(args),
    );
    assert.equal(preview.code, 5, show(preview));
    assert.equal(preview.json?.result?.isError, true, show(preview));
    assert.match(resultText(preview), /^Confirmation required: this is a preview and nothing was changed\./);
    const token = /"confirmation_token": "(wdn_cf_[^"]+)"/.exec(resultText(preview))?.[1];
    assert.ok(token, `no confirmation token in ${resultText(preview)}`);
    const still = await readRows(server.readKey, 'list_findings', { status: 'open', limit: 200 });
    assert.ok(still.some((f) => f.id === finding.id), 'the preview changed the finding');

    const done = await inspect(
      server.writeKey, '--method', 'tools/call', '--tool-name', 'update_finding_status',
      '--tool-args-json', JSON.stringify({ ...args, confirm: true, confirmation_token: token }),
    );
    assert.equal(done.code, 0, show(done));
    assert.equal(done.json?.result?.isError, false, show(done));
    assert.match(resultText(done), /"status":\s*"remediated"/);
    const remediated = await readRows(server.readKey, 'list_findings', { status: 'remediated', limit: 200 });
    const row = remediated.find((f) => f.id === finding.id);
    assert.ok(row, `finding ${finding.id} is not remediated after the confirmed write`);

    // The token was used once: replaying it is refused and changes nothing more.
    const replay = await inspect(
      server.writeKey, '--method', 'tools/call', '--tool-name', 'update_finding_status',
      '--tool-args-json', JSON.stringify({ ...args, note: 'replayed', confirm: true, confirmation_token: token }),
    );
    assert.notEqual(replay.code, 0, show(replay));
  });

  test('the read-only key does not see the write tool, and the same write is refused', async () => {
    // Warden lists write tools only to connections that may write (`show_write_tools` is off by
    // default), so the Inspector, which looks a tool up before calling it, refuses on its own.
    const listed = await inspect(server.readKey, '--method', 'tools/list');
    assert.equal(listed.code, 0, show(listed));
    const names = (listed.json?.tools ?? listed.json?.result?.tools ?? []).map((t) => t.name);
    assert.ok(names.includes('list_findings'), show(listed));
    assert.ok(!names.includes('update_finding_status'), `a read-only key was shown the write tool:\n${show(listed)}`);
    const [finding] = await readRows(server.readKey, 'list_findings', { status: 'open', limit: 1 });
    assert.ok(finding, 'the demo has no open finding');
    const args = { finding_id: finding.id, status: 'risk_accepted', note: 'Tried with the read-only key' };
    const r = await inspect(
      server.readKey, '--method', 'tools/call', '--tool-name', 'update_finding_status', '--tool-args-json', JSON.stringify(args),
    );
    // Refused: a failing exit, no successful result, and the row untouched.
    assert.notEqual(r.code, 0, show(r));
    assert.notEqual(r.json?.result?.isError, false, show(r));
    const open = await readRows(server.writeKey, 'list_findings', { status: 'open', limit: 200 });
    assert.ok(open.some((f) => f.id === finding.id), 'the read-only key changed the finding');
    const said = [r.envelope?.error?.message, resultText(r)].filter(Boolean).join('\n');
    assert.match(said, /update_finding_status/, `the refusal does not name the tool:\n${show(r)}`);
  });

  test('no secret was written under the Inspector home', () => {
    const files = [];
    const walk = (d) => {
      for (const name of readdirSync(d)) {
        const p = join(d, name);
        if (statSync(p).isDirectory()) walk(p);
        else files.push(p);
      }
    };
    walk(home);
    for (const f of files) {
      const body = readFileSync(f, 'utf8');
      assert.ok(!body.includes(server.readKey) && !body.includes(server.writeKey), `${f} holds an API key`);
    }
    assert.equal(existsSync(join(home, '.mcp-inspector', 'secrets.json')), false);
  });
});
