// Issue 14, "Long-running commands show progress on a terminal and stay
// quiet in CI": the benchmark's load generator (clients/bench/wsload) and the
// soak suite's progress helper (tests/soak/lib.mjs) draw a carriage-return
// line on stderr when it is a terminal (script(1) gives them one) and CI is
// not set; in a pipe, or with CI=true, nothing at all, and the result line
// on stdout is the same either way.
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test, assert, startPair } from './helpers.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wsgate-progress-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

// Built here, into a folder of this run: the release and ASan runs of this
// file may run at once, and neither touches clients/bench/.
let wsload = null;
function buildWsload() {
  if (wsload) return wsload;
  const out = path.join(tmp, 'wsload');
  execFileSync('cc', ['-O1', '-std=gnu11', '-Wall', '-Wextra', '-Werror', '-o', out,
    path.join(ROOT, 'clients/bench/wsload.c'), '-lcrypto', '-lpthread'], { stdio: 'pipe' });
  wsload = out;
  return out;
}

const sh = (s) => `'${s.replace(/'/g, "'\\''")}'`;

// Runs a command line; on a pseudo-terminal (script -qec) when tty is set.
// Resolves { code, stdout, stderr } (with a terminal, both in stdout).
function run(cmd, { tty, env = {} }) {
  const file = tty ? 'script' : 'sh';
  const args = tty ? ['-qec', cmd, '/dev/null'] : ['-c', cmd];
  const e = { PATH: process.env.PATH, HOME: tmp, ...env };
  return new Promise((resolve) => {
    execFile(file, args, { env: e, timeout: 15000, encoding: 'utf8' },
      (err, stdout, stderr) => resolve({ code: err ? err.code : 0, stdout, stderr }));
  });
}

const LINE = /\rwsload progress-test roundtrip: \d+\.\ds, 2 open, 0 failed, \d+ messages, \d+ msg\/s, \d+ conn\/s\x1b\[K/;

test('issue 14: wsload shows a progress line on a terminal, none in a pipe or with CI=true', async () => {
  const bin = buildWsload();
  const { gw } = await startPair();
  const cmd = `${sh(bin)} roundtrip --port ${gw.port} -c 2 -d 1.2 --warmup 0.1 --label progress-test`;

  const onTty = await run(cmd, { tty: true });
  assert.equal(onTty.code, 0, onTty.stdout);
  const lines = onTty.stdout.match(new RegExp(LINE.source, 'g')) ?? [];
  assert.ok(lines.length >= 2, `refreshed a few times a second: ${JSON.stringify(onTty.stdout)}`);
  const counts = lines.map((l) => Number(/ (\d+) messages/.exec(l)[1]));
  assert.ok(counts.at(-1) > counts[0], `the message count grows: ${counts}`);
  // erased before the result, which starts on a clean line
  assert.match(onTty.stdout, /\r\x1b\[Kmode=roundtrip target=progress-test ops=\d+/);

  const piped = await run(cmd, { tty: false });
  assert.equal(piped.code, 0, piped.stderr);
  assert.equal(piped.stderr, '', 'no progress output when stderr is not a terminal');
  assert.match(piped.stdout, /^mode=roundtrip target=progress-test ops=\d+ .* p99_us=\d+\n$/);

  const ci = await run(cmd, { tty: true, env: { CI: 'true' } });
  assert.equal(ci.code, 0, ci.stdout);
  // (the terminal ends lines with \r\n; a progress line is a bare \r)
  assert.doesNotMatch(ci.stdout, /\r(?!\n)|\x1b\[K|wsload progress-test/, 'no progress output in CI');
  assert.match(ci.stdout, /^mode=roundtrip target=progress-test ops=\d+ /);
});

test('issue 14: the soak suite\'s progress helper draws on a terminal only, never with CI=true', async () => {
  const lib = path.join(ROOT, 'tests/soak/lib.mjs');
  const script = path.join(tmp, 'soak-progress.mjs');
  fs.writeFileSync(script, `import { startProgress, progressWanted } from ${JSON.stringify(lib)};
let n = 0;
const p = startProgress(() => \`soak churn round 1: 00:0\${n} / 01:00, \${n * 10} connections, 0 lost\`);
const t = setInterval(() => { n++; }, 100);
setTimeout(() => { clearInterval(t); p.stop(); console.log('done wanted=' + progressWanted()); }, 900);
`);
  const cmd = `${sh(process.execPath)} ${sh(script)}`;

  const onTty = await run(cmd, { tty: true });
  assert.equal(onTty.code, 0, onTty.stdout);
  assert.ok((onTty.stdout.match(/\rsoak churn round 1: 00:0\d \/ 01:00, \d+ connections, 0 lost\x1b\[K/g) ?? []).length >= 2,
    JSON.stringify(onTty.stdout));
  assert.match(onTty.stdout, /\r\x1b\[Kdone wanted=true/);

  const piped = await run(cmd, { tty: false });
  // (lib.mjs loads node:test through the e2e helpers: its empty TAP summary)
  assert.equal(piped.stderr, '');
  assert.match(piped.stdout, /^done wanted=false$/m);
  assert.doesNotMatch(piped.stdout, /soak churn|\r|\x1b\[K/);

  for (const CI of ['true', '1']) {
    const ci = await run(cmd, { tty: true, env: { CI } });
    assert.doesNotMatch(ci.stdout, /soak churn|\x1b\[K/, `nothing with CI=${CI}`);
    assert.match(ci.stdout, /done wanted=false/);
  }
  // CI=false (some services set it so for local runs) does not silence it
  const notCi = await run(cmd, { tty: true, env: { CI: 'false' } });
  assert.match(notCi.stdout, /\rsoak churn round 1: /);
});
