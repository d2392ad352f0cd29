// Test harness: real `boxoffice serve` processes (debug binary, embedded store, a fresh data
// directory each, port 0) and Debian's Chromium driven by playwright-core.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
export const ROOT = join(here, '..', '..');
export const BIN = process.env.BOXOFFICE_BIN || join(ROOT, 'target', 'debug', 'boxoffice');
export const ARTIFACTS = join(here, '..', 'artifacts');
const SECRET = 'storefront-browser-test-secret-0123456789';
mkdirSync(ARTIFACTS, { recursive: true });

/** Starts `boxoffice serve`; resolves once it prints its address. */
export async function startServer(extraArgs = [], extraEnv = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), 'boxoffice-web-'));
  const env = {
    ...process.env,
    BOXOFFICE_DATA_DIR: dataDir,
    BOXOFFICE_LISTEN: '127.0.0.1:0',
    BOXOFFICE_LOG: 'warn',
    BOXOFFICE_JWT_SECRET: SECRET,
    ...extraEnv,
  };
  for (const k of ['BOXOFFICE_DATABASE_URL', 'BOXOFFICE_JWKS_URL', 'BOXOFFICE_TICKET_KEY_FILE']) {
    if (!(k in extraEnv)) delete env[k];
  }
  const child = spawn(BIN, ['serve', ...extraArgs], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stderr.on('data', (d) => { log += d; });
  const base = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('server did not start:\n' + log)), 60_000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited ${code}:\n${log}`)); });
  });
  child.removeAllListeners('exit');
  const server = {
    base,
    dataDir,
    log: () => log,
    /** Runs another `boxoffice` subcommand against this node's store (`seed`, `verify`). */
    cli(...args) {
      return execFileSync(BIN, args, { env }).toString();
    },
    /** A bearer token signed like `boxoffice token`. */
    token(sub, roles = ['customer']) {
      const args = ['token', '--sub', sub, ...roles.flatMap((r) => ['--role', r])];
      return execFileSync(BIN, args, { env }).toString().trim();
    },
    async api(method, path, token, body, headers = {}) {
      const res = await fetch(base + path, {
        method,
        headers: {
          ...(token ? { authorization: `Bearer ${token}` } : {}),
          ...(body ? { 'content-type': 'application/json' } : {}),
          ...headers,
        },
        body: body ? JSON.stringify(body) : undefined,
      });
      const text = await res.text();
      let json = null;
      try { json = text ? JSON.parse(text) : null; } catch { json = text; }
      return { status: res.status, body: json, headers: res.headers };
    },
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await new Promise((r) => { child.once('exit', r); setTimeout(r, 10_000); });
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return server;
}

/** An event as an organizer posts it. */
export function eventBody(overrides = {}) {
  const starts = new Date(Date.now() + 90 * 24 * 3600 * 1000).toISOString().replace(/\.\d+Z$/, 'Z');
  return {
    name: 'Taylor Swift | The Eras Tour',
    performers: ['Taylor Swift'],
    category: 'concert',
    description: 'The Eras Tour comes to Seattle.',
    startsAt: starts,
    currency: 'USD',
    venue: { name: 'Lumen Field', address: '800 Occidental Ave S', city: 'Seattle', zipCode: '98134',
             country: 'US', lat: 47.5952, lon: -122.3316 },
    sections: [
      { name: 'Floor', rows: 10, seatsPerRow: 20, priceCents: 25000 },
      { name: 'Lawn', capacity: 100, priceCents: 5000 },
    ],
    policies: { maxTicketsPerCustomer: 8, refundWindowHours: 48, resaleMaxPricePercent: 120 },
    ...overrides,
  };
}

/** Creates an event through the API and waits until search finds it. */
export async function createEvent(server, overrides = {}, organizer = 'olivia') {
  const token = server.token(organizer, ['organizer']);
  const res = await server.api('POST', '/v1/events', token, eventBody(overrides));
  if (res.status !== 201) throw new Error('create event: ' + JSON.stringify(res.body));
  const id = res.body.eventId;
  for (let i = 0; i < 100; i++) {
    const s = await server.api('GET', `/v1/events?q=${encodeURIComponent(res.body.name)}&limit=100`);
    if (s.status === 200 && s.body.events.some((e) => e.eventId === id)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return res.body;
}

/**
 * Debian's Chromium, with the flags that keep it off the network. Playwright gives every
 * launch a new, empty profile directory of its own (it refuses --user-data-dir here).
 */
export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
}

const AXE = require.resolve('axe-core/axe.min.js');

/**
 * Runs axe-core on the page and fails on any serious or critical violation; saves a
 * screenshot of the page as an artifact either way.
 */
export async function checkPage(page, name) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
  await page.addScriptTag({ path: AXE });
  const violations = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ['violations'] });
    return r.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => ({ id: v.id, impact: v.impact, help: v.help,
                     nodes: v.nodes.slice(0, 5).map((n) => n.target.join(' ')) }));
  });
  writeFileSync(join(ARTIFACTS, `${name}.axe.json`), JSON.stringify(violations, null, 2));
  if (violations.length) {
    throw new Error(`axe: serious/critical violations on ${name}:\n${JSON.stringify(violations, null, 2)}`);
  }
}

/** Signs in through the demo "sign in as" form. */
export async function signIn(page, base, name, role = 'customer') {
  await page.goto(`${base}/signin`);
  await page.getByLabel('Name').fill(name);
  await page.getByLabel('Role').selectOption(role);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForLoadState('load');
}
