// The consumer install, as it really happens (npm run test:install; CI runs it after
// npm run release:pack, which leaves the tarballs and release/manifest.json):
//
// - a local registry (Verdaccio) on 127.0.0.1, on a free port, with a throw-away storage: the
//   release tarballs are published to it; other packages (node-addon-api, npm@12) come
//   through it from registry.npmjs.org;
// - `siglip-kernels` installed by name into fresh projects with the compiler hidden (PATH holds
//   node, npm, npx and sh only: no g++, cc or make): with this npm, with --ignore-scripts, and
//   with npm 12 (npx npm@12), whose default blocks dependencies' install scripts;
// - in each: nothing was compiled, no install-script warning names this package, `require`
//   and `import` both compute a loss (the same as this clone's build), and backendInfo()
//   names the platform package; the CUDA package loads on this GPU-less machine and the CPU
//   package is used, with the reason; `npx siglip-kernels bench --quick` prints its table
//   and writes its JSON; without the platform packages the error says how to build;
// - the installed binaries' glibc floor, and the main tarball's contents and size.
//
// The registry is stopped at the end, pass or fail (test.after.always, and on exit).
// Without SIGLIP_INSTALL_TEST=1 (plain `npm test`) the file only says how to run it.
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

import test from 'ava';

import { floorViolations } from './helpers/elf';

const root = path.resolve(__dirname, '..');
const enabled = process.env['SIGLIP_INSTALL_TEST'] === '1';

interface ReleaseManifest {
  version: string;
  platforms: Array<{ name: string; dir: string; kind: 'cpu' | 'cuda'; os: string; cpu: string; file: string; size: number }>;
  main: { name: string; version: string; file: string; size: number; unpackedSize: number; files: string[] };
}

if (!enabled) {
  test('consumer install (npm run test:install runs it, after npm run release:pack)', (t) => {
    t.pass('skipped: set SIGLIP_INSTALL_TEST=1 (npm run test:install)');
  });
} else {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { GLIBC_FLOOR, ADDON_FILE } = require('../scripts/release/platforms.js') as { GLIBC_FLOOR: string; ADDON_FILE: string };
  const manifestFile = path.join(root, 'release', 'manifest.json');
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'siglip-install-'));
  const hiddenBin = path.join(work, 'bin');
  const npmrc = path.join(work, 'npmrc');
  let registry: ChildProcess | undefined;
  let registryUrl = '';
  let registryLog = '';
  let manifest: ReleaseManifest;

  const stopRegistry = (): void => {
    if (registry && registry.exitCode === null && registry.signalCode === null) registry.kill('SIGKILL');
  };
  process.on('exit', stopRegistry);

  const freePort = (): Promise<number> =>
    new Promise((resolve, reject) => {
      const server = net.createServer();
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const { port } = server.address() as net.AddressInfo;
        server.close(() => resolve(port));
      });
    });

  /** The environment of a consumer: PATH has node, npm and npx only; npm reads our npmrc and cache. */
  const consumerEnv = (): NodeJS.ProcessEnv => {
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) {
      if (!/^(npm_|NODE_OPTIONS$|SIGLIP_|INIT_CWD$|PATH$)/i.test(k)) env[k] = v;
    }
    return {
      ...env,
      PATH: hiddenBin,
      npm_config_userconfig: npmrc,
      npm_config_cache: path.join(work, 'npm-cache'),
      npm_config_update_notifier: 'false',
      npm_config_fund: 'false',
      npm_config_audit: 'false',
      npm_config_yes: 'true',
    };
  };

  const run = (cwd: string, command: string, args: string[], env = consumerEnv()): { status: number | null; output: string; seconds: number } => {
    const started = Date.now();
    const result = spawnSync(command, args, { cwd, env, encoding: 'utf8', maxBuffer: 1 << 26 });
    const output = `${result.stdout ?? ''}${result.stderr ?? ''}${result.error ? `\n${result.error.message}` : ''}`;
    return { status: result.status, output, seconds: (Date.now() - started) / 1000 };
  };

  test.before(async () => {
    if (!fs.existsSync(manifestFile)) throw new Error(`${manifestFile} is missing: run npm run release:pack first`);
    manifest = JSON.parse(fs.readFileSync(manifestFile, 'utf8')) as ReleaseManifest;

    // PATH for consumers: node, npm, npx and sh (npx runs bins through it), nothing else (no
    // g++, cc, make, python).
    fs.mkdirSync(hiddenBin);
    const which = (name: string): string => execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim();
    for (const tool of ['node', 'npm', 'npx', 'sh']) fs.symlinkSync(fs.realpathSync(which(tool)), path.join(hiddenBin, tool));

    // The registry.
    const port = await freePort();
    registryUrl = `http://127.0.0.1:${port}/`;
    const config = [
      `storage: ${JSON.stringify(path.join(work, 'storage'))}`,
      'auth:',
      '  htpasswd:',
      `    file: ${JSON.stringify(path.join(work, 'htpasswd'))}`,
      '    max_users: 10',
      'uplinks:',
      '  npmjs:',
      '    url: https://registry.npmjs.org/',
      '    timeout: 60s',
      'packages:',
      "  '@siglip-kernels/*':",
      '    access: $all',
      '    publish: $authenticated',
      "  'siglip-kernels':",
      '    access: $all',
      '    publish: $authenticated',
      "  '**':",
      '    access: $all',
      '    proxy: npmjs',
      'max_body_size: 200mb', // the CUDA package is ~13 MB packed (Verdaccio's default limit is 10 MB)
      'web:',
      '  enable: false',
      'log: { type: stdout, format: pretty, level: warn }',
      '',
    ].join('\n');
    fs.writeFileSync(path.join(work, 'verdaccio.yaml'), config);
    const bin = require.resolve('verdaccio/bin/verdaccio', { paths: [root] });
    registry = spawn(process.execPath, [bin, '--config', path.join(work, 'verdaccio.yaml'), '--listen', `127.0.0.1:${port}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    registry.stdout!.on('data', (chunk: Buffer) => (registryLog += chunk.toString()));
    registry.stderr!.on('data', (chunk: Buffer) => (registryLog += chunk.toString()));
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (registry.exitCode !== null) throw new Error(`verdaccio exited (${registry.exitCode}):\n${registryLog}`);
      try {
        if ((await fetch(`${registryUrl}-/ping`)).ok) break;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`verdaccio did not answer on ${registryUrl} in 60 s:\n${registryLog}`);
      await new Promise((r) => setTimeout(r, 250));
    }

    // A user, and every tarball published (platform packages first, as RELEASING.md says).
    const user = await fetch(`${registryUrl}-/user/org.couchdb.user:siglip`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'siglip', password: 'siglip-install-test', email: 'test@example.invalid' }),
    });
    const { token } = (await user.json()) as { token?: string };
    if (!token) throw new Error(`verdaccio gave no token (${user.status})`);
    fs.writeFileSync(npmrc, `registry=${registryUrl}\n//127.0.0.1:${port}/:_authToken=${token}\n`);
    for (const tarball of [...manifest.platforms.map((p) => p.file), manifest.main.file]) {
      const r = run(root, 'npm', ['publish', path.join(root, tarball), '--ignore-scripts', '--registry', registryUrl], {
        ...process.env,
        npm_config_userconfig: npmrc,
      });
      if (r.status !== 0) throw new Error(`npm publish ${tarball} failed:\n${r.output}`);
    }
  });

  test.after.always(async () => {
    if (registry && registry.exitCode === null && registry.signalCode === null) {
      const exited = new Promise((resolve) => registry!.once('exit', resolve));
      registry.kill('SIGTERM');
      const timer = setTimeout(() => registry!.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    fs.rmSync(work, { recursive: true, force: true });
  });

  // The loss this clone's own build (build/Release: this machine's compiler) computes, to
  // compare the installed packages' against.
  const CHECK_INPUT = 'const data = Float32Array.from({ length: 48 }, (_, i) => Math.sin(i + 1)); ';
  const expectedLoss = (): number => {
    const out = execFileSync(
      process.execPath,
      ['-e', `${CHECK_INPUT} const s = require(${JSON.stringify(path.join(root, 'dist', 'index.js'))}); const x = s.matrix(data, 4, 12); console.log(s.sigmoidLossSync(x, x, { threads: 1 }))`],
      { encoding: 'utf8', env: { ...process.env, SIGLIP_KERNELS_BINARY: '', SIGLIP_FORCE_CPU: '1' } },
    );
    return Number(out.trim());
  };

  interface Report {
    binaryPath: string;
    binaryReason: string;
    cuda: { available: boolean; reason: string };
    loss: number;
  }

  const REQUIRE_CHECK =
    `${CHECK_INPUT} const s = require('siglip-kernels'); const i = s.backendInfo(); const x = s.matrix(data, 4, 12); ` +
    'console.log(JSON.stringify({ binaryPath: i.binaryPath, binaryReason: i.binaryReason, cuda: i.cuda, loss: s.sigmoidLossSync(x, x, { threads: 1 }) }))';
  const IMPORT_CHECK =
    `import { backendInfo, matrix, sigmoidLossSync } from 'siglip-kernels'; ${CHECK_INPUT} const i = backendInfo(); const x = matrix(data, 4, 12); ` +
    'console.log(JSON.stringify({ binaryPath: i.binaryPath, binaryReason: i.binaryReason, cuda: i.cuda, loss: sigmoidLossSync(x, x, { threads: 1 }) }))';

  /** A platform package npm installs here (os and cpu; glibc is assumed, as on every CI machine). */
  const forThisMachine = (p: { os: string; cpu: string }): boolean => p.os === process.platform && p.cpu === process.arch;

  const lastJson = (output: string): Report => JSON.parse(output.trim().split('\n').pop() ?? '{}') as Report;

  /** Installs into a fresh project and checks everything a consumer sees. */
  const installAndCheck = (t: import('ava').ExecutionContext, mode: 'npm' | 'ignore-scripts' | 'npm12'): string => {
    const dir = path.join(work, `consumer-${mode}`);
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: `consumer-${mode}`, version: '1.0.0', private: true }, null, 2));

    // The compiler really is hidden.
    const compilers = run(dir, '/bin/sh', ['-c', 'command -v g++ || command -v cc || command -v make || command -v c++ || true']);
    t.is(compilers.output.trim(), '', 'no compiler on the consumer PATH');

    const spec = `siglip-kernels@${manifest.main.version}`;
    const args =
      mode === 'npm12' ? ['--yes', 'npm@12', 'install', spec] : mode === 'ignore-scripts' ? ['install', spec, '--ignore-scripts'] : ['install', spec];
    if (mode === 'npm12') {
      const version = run(dir, 'npx', ['--yes', 'npm@12', '--version']);
      t.regex(version.output.trim(), /^12\.\d+\.\d+$/m, `npx npm@12 is npm 12: ${version.output.trim()}`);
    }
    const install = run(dir, mode === 'npm12' ? 'npx' : 'npm', args);
    t.log(`${mode}: ${mode === 'npm12' ? 'npx npm@12' : 'npm'} ${args.slice(mode === 'npm12' ? 2 : 0).join(' ')}: exit ${install.status}, ${install.seconds.toFixed(1)} s`);
    t.is(install.status, 0, install.output);
    // npx npm@12 on Node 20 warns (EBADENGINE) about npm 12's own packages (node-gyp among
    // them: npm bundles it); those lines are about npm, not this install.
    const lines = install.output.split('\n').filter((line) => !/EBADENGINE/.test(line));
    const scriptWarnings = lines.filter((line) => /siglip-kernels/.test(line) && /script|gyp|approve|rebuild/i.test(line));
    t.deepEqual(scriptWarnings, [], 'no install-script warning names this package');
    t.deepEqual(lines.filter((line) => /install-scripts|allowScripts/.test(line)), [], 'npm blocked no install script at all');
    t.deepEqual(lines.filter((line) => /gyp (info|ERR)|node-gyp|cmake-js|CXX\(target\)/i.test(line)), [], 'nothing was compiled');

    const pkgDir = path.join(dir, 'node_modules', 'siglip-kernels');
    t.false(fs.existsSync(path.join(pkgDir, 'build')), 'no build/ in the installed package');
    t.false(fs.existsSync(path.join(pkgDir, 'build-cuda')), 'no build-cuda/ in the installed package');
    for (const p of manifest.platforms) {
      const binary = path.join(dir, 'node_modules', ...p.name.split('/'), ADDON_FILE);
      if (!forThisMachine(p)) {
        t.false(fs.existsSync(binary), `${p.name} (${p.os}-${p.cpu}) skipped by npm on ${process.platform}-${process.arch}`);
        continue;
      }
      t.true(fs.existsSync(binary), `${p.name} installed by npm (os/cpu/libc match)`);
      if (fs.existsSync(binary)) t.deepEqual(floorViolations(binary, GLIBC_FLOOR), [], `${p.name}: glibc floor ${GLIBC_FLOOR}`);
    }

    const expected = expectedLoss();
    const fromRequire = run(dir, 'node', ['-e', REQUIRE_CHECK]);
    t.is(fromRequire.status, 0, fromRequire.output);
    fs.writeFileSync(path.join(dir, 'check.mjs'), IMPORT_CHECK);
    const fromImport = run(dir, 'node', ['check.mjs']);
    t.is(fromImport.status, 0, fromImport.output);
    const cpuPackage = manifest.platforms.find((p) => p.kind === 'cpu' && forThisMachine(p))!;
    const cudaPackage = manifest.platforms.find((p) => p.kind === 'cuda' && forThisMachine(p));
    for (const [how, r] of [['require', lastJson(fromRequire.output)], ['import', lastJson(fromImport.output)]] as const) {
      t.true(Math.abs(r.loss - expected) <= 1e-6 * Math.abs(expected), `${how}: loss ${r.loss} vs ${expected}`);
      if (r.cuda.available) {
        t.true(r.binaryPath.includes(`${cudaPackage!.name}/`), `${how}: with a GPU the CUDA package runs: ${r.binaryPath}`);
        continue;
      }
      t.true(r.binaryPath.startsWith(path.join(dir, 'node_modules', ...cpuPackage.name.split('/'))), `${how}: ${r.binaryPath}`);
      t.regex(r.binaryReason, new RegExp(`using the CPU build: the prebuilt package ${cpuPackage.name}@${manifest.main.version.replace(/\./g, '\\.')} \\(no local build`));
      if (cudaPackage) {
        // No GPU here: the CUDA package loads, says why it is not used, and the CPU package runs.
        t.regex(r.cuda.reason, new RegExp(`^the CUDA package ${cudaPackage.name} loaded but no GPU answered: .+`));
      } else {
        t.regex(r.cuda.reason, /CUDA package .* is not installed/);
      }
    }
    t.log(`${mode}: ${lastJson(fromRequire.output).binaryReason}`);
    return dir;
  };

  test.serial('npm (this version): installs by name with no compiler; require and import compute the loss from the platform package', (t) => {
    const dir = installAndCheck(t, 'npm');

    // The CUDA package alone (SIGLIP_KERNELS_BINARY): loads without a GPU and runs the CPU work.
    const cuda = manifest.platforms.find((p) => p.kind === 'cuda' && forThisMachine(p));
    if (cuda) {
      const file = path.join(dir, 'node_modules', ...cuda.name.split('/'), ADDON_FILE);
      const r = run(dir, 'node', ['-e', REQUIRE_CHECK], { ...consumerEnv(), SIGLIP_KERNELS_BINARY: file });
      t.is(r.status, 0, r.output);
      const report = lastJson(r.output);
      t.is(report.binaryPath, file);
      t.true(Number.isFinite(report.loss));
      if (!report.cuda.available) {
        t.regex(report.binaryReason, /a CUDA build with no GPU answering: it runs the CPU work/);
        t.regex(report.cuda.reason, /^no GPU answered: .+/);
      }
      t.log(`CUDA package alone: ${report.binaryReason}; cuda.reason: ${report.cuda.reason}`);
    } else {
      t.log('no CUDA package in this release (release:pack found no nvcc)');
    }

    // The prebuilt CPU addon has no MPI: Ring.mpi() says to build from source.
    const mpi = run(dir, 'node', ['-e', "require('siglip-kernels').Ring.mpi().then(() => console.log('resolved'), (e) => console.log(e.code + ': ' + e.message))"]);
    t.regex(mpi.output, /^ERR_SIGLIP_NO_MPI: .*npx siglip-kernels build/m);

    // npx siglip-kernels bench --quick (N narrowed to 512 to keep CI short): table and JSON.
    const out = path.join(dir, 'bench.json');
    const bench = run(dir, 'npx', ['siglip-kernels', 'bench', '--quick', '--n', '512', '--repeats', '1', '--out', out]);
    t.is(bench.status, 0, bench.output);
    t.regex(bench.output, /method\s+pass\s+N\s+D\s+time \(ms\)/);
    t.regex(bench.output, /fused sigmoid\s+fwd\+bwd\s+512/);
    t.regex(bench.output, /naive softmax\s+fwd\s+512/);
    const json = JSON.parse(fs.readFileSync(out, 'utf8')) as { cases: Array<{ status: string; medianMs?: number }>; backend: { binaryPath: string } };
    t.true(json.cases.length >= 4 && json.cases.every((c) => c.status === 'ok' && (c.medianMs ?? 0) > 0), 'every case ran');
    t.regex(json.backend.binaryPath, /node_modules[\\/]@siglip-kernels[\\/]/);
    t.log(`bench: ${bench.seconds.toFixed(1)} s, ${json.cases.length} cases`);

    // Without the platform packages: an error that says how to build, not a stack trace.
    fs.rmSync(path.join(dir, 'node_modules', '@siglip-kernels'), { recursive: true, force: true });
    const missing = run(dir, 'npx', ['siglip-kernels', 'info']);
    t.not(missing.status, 0);
    t.regex(missing.output, /npx siglip-kernels build/);
    t.regex(missing.output, /@siglip-kernels\/linux-x64-gnu is not installed/);
    t.notRegex(missing.output, /^\s+at /m, 'no stack trace');
  });

  test.serial('npx siglip-kernels build: a build from source in the installed package is used before the platform package', (t) => {
    const dir = path.join(work, 'consumer-build');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'consumer-build', version: '1.0.0', private: true }));
    t.is(run(dir, 'npm', ['install', `siglip-kernels@${manifest.main.version}`]).status, 0);
    // This time with the machine's PATH (compiler, make, python3); MPI left out to keep it short.
    // node-gyp needs Node's headers: this machine's npm config may point at them (nodedir),
    // where the consumer npmrc of this test does not.
    const nodedir = execFileSync('npm', ['config', 'get', 'nodedir'], { encoding: 'utf8' }).trim();
    const env = { ...consumerEnv(), PATH: process.env['PATH'] ?? '', SIGLIP_MPI: 'off', JOBS: '2', ...(/^(undefined|null|)$/.test(nodedir) ? {} : { npm_config_nodedir: nodedir }) };
    const build = run(dir, 'npx', ['siglip-kernels', 'build'], env);
    t.is(build.status, 0, build.output);
    t.log(`npx siglip-kernels build: ${build.seconds.toFixed(1)} s`);
    t.regex(build.output, /now loads .*node_modules[\\/]siglip-kernels[\\/]build[\\/]Release[\\/]siglip_kernels\.node/);
    const r = lastJson(run(dir, 'node', ['-e', REQUIRE_CHECK], env).output);
    t.regex(r.binaryReason, /using the CPU build: compiled locally by node-gyp \(build\/Release\)/);
    t.true(Math.abs(r.loss - expectedLoss()) <= 1e-6 * Math.abs(r.loss));
  });

  test.serial('npm --ignore-scripts: the same install, nothing to skip', (t) => {
    installAndCheck(t, 'ignore-scripts');
  });

  test.serial('npm --omit=optional: no platform package, and the error names the one to add and how to build', (t) => {
    const dir = path.join(work, 'consumer-omit');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'consumer-omit', version: '1.0.0', private: true }));
    const install = run(dir, 'npm', ['install', `siglip-kernels@${manifest.main.version}`, '--omit=optional']);
    t.is(install.status, 0, install.output);
    t.false(fs.existsSync(path.join(dir, 'node_modules', '@siglip-kernels')));
    const r = run(dir, 'node', ['-e', "try { require('siglip-kernels').backendInfo() } catch (e) { console.log(e.code); console.log(e.message) }"]);
    t.regex(r.output, /^ERR_SIGLIP_ADDON_LOAD$/m);
    t.regex(r.output, /`npm install @siglip-kernels\/linux-x64-gnu` adds it/);
    t.regex(r.output, /npx siglip-kernels build /);
  });

  test.serial('npm 12 (npx npm@12, install scripts blocked by default): the same install, no warning', (t) => {
    installAndCheck(t, 'npm12');

    // The control: npm 12 does warn about a dependency whose install script it blocks, in the
    // words the checks above look for, so their silence means something.
    const control = path.join(work, 'control');
    fs.mkdirSync(path.join(control, 'dep'), { recursive: true });
    fs.mkdirSync(path.join(control, 'app'));
    fs.writeFileSync(path.join(control, 'dep', 'package.json'), JSON.stringify({ name: 'dep-with-script', version: '1.0.0', scripts: { install: 'node -e 0' } }));
    fs.writeFileSync(path.join(control, 'app', 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
    const blocked = run(path.join(control, 'app'), 'npx', ['--yes', 'npm@12', 'install', '../dep']);
    t.is(blocked.status, 0, blocked.output);
    t.regex(blocked.output, /install-scripts.*\n.*dep-with-script@1\.0\.0 \(install: node -e 0\)/);
  });

  test.serial('linux-arm64-gnu: the packed binary under qemu-aarch64 in an arm64 Node: NEON kernels, the losses of the x64 build', (t) => {
    const arm = manifest.platforms.find((p) => p.cpu === 'arm64');
    if (!arm) {
      t.pass('no linux-arm64-gnu tarball in this release (npm run release:pack -- --only … left it out)');
      return;
    }
    const dir = path.join(work, 'arm64');
    fs.mkdirSync(dir);
    execFileSync('tar', ['-xzf', path.join(root, arm.file), '-C', dir]);
    const binary = path.join(dir, 'package', ADDON_FILE);
    t.deepEqual(floorViolations(binary, GLIBC_FLOOR), [], `${arm.name}: glibc floor ${GLIBC_FLOOR}`);
    t.regex(execFileSync('readelf', ['-h', binary], { encoding: 'utf8' }), /Machine:\s+AArch64/);
    const nodeRoot = process.env['SIGLIP_ARM64_NODE_ROOT'] ?? path.join(os.homedir(), '.cache', 'siglip-kernels', 'debian12-arm64-node');
    // Sigmoid (fused, naive) and softmax (chunked, naive) losses with gradients, on 97 x 64 inputs.
    const script =
      `const s = require(${JSON.stringify(path.join(root, 'dist', 'index.js'))}); const N = 97, D = 64; ` +
      'const x = s.normalizeRows(s.matrix(Float32Array.from({ length: N * D }, (_, i) => Math.sin(i * 0.37 + 1)), N, D)).normalized; ' +
      'const y = s.normalizeRows(s.matrix(Float32Array.from({ length: N * D }, (_, i) => Math.cos(i * 0.11 + 2)), N, D)).normalized; ' +
      "const out = { simd: s.backendInfo().simd, arch: process.arch }; for (const [name, f, methods] of [['sigmoid', s.sigmoidLossWithGradSync, ['fused', 'naive']], ['softmax', s.softmaxLossWithGradSync, ['chunked', 'naive']]]) " +
      'for (const method of methods) { const r = f(x, y, { method, threads: 2 }); const g = r.grad.image.data ?? r.grad.image; ' +
      'out[name + "-" + method] = { loss: r.loss, dX: Math.sqrt(g.reduce((p, v) => p + v * v, 0)), ds: r.grad.logitScale }; } console.log(JSON.stringify(out));';
    type Losses = Record<string, { loss: number; dX: number; ds: number }> & { simd: string; arch: string };
    const x64 = JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', env: { ...process.env, SIGLIP_KERNELS_BINARY: '', SIGLIP_FORCE_CPU: '1' } })) as Losses;
    for (const simd of ['', 'generic']) {
      const started = Date.now();
      const armOut = execFileSync('qemu-aarch64', ['-L', nodeRoot, path.join(nodeRoot, 'usr', 'bin', 'node'), '-e', script], {
        encoding: 'utf8',
        env: { ...process.env, SIGLIP_KERNELS_BINARY: binary, SIGLIP_SIMD: simd },
      });
      const a64 = JSON.parse(armOut) as Losses;
      t.is(a64.arch, 'arm64');
      t.is(a64.simd, simd === '' ? 'neon' : 'generic');
      for (const key of ['sigmoid-fused', 'sigmoid-naive', 'softmax-chunked', 'softmax-naive']) {
        // SPEC.md's tolerances (loss 1e-5, gradients 1e-4 relative): the kernel sets sum in
        // different orders (the generic set's ds differs from AVX-512's by ~1e-5 here).
        for (const [field, tolerance] of [['loss', 1e-5], ['dX', 1e-4], ['ds', 1e-4]] as const) {
          const want = x64[key]![field], got = a64[key]![field];
          t.true(Math.abs(got - want) <= tolerance * Math.abs(want), `${a64.simd} ${key} ${field}: ${got} vs x64 ${want}`);
        }
      }
      t.log(`arm64 ${a64.simd} under qemu: ${((Date.now() - started) / 1000).toFixed(1)} s, losses as on x64 (${x64.simd})`);
    }
  });

  test.serial('the main tarball: no build directories, tests or binaries; its size', (t) => {
    const forbidden = manifest.main.files.filter((f) => /^(build[^/]*|prebuilds|release|test|bench|examples|node_modules|npm)\/|\.node$/.test(f));
    t.deepEqual(forbidden, []);
    t.true(manifest.main.files.includes('dist/bench/run.js'), 'the compiled benchmark ships');
    const sizes = [manifest.main, ...manifest.platforms].map((p) => `${p.name}: ${(p.size / 1e6).toFixed(2)} MB`).join(', ');
    t.log(`tarballs: ${sizes}`);
    t.true(manifest.main.size < 2e6);
  });
}
