// What the browser suites share: the real binary on a fresh data folder, a free port, the
// API, Debian's headless Chromium, axe-core in every page, screenshots, and the checks'
// tally. Each suite imports this and walks its own pages.

import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, readFileSync, mkdirSync, copyFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const here = dirname(fileURLToPath(import.meta.url));
export const root = resolve(here, '..', '..');
export const binary = process.env.DISCREET_BIN || join(root, 'target', 'debug', 'discreet');
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
const screenshots = process.env.SCREENSHOT_DIR || join(root, 'target', 'browser-screenshots');
const updateDocs = process.env.UPDATE_DOCS === '1';
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

export const failures = [];
export const axeResults = {};

/// A fresh data folder and KEK for one suite.
export function workspace() {
  const work = mkdtempSync(join(tmpdir(), 'discreet-browser-'));
  return { work, dataDir: join(work, 'data'), kekFile: join(work, 'discreet.kek') };
}

export function check(condition, what) {
  if (!condition) {
    failures.push(what);
    console.error(`FAIL: ${what}`);
  } else {
    console.log(`ok: ${what}`);
  }
}

export function cleanEnv() {
  const env = { ...process.env };
  for (const name of Object.keys(env)) {
    if (name.startsWith('DISCREET_')) delete env[name];
  }
  env.RUST_LOG = 'warn';
  return env;
}

/// Runs `discreet ARGS` on the suite's store; answers its stdout.
export function cli(space, args) {
  const run = spawnSync(binary, [...args, '--data-dir', space.dataDir, '--kek-file', space.kekFile], {
    encoding: 'utf8',
    env: cleanEnv(),
    timeout: 120_000,
  });
  if (run.status !== 0) {
    throw new Error(`discreet ${args.join(' ')} exited ${run.status}: ${run.stderr}`);
  }
  return run.stdout;
}

function freePort() {
  return new Promise((resolvePort, reject) => {
    const probe = createServer();
    probe.unref();
    probe.on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolvePort(port));
    });
  });
}

/// `discreet serve` on the suite's store and a free port, once it answers /healthz.
export async function serve(space) {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const server = spawn(binary, ['serve', '--data-dir', space.dataDir, '--kek-file', space.kekFile, '--listen', `127.0.0.1:${port}`], {
    env: cleanEnv(),
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let serverLog = '';
  server.stderr.on('data', (chunk) => { serverLog += chunk; });
  for (let attempt = 0; ; attempt += 1) {
    try {
      const health = await fetch(`${base}/healthz`);
      if (health.status === 200) break;
    } catch { /* not listening yet */ }
    if (attempt > 600) throw new Error(`the server did not become ready:\n${serverLog}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { server, base };
}

export async function api(base, method, path, key, body) {
  const response = await fetch(base + path, {
    method,
    headers: {
      ...(key ? { authorization: `Bearer ${key}` } : {}),
      ...(body ? { 'content-type': 'application/json' } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = null;
  }
  return { status: response.status, json, text };
}

/// Debian's Chromium, headless, with the flags this machine needs.
export function launch() {
  return chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/// Runs axe-core in the page (injected through the DevTools protocol, which the page's
/// Content-Security-Policy does not govern) and records its violations by impact.
export async function audit(page, name) {
  await page.evaluate(axeSource);
  const results = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const run = await axe.run(document, { resultTypes: ['violations'] });
    return run.violations.map((violation) => ({
      id: violation.id,
      impact: violation.impact,
      nodes: violation.nodes.length,
      help: violation.help,
    }));
  });
  const byImpact = { critical: 0, serious: 0, moderate: 0, minor: 0 };
  for (const violation of results) byImpact[violation.impact] = (byImpact[violation.impact] || 0) + 1;
  axeResults[name] = { ...byImpact, violations: results.map((v) => `${v.impact}:${v.id}`) };
  const blocking = results.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  check(blocking.length === 0, `${name}: axe-core finds no serious or critical violation ${JSON.stringify(blocking)}`);
}

/// A full-page screenshot as `NAME.png` (and under docs/screenshots/ with UPDATE_DOCS=1).
export async function shoot(page, name) {
  mkdirSync(screenshots, { recursive: true });
  const file = join(screenshots, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  if (updateDocs) {
    const docs = join(root, 'docs', 'screenshots');
    mkdirSync(docs, { recursive: true });
    copyFileSync(file, join(docs, `${name}.png`));
  }
}

/// A small shop: the tour customer and others whose baskets overlap, so the models learn.
export function shopCsv() {
  const lines = ['InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country'];
  const items = [
    ['85123A', 'WHITE HANGING HEART T-LIGHT HOLDER', '2.55'],
    ['22423', 'REGENCY CAKESTAND 3 TIER', '12.75'],
    ['47566', 'PARTY BUNTING', '4.95'],
    ['84879', 'ASSORTED COLOUR BIRD ORNAMENT', '1.69'],
    ['20725', 'LUNCH BAG RED RETROSPOT', '1.65'],
    ['22720', 'SET OF 3 CAKE TINS PANTRY DESIGN', '4.95'],
  ];
  const baskets = {
    17850: [0, 1, 2],
    13047: [0, 1, 3],
    12583: [1, 2, 4],
    13748: [0, 2, 5],
    15100: [1, 3, 4, 5],
    15291: [0, 1, 2, 3],
  };
  let invoice = 536365;
  let day = 1;
  for (const [customer, basket] of Object.entries(baskets)) {
    for (const index of basket) {
      const [code, title, price] = items[index];
      lines.push(`${invoice},${code},${title},2,2011-11-${String(day).padStart(2, '0')} 10:00:00,${price},${customer},United Kingdom`);
      invoice += 1;
    }
    day += 1;
  }
  return { csv: lines.join('\n') + '\n', customers: Object.keys(baskets).map((c) => `c-${c}`), tourEvents: baskets[17850].length };
}

/// Runs a suite's `main`, stops its server, removes its folder, prints the JSON summary (the
/// output's last line) and exits 0 only when every check passed.
export async function runSuite(suite, space, main, getServer, extra = () => ({})) {
  const started = Date.now();
  let crashed = null;
  try {
    await main();
  } catch (error) {
    crashed = error;
    failures.push(String(error && error.stack ? error.stack : error));
    console.error(error);
  } finally {
    const server = getServer();
    if (server) server.kill('SIGTERM');
    rmSync(space.work, { recursive: true, force: true });
  }
  const seconds = (Date.now() - started) / 1000;
  console.log(JSON.stringify({ suite, seconds, failures: failures.length, ...extra(), axe: axeResults }));
  process.exit(failures.length === 0 && !crashed ? 0 : 1);
}
