#!/usr/bin/env node
/*
 * End-to-end check of the web display in a real headless browser.
 *
 * Drives Debian's chromium over the DevTools protocol on a pipe
 * (--remote-debugging-pipe: requests on fd 3, replies on fd 4, each message
 * NUL-terminated JSON), so it needs nothing but node and chromium. It loads
 * the page, waits for the card of --topic to show --initial and the
 * connection to be live, then runs the publish command (everything after
 * `--`) and waits for the same page — not reloaded — to show --expect with
 * the connection live again (with --expect-reconnect yes: after showing
 * "reconnecting" in between).
 * The command may do more than publish (e.g. wait for a test to restart the
 * apiserver first); it gets --publish-timeout-ms to finish.
 *
 *   node display.mjs --url http://127.0.0.1:8080/?topic=demo/* --topic demo/temp \
 *     --initial 21.5 --expect 22.75 [--absent other/x] [--screenshot out.png] \
 *     [--chromium /usr/bin/chromium] [--timeout-ms 90000] [--wait-ms 10000] [--size 1920x1080] \
 *     [--expect-reconnect yes] -- redis-cli -p 6379 PUBLISH 'update:{demo/temp}' '{"value":22.75}'
 *
 * Exit 0 on success, 1 on failure (reason on stderr), 2 on bad usage. The
 * browser is always closed, also on timeout, signals and exceptions.
 */
import { spawn, execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function usage(msg) {
  process.stderr.write(`display.mjs: ${msg}\n` +
    'usage: node display.mjs --url URL --topic T --initial TEXT --expect TEXT [--absent T]... [--expect-reconnect yes] ' +
    '[--screenshot FILE] [--chromium PATH] [--timeout-ms N] [--wait-ms N] [--publish-timeout-ms N] [--size WxH] -- PUBLISH-COMMAND...\n');
  process.exit(2);
}

function parseArgs(argv) {
  const opt = {
    chromium: process.env.CHROMIUM || '/usr/bin/chromium',
    timeoutMs: 90000,
    waitMs: 10000,
    publishTimeoutMs: 10000,
    width: 1920,
    height: 1080,
    absent: [],
    publish: [],
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      opt.publish = argv.slice(i + 1);
      break;
    }
    const v = argv[i + 1];
    if (v === undefined) usage(`missing value for ${a}`);
    i++;
    switch (a) {
      case '--url': opt.url = v; break;
      case '--topic': opt.topic = v; break;
      case '--initial': opt.initial = v; break;
      case '--expect': opt.expect = v; break;
      case '--absent': opt.absent.push(v); break;
      case '--expect-reconnect': opt.expectReconnect = v === 'yes'; break;
      case '--screenshot': opt.screenshot = v; break;
      case '--chromium': opt.chromium = v; break;
      case '--timeout-ms': opt.timeoutMs = Number(v); break;
      case '--wait-ms': opt.waitMs = Number(v); break;
      case '--publish-timeout-ms': opt.publishTimeoutMs = Number(v); break;
      case '--size': [opt.width, opt.height] = v.split('x').map(Number); break;
      default: usage(`unknown option ${a}`);
    }
  }
  for (const k of ['url', 'topic', 'initial', 'expect']) if (opt[k] === undefined) usage(`--${k} is required`);
  if (!(opt.width > 0 && opt.height > 0)) usage('--size wants WIDTHxHEIGHT');
  if (opt.publish.length === 0) usage('missing publish command after --');
  return opt;
}

const t0 = Date.now();
const log = (msg) => process.stdout.write(`display.mjs: [${((Date.now() - t0) / 1000).toFixed(1)} s] ${msg}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/* A DevTools protocol connection over chromium's pipe pair. */
class Cdp {
  constructor(out, inp) {
    this.out = out;
    this.nextId = 1;
    this.pending = new Map();
    this.listeners = [];
    this.buf = Buffer.alloc(0);
    this.closed = false;
    inp.on('data', (chunk) => this.onData(chunk));
    inp.on('close', () => this.onClose());
    inp.on('error', () => this.onClose());
    out.on('error', () => this.onClose());
  }

  onData(chunk) {
    this.buf = Buffer.concat([this.buf, chunk]);
    let end;
    while ((end = this.buf.indexOf(0)) >= 0) {
      const text = this.buf.subarray(0, end).toString('utf8');
      this.buf = this.buf.subarray(end + 1);
      let msg;
      try {
        msg = JSON.parse(text);
      } catch {
        continue;
      }
      if (msg.id !== undefined && this.pending.has(msg.id)) {
        const { resolve, reject, method } = this.pending.get(msg.id);
        this.pending.delete(msg.id);
        if (msg.error) reject(new Error(`${method}: ${msg.error.message}`));
        else resolve(msg.result);
      } else if (msg.method) {
        for (const fn of this.listeners) fn(msg);
      }
    }
  }

  onClose() {
    if (this.closed) return;
    this.closed = true;
    for (const { reject, method } of this.pending.values()) reject(new Error(`${method}: browser pipe closed`));
    this.pending.clear();
  }

  send(method, params = {}, sessionId = undefined) {
    if (this.closed) return Promise.reject(new Error(`${method}: browser pipe closed`));
    const id = this.nextId++;
    const msg = { id, method, params };
    if (sessionId) msg.sessionId = sessionId;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, method });
      this.out.write(JSON.stringify(msg) + '\0');
    });
  }

  on(fn) {
    this.listeners.push(fn);
  }
}

const opt = parseArgs(process.argv.slice(2));
let browser = null;
let profile = null;
let finished = false;

/* Synchronous last-resort cleanup: kill the whole browser process group. */
function killBrowser() {
  if (browser !== null && browser.exitCode === null && browser.signalCode === null) {
    try {
      process.kill(-browser.pid, 'SIGKILL');
    } catch {
      try { browser.kill('SIGKILL'); } catch { /* already gone */ }
    }
  }
  if (profile !== null) {
    try { rmSync(profile, { recursive: true, force: true }); } catch { /* best effort */ }
    profile = null;
  }
}

function fail(msg) {
  if (finished) return;
  finished = true;
  process.stderr.write(`display.mjs: FAIL: ${msg}\n`);
  killBrowser();
  process.exit(1);
}

process.on('exit', killBrowser);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => fail(`got ${sig}`));
process.on('unhandledRejection', (e) => fail(e instanceof Error ? e.message : String(e)));
const overall = setTimeout(() => fail(`overall timeout of ${opt.timeoutMs} ms`), opt.timeoutMs);

function runPublish(argv) {
  return new Promise((resolve, reject) => {
    execFile(argv[0], argv.slice(1), { timeout: opt.publishTimeoutMs }, (err, stdout, stderr) => {
      if (err) reject(new Error(`publish command failed: ${err.message} ${stderr}`));
      else resolve(stdout.trim());
    });
  });
}

async function main() {
  if (!existsSync(opt.chromium)) {
    fail(`${opt.chromium} not found: run scripts/install-browser-deps.sh (or set CHROMIUM)`);
  }
  profile = mkdtempSync(join(tmpdir(), 'statecast-e2e-'));
  browser = spawn(opt.chromium, [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--disable-dev-shm-usage', '--hide-scrollbars', '--mute-audio',
    `--user-data-dir=${profile}`, `--window-size=${opt.width},${opt.height}`, '--remote-debugging-pipe', 'about:blank',
  ], { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'], detached: true });
  let browserErr = '';
  browser.stderr.on('data', (d) => { browserErr = (browserErr + d.toString()).slice(-4000); });
  browser.on('exit', (code, sig) => {
    if (!finished) fail(`chromium exited early (code ${code}, signal ${sig}); its stderr:\n${browserErr}`);
  });
  browser.on('error', (e) => fail(`cannot start ${opt.chromium}: ${e.message}`));

  const cdp = new Cdp(browser.stdio[3], browser.stdio[4]);
  const version = await cdp.send('Browser.getVersion');
  log(`browser ${version.product}`);

  const { targetId } = await cdp.send('Target.createTarget', { url: 'about:blank' });
  const { sessionId } = await cdp.send('Target.attachToTarget', { targetId, flatten: true });
  const page = (method, params) => cdp.send(method, params, sessionId);

  /* Page errors fail the test: exceptions, console.error, CSP violations. */
  const pageErrors = [];
  cdp.on((msg) => {
    if (msg.sessionId !== sessionId) return;
    const p = msg.params;
    if (msg.method === 'Runtime.exceptionThrown') {
      pageErrors.push(`exception: ${p.exceptionDetails.exception?.description || p.exceptionDetails.text}`);
    } else if (msg.method === 'Runtime.consoleAPICalled' && p.type === 'error') {
      pageErrors.push(`console.error: ${p.args.map((a) => a.value ?? a.description).join(' ')}`);
    } else if (msg.method === 'Log.entryAdded' && p.entry.level === 'error' && p.entry.source !== 'network') {
      pageErrors.push(`${p.entry.source}: ${p.entry.text}`);
    }
  });
  await page('Runtime.enable');
  await page('Log.enable');
  await page('Page.enable');
  await page('Emulation.setDeviceMetricsOverride', { width: opt.width, height: opt.height, deviceScaleFactor: 1, mobile: false });

  const evaluate = async (expression) => {
    const r = await page('Runtime.evaluate', { expression, returnByValue: true });
    if (r.exceptionDetails) throw new Error(`evaluate failed: ${r.exceptionDetails.text}`);
    return r.result.value;
  };
  const waitFor = async (what, expression, timeoutMs) => {
    const until = Date.now() + timeoutMs;
    let last;
    while (Date.now() < until) {
      last = await evaluate(expression);
      if (last && last.ok) return last;
      await sleep(100);
    }
    throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; page state: ${JSON.stringify(last)}`);
  };

  /* Everything the checks need from the page in one snapshot. */
  const snapshot = `(() => {
    const topic = ${JSON.stringify(opt.topic)};
    const card = [...document.querySelectorAll('[data-topic]')].find((c) => c.dataset.topic === topic);
    const value = card ? card.querySelector('[data-value]') : null;
    const conn = document.querySelector('[data-conn]');
    return {
      conn: conn ? conn.dataset.conn : null,
      topics: [...document.querySelectorAll('[data-topic]')].map((c) => c.dataset.topic),
      text: value ? value.textContent : null,
      seq: card ? card.dataset.seq : null,
      ago: card ? card.querySelector('time')?.textContent : null,
      marker: window.__statecastE2E === true,
      connHistory: window.__statecastConn || [],
    };
  })()`;
  const check = (cond) => `(() => { const s = ${snapshot}; s.ok = ${cond}; return s; })()`;

  log(`loading ${opt.url}`);
  const nav = await page('Page.navigate', { url: opt.url });
  if (nav.errorText) throw new Error(`navigation failed: ${nav.errorText}`);

  const before = await waitFor(`card ${opt.topic} showing ${JSON.stringify(opt.initial)} with the connection live`,
    check(`s.text !== null && s.text.includes(${JSON.stringify(opt.initial)}) && s.conn === 'live'`), 30000);
  log(`initial card ok: ${JSON.stringify(before)}`);
  const sorted = [...before.topics].sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  if (JSON.stringify(sorted) !== JSON.stringify(before.topics)) throw new Error(`cards not sorted: ${before.topics}`);
  for (const t of opt.absent) {
    if (before.topics.includes(t)) throw new Error(`card ${t} is shown although the URL filter excludes it`);
  }

  /* Mark this page instance (the new value must arrive without a reload) and
   * record every connection state the indicator shows from now on. */
  await evaluate(`(() => {
    window.__statecastE2E = true;
    const conn = document.querySelector('[data-conn]');
    window.__statecastConn = [conn.dataset.conn];
    new MutationObserver(() => window.__statecastConn.push(conn.dataset.conn))
      .observe(conn, { attributes: true, attributeFilter: ['data-conn'] });
  })()`);
  const out = await runPublish(opt.publish);
  log(`published (${opt.publish.join(' ')}): ${out}`);

  const after = await waitFor(`card ${opt.topic} to show ${JSON.stringify(opt.expect)} live`,
    check(`s.marker && s.text !== null && s.text.includes(${JSON.stringify(opt.expect)}) && s.conn === 'live'`),
    opt.waitMs);
  log(`live update ok: ${JSON.stringify(after)}`);
  if (Number(after.seq) <= Number(before.seq)) throw new Error(`seq did not advance: ${before.seq} -> ${after.seq}`);
  if (!after.ago || !/ago|now/.test(after.ago)) throw new Error(`no "ago" text on the card: ${after.ago}`);
  if (opt.expectReconnect && !after.connHistory.includes('reconnecting')) {
    throw new Error(`the indicator never showed "reconnecting": ${after.connHistory}`);
  }

  if (opt.screenshot) {
    const shot = await page('Page.captureScreenshot', { format: 'png' });
    writeFileSync(opt.screenshot, Buffer.from(shot.data, 'base64'));
    log(`screenshot saved to ${opt.screenshot}`);
  }
  if (pageErrors.length > 0) throw new Error(`page reported errors:\n  ${pageErrors.join('\n  ')}`);

  finished = true;
  await Promise.race([cdp.send('Browser.close').catch(() => {}), sleep(5000)]);
  const exited = browser.exitCode !== null || browser.signalCode !== null ||
    await Promise.race([new Promise((r) => browser.once('exit', () => r(true))), sleep(5000).then(() => false)]);
  if (!exited) log('chromium did not exit after Browser.close; killing it');
  killBrowser();
  clearTimeout(overall);
  log('PASS');
}

main().catch((e) => fail(e.message));
