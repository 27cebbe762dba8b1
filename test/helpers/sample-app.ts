import { execFile } from 'node:child_process';
import { cp, readdir, readFile, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The sample application the local demo pushes and deploys (it becomes the pushed repository's root). */
export const SAMPLE_APP_DIR = fileURLToPath(new URL('../../examples/hello-service/', import.meta.url));

/** Copies the sample app into `targetDir` (created as needed), leaving out `node_modules` and `.git`. */
export async function copySampleApp(targetDir: string): Promise<string> {
  await cp(SAMPLE_APP_DIR, targetDir, {
    recursive: true,
    filter: (source) => !['node_modules', '.git'].includes(basename(source)),
  });
  return targetDir;
}

const HEALTHY_ANSWER = "sendJson(response, 200, { status: 'ok', environment, version });";
const BROKEN_ANSWER = "sendJson(response, 500, { status: 'broken', environment, version });";

/**
 * Makes a real, breaking change to the copy of the sample app in `dir`: `/health` answers 500, so the app's
 * own tests fail (and with them the image stage). Throws when server.mjs no longer holds the line it edits.
 */
export async function breakSampleApp(dir: string): Promise<void> {
  const file = join(dir, 'server.mjs');
  const source = await readFile(file, 'utf8');
  if (!source.includes(HEALTHY_ANSWER)) {
    throw new Error(
      `breakSampleApp: ${file} does not contain the /health answer it edits: ${HEALTHY_ANSWER}`,
    );
  }
  await writeFile(file, source.replace(HEALTHY_ANSWER, BROKEN_ANSWER));
}

/** The state and command line of a process, or undefined when there is none. */
async function processInfo(pid: number): Promise<{ state: string; command: string } | undefined> {
  try {
    process.kill(pid, 0);
  } catch {
    return undefined;
  }
  try {
    const { stdout } = await run('ps', ['-o', 'stat=', '-o', 'command=', '-p', String(pid)]);
    const match = /^\s*(\S+)\s+(.*)$/s.exec(stdout.trim());
    return match?.[1] && match[2] !== undefined ? { state: match[1], command: match[2] } : undefined;
  } catch {
    // ps exits 1 when the process is gone.
    return undefined;
  }
}

/** True while `pid` is a live process (a zombie, exited but not yet reaped, counts as stopped). */
export async function isRunning(pid: number): Promise<boolean> {
  const info = await processInfo(pid);
  return info !== undefined && !info.state.startsWith('Z');
}

/** Waits until `pid` has stopped, or throws after `timeoutMs`. */
export async function waitUntilStopped(pid: number, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (await isRunning(pid)) {
    if (Date.now() > deadline) {
      throw new Error(`Process ${pid} was still running after ${timeoutMs} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Stops every instance the sample app's deploy stage started under a deploy folder (`STEPLINE_DEPLOY_DIR`,
 * `<state>/deploy` for a runtime: each environment's `service.pid`), and waits until they have exited.
 * Returns the pids it stopped. For test clean-up.
 */
export async function stopSampleAppInstances(deployDir: string): Promise<number[]> {
  const environmentsDir = join(deployDir, 'environments');
  const environments = await readdir(environmentsDir).catch(() => []);
  const stopped: number[] = [];
  for (const environment of environments) {
    const pidText = await readFile(join(environmentsDir, environment, 'service.pid'), 'utf8').catch(() => '');
    const pid = Number(pidText.trim());
    if (!Number.isInteger(pid) || pid <= 0) continue;
    const info = await processInfo(pid);
    // Only a live process started from this environment's release folder: never another program.
    if (!info || info.state.startsWith('Z') || !info.command.includes(join(environmentsDir, environment))) {
      continue;
    }
    process.kill(pid, 'SIGKILL');
    await waitUntilStopped(pid);
    stopped.push(pid);
  }
  return stopped;
}
