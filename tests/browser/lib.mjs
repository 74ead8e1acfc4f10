// What the browser tests share: paths, Debian's Chromium through
// playwright-core, child processes that must not outlive the test, and
// screenshots in test-artifacts/.
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const WSGATE_BIN = path.resolve(ROOT, process.env.WSGATE_BIN || 'build/wsgate');
export const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
export const ARTIFACTS = path.join(ROOT, 'test-artifacts');
export const WAIT_MS = 10000; // any single wait

/** Headless Chromium; QUIC off unless the test wants it (origins tests leave it on). */
export function launchBrowser({ quic = false } = {}) {
  const args = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'];
  if (!quic) args.splice(3, 0, '--disable-quic');
  return chromium.launch({ executablePath: CHROMIUM, args, timeout: WAIT_MS });
}

/** Saves a page's screenshot in test-artifacts/. */
export async function screenshot(page, file) {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, file), fullPage: true });
}

/** Child processes, each killed when the test process exits whatever happens. */
export function processGroup() {
  const procs = [];
  process.on('exit', () => { for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL'); });
  return {
    procs,
    /** Spawns a process and resolves once `pattern` appears on its output (stdout or stderr). */
    launch(cmd, args, env, pattern, onOutput) {
      const proc = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
      procs.push(proc);
      let out = '';
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${cmd} did not start in ${WAIT_MS} ms:\n${out}`)), WAIT_MS);
        const onData = (d) => {
          out += d;
          onOutput(String(d));
          const m = pattern.exec(out);
          if (m) { clearTimeout(timer); resolve({ proc, match: m }); }
        };
        proc.stdout.on('data', onData);
        proc.stderr.on('data', onData);
        proc.on('error', (e) => { clearTimeout(timer); reject(new Error(`cannot run ${cmd}: ${e.message}`)); });
        proc.on('exit', (code, sig) => { clearTimeout(timer); reject(new Error(`${cmd} exited (${code ?? sig}) before starting:\n${out}`)); });
      });
    },
    stopAll() { return Promise.all(procs.map(stop)); },
  };
}

/** SIGTERM, then SIGKILL after 5 s. */
export function stop(proc) {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => proc.kill('SIGKILL'), 5000);
    proc.on('exit', () => { clearTimeout(kill); resolve(); });
    proc.kill('SIGTERM');
  });
}

/** A free loopback port (for a listener another process must know before it starts). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    }).on('error', reject);
  });
}
