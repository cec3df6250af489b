// What the browser tests share: Chromium's flags, `warden serve` on port 0, and a loopback
// page for OAuth redirects (and for framing attempts). Not a test file itself: tests/run
// runs tests/browser/*.test.mjs, which import it.

import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { createInterface } from 'node:readline';

// Headless, no sandbox (root in CI), and nothing that reaches the network on its own.
// playwright-core gives every launch a fresh temporary profile (it refuses --user-data-dir
// in args; that belongs to launchPersistentContext).
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** `warden serve -p project` on port 0; resolves with the process, its MCP URL and its log
 *  lines (stderr is read for the server's whole life, so it never blocks on a full pipe). */
export function serve(warden, project) {
  return new Promise((resolve, reject) => {
    const proc = spawn(warden, ['serve', '-p', project, '--bind', '127.0.0.1:0'], {
      env: { ...process.env, WARDEN_LOG: 'info' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const log = [];
    let found = false;
    createInterface({ input: proc.stderr }).on('line', (line) => {
      log.push(line);
      const m = !found && /serving MCP on (http:\/\/\S+)/.exec(line);
      if (m) {
        found = true;
        resolve({ proc, url: m[1], log });
      }
    });
    proc.on('error', reject);
    proc.on('exit', (code) => {
      if (!found) reject(new Error(`warden serve exited (${code}) before serving:\n${log.join('\n')}`));
    });
  });
}

/** An OAuth client's loopback redirect target: records every request to /callback, and
 *  serves /frame?src=URL, a page that tries to put URL in an iframe. Anything else (the
 *  browser's /favicon.ico) is a 404. */
export function redirectTarget() {
  const requests = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    if (url.pathname === '/frame') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(
        '<!doctype html><title>framer</title>' +
          `<iframe id="f" src="${url.searchParams.get('src').replace(/"/g, '&quot;')}"` +
          ' width="600" height="400" onload="window.frameLoaded = true"></iframe>',
      );
      return;
    }
    if (url.pathname !== '/callback') {
      res.writeHead(404).end();
      return;
    }
    requests.push(url);
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><title>client</title><p>You can close this window and return to the app.</p>');
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve({ server, requests, port: server.address().port }));
  });
}
