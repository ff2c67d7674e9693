// The browser example (examples/browser/) in a real browser: Debian's Chromium, headless,
// driven by playwright-core, opens the page served by examples/browser/serve.ts; the page
// joins a real simplevpn-server over ws://, gets an address and shows it; a Linux client in
// another namespace pings that address (the page's IP stack answers) and echoes the page's
// telemetry datagrams (so the page shows a round trip). A screenshot of the page is left in
// /tmp/simplevpn-browser-page.png.
//
// Chromium, the server and the page's server run in one namespace (the hub) through a
// wrapper script that starts Chromium with `ip netns exec`; the Linux client in a spoke.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Host, Lab, type Proc, ROOT, e2eUnavailable } from '../../support/lab.js';

// The page's DOM, as the functions run inside the browser see it (the tree has no DOM types).
declare const document: { getElementById(id: string): { textContent: string | null } | null };

const CHROMIUM = '/usr/bin/chromium';
const skip = e2eUnavailable() ?? (existsSync(CHROMIUM) ? null : `no ${CHROMIUM} (apt-get install chromium)`);
const it = skip ? test.skip : test;
if (skip) console.log(`browser-page: SKIPPING (registered as skipped): ${skip}`);

const SHOT = '/tmp/simplevpn-browser-page.png';

it('a browser tab joins the VPN over ws, shows its address, answers ping, gets its telemetry echoed, keeps the link alive and reconnects to its address', async () => {
  const { chromium } = await import('playwright-core');
  const dir = mkdtempSync(join(tmpdir(), 'svpn-browser-'));
  const lab = new Lab();
  let browser: Awaited<ReturnType<typeof chromium.launchPersistentContext>> | null = null;
  const pidFile = join(dir, 'chromium.pid');
  try {
    const [hub, c1] = lab.star('hub', 'c1') as [Host, Host];
    // The hub's namespace is the test's own: the default port is free there, and a server
    // started again after a kill gets the same one. A 1 s keepalive for the idle phase.
    const SERVER_ARGS = ['--no-tun', '--host', '0.0.0.0', '--keepalive', '1', '--idle-timeout', '4'];
    let server = hub.server(SERVER_ARGS);
    await server.waitFor('listening', () => true, 10_000);
    const wsPort = 2002;
    const client = c1.client('linux', ['-s', '198.18.1.1', '-p', String(wsPort), '--max-backoff', '1', '--timeout', '3']);
    const linuxAddr = String((await client.waitFor('ready', () => true, 15_000)).address);
    // The collector: a UDP echo on the Linux client's VPN address.
    const echo: Proc = c1.spawn('udp-echo', [process.execPath, '-e', `const s = require('node:dgram').createSocket('udp4'); s.on('message', (m, r) => s.send(m, r.port, r.address)); s.bind(5005, '${linuxAddr}', () => console.log('{"event":"bound"}'));`]);
    await echo.waitFor('bound', () => true, 10_000);
    const web = hub.node('serve', join(ROOT, 'dist/js/examples/browser/serve.js'), ['--port', '0']);
    const url = String((await web.waitFor('listening', () => true, 10_000)).url);

    const wrapper = join(dir, 'chromium-in-ns');
    writeFileSync(wrapper, `#!/bin/sh\necho $$ > ${pidFile}\nexec ip netns exec ${hub.ns} ${CHROMIUM} "$@"\n`, { mode: 0o755 });
    // A fresh profile in the test's directory (playwright passes it as --user-data-dir).
    browser = await chromium.launchPersistentContext(join(dir, 'profile'), {
      executablePath: wrapper,
      viewport: { width: 720, height: 480 },
      timeout: 60_000,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const page = await browser.newPage();
    await page.goto(`${url}?server=${encodeURIComponent(`ws://127.0.0.1:${wsPort}/`)}&collector=${linuxAddr}:5005`, { timeout: 20_000 });
    await page.waitForFunction(() => document.getElementById('state')?.textContent === 'ready', undefined, { timeout: 20_000 });
    const address = String(await page.textContent('#address')).split('/')[0];
    assert.match(address, /^10\.\d+\.\d+\.\d+$/);
    assert.ok(await c1.ping(address, 3, 3), `ping ${address} from the Linux client's namespace`);
    await page.waitForFunction(() => Number(document.getElementById('pings')?.textContent) >= 3, undefined, { timeout: 10_000 });
    await page.waitForFunction(() => /ms$/.test(document.getElementById('rtt')?.textContent ?? ''), undefined, { timeout: 15_000 });
    await page.screenshot({ path: SHOT });
    assert.match(String(await page.textContent('#telemetry')), /^[1-9]\d* sent, [1-9]\d* echoed$/);

    // Idle: the same page without a collector sends nothing of its own, so only its
    // keepalives hold the link against the server's 4 s idle timeout.
    await page.goto(`${url}?server=${encodeURIComponent(`ws://127.0.0.1:${wsPort}/`)}`, { timeout: 20_000 });
    await page.waitForFunction(() => document.getElementById('state')?.textContent === 'ready', undefined, { timeout: 20_000 });
    const idleAddress = String(await page.textContent('#address')).split('/')[0];
    await page.waitForFunction(() => (globalThis as unknown as { svpnPage: { client: { stats: { keepalives: number } } } }).svpnPage.client.stats.keepalives >= 5, undefined, { timeout: 15_000 });
    assert.is(await page.textContent('#state'), 'ready', 'still up after 5 keepalive intervals of silence');
    assert.not.ok(server.lines.some((x) => x.event === 'disconnect' && x.reason === 'idle_timeout'), 'the server never reaped it');

    // The server killed and started again: the tab comes back with the address it had.
    await server.stop('SIGKILL');
    await page.waitForFunction(() => document.getElementById('state')?.textContent !== 'ready', undefined, { timeout: 10_000 });
    server = hub.server(SERVER_ARGS);
    await server.waitFor('listening', () => true, 10_000);
    await page.waitForFunction(() => document.getElementById('state')?.textContent === 'ready', undefined, { timeout: 20_000 });
    assert.is(String(await page.textContent('#address')).split('/')[0], idleAddress, 'the same address after the reconnect');
    assert.ok(await c1.ping(idleAddress, 3, 3), `ping ${idleAddress} after the reconnect`);
  } finally {
    await browser?.close().catch(() => {});
    // The browser's process group, whatever playwright did.
    if (existsSync(pidFile)) {
      try {
        process.kill(-Number(readFileSync(pidFile, 'utf8')), 'SIGKILL');
      } catch {}
    }
    await lab.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
