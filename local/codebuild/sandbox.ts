import { execFile } from 'node:child_process';
import { access, constants } from 'node:fs/promises';

/**
 * Where a local build's shell runs: inside bubblewrap when it is installed, else on the host with the
 * operator's authority.
 *
 * On AWS a build runs in CodeBuild's container and can reach nothing of the orchestrator but what its
 * role allows. Locally a build runs on the operator's machine as the operator; without a sandbox it could
 * read the state folder (the control token, the webhook secret, the approval key and links) and act as
 * the operator. With Debian's `bubblewrap` (`/usr/bin/bwrap`), every build shell (and so every service it
 * starts) runs with:
 *
 * - a user namespace of its own (`--unshare-user`, the operator's uid mapped to itself) and no
 *   capabilities (`--cap-drop ALL`; bubblewrap started by root keeps them otherwise): the kernel then
 *   refuses the build any look into a process outside its namespace through /proc — the
 *   `/proc/<pid>/root` of stepline, or of bubblewrap's own outer process (which has no capabilities either
 *   and sees the host's file system, where the state folder is not hidden), their memory and environment.
 *   Signals still pass (same uid): a deploy stops the instance an earlier deploy started;
 * - the whole file system read-only (`--ro-bind / /`), a fresh `/dev` and `/proc`;
 * - a private, empty `/tmp` (but for the tools of the PATH found under it, read-only: see toolsUnderTmp);
 * - the state folder hidden under an empty tmpfs;
 * - writable again only what the build owns: its checkout, the runner's own files for this build, and the
 *   deploy folder (`STEPLINE_DEPLOY_DIR`: images and environments the sample app's stages share);
 * - the network shared (a build talks to the services it deployed over loopback), the process IDs shared
 *   (stepline and its reaper end what a build started; the sample app stops its previous instance).
 *
 * No new session (`--new-session`): the build's shell must stay in the process group stepline kills on a
 * timeout or stop; its input is a pipe, not a terminal, so there is no terminal to push keys into.
 */

/** The bubblewrap binary Debian's `bubblewrap` package installs. */
export const BWRAP = '/usr/bin/bwrap';

/** How the runtime chooses: `auto` (bubblewrap when it works) or `off` (`STEPLINE_SANDBOX=off`). */
export type SandboxMode = 'auto' | 'off';

/** Turns a build shell's command line into the one to spawn. */
export type SandboxWrap = (
  command: string,
  args: string[],
  writable: { workDir: string; runnerDir: string },
) => { command: string; args: string[] };

export interface Sandbox {
  kind: 'bwrap' | 'none';
  /** What start-up says about it, when there is something to say (no sandbox). */
  note?: string;
  /** Undefined without a sandbox: the shell is spawned as it is. */
  wrap?: SandboxWrap;
}

/** The value of `STEPLINE_SANDBOX`, checked: `auto` when unset. */
export function sandboxMode(value: string | undefined): SandboxMode {
  if (value === undefined || value === '' || value === 'auto') return 'auto';
  if (value === 'off') return 'off';
  throw new Error(`STEPLINE_SANDBOX is "${value}": it is auto (the default) or off`);
}

/**
 * The sandbox builds run in: bubblewrap when `mode` is auto and `bwrap` is installed and works here (it is
 * tried once: a kernel without unprivileged user namespaces refuses it), else none, with a note.
 */
export async function chooseSandbox(options: {
  mode: SandboxMode;
  stateDir: string;
  deployDir: string;
  bwrap?: string;
}): Promise<Sandbox> {
  const bwrap = options.bwrap ?? BWRAP;
  const unsandboxed = (why: string): Sandbox => ({
    kind: 'none',
    note: `${why}: a local build runs with the operator's authority (it can read the state folder and act as you)`,
  });
  if (options.mode === 'off') return unsandboxed('builds are not sandboxed (STEPLINE_SANDBOX=off)');
  const installed = await access(bwrap, constants.X_OK).then(
    () => true,
    () => false,
  );
  if (!installed) return unsandboxed(`bubblewrap (${bwrap}) is not installed (apt-get install bubblewrap)`);
  const problem = await tryBwrap(bwrap);
  if (problem !== undefined) return unsandboxed(`bubblewrap (${bwrap}) does not work here (${problem})`);
  return {
    kind: 'bwrap',
    wrap: (command, args, writable) => ({
      command: bwrap,
      args: [
        ...bwrapArguments({ stateDir: options.stateDir, deployDir: options.deployDir, ...writable }),
        '--',
        command,
        ...args,
      ],
    }),
  };
}

/**
 * What every sandbox is: its own user namespace without capabilities, the root read-only, a fresh /dev
 * and /proc, a private /tmp (see the module comment).
 */
export const BWRAP_ISOLATION: readonly string[] = [
  '--unshare-user',
  '--cap-drop',
  'ALL',
  '--ro-bind',
  '/',
  '/',
  '--dev',
  '/dev',
  '--proc',
  '/proc',
  '--tmpfs',
  '/tmp',
];

/**
 * bubblewrap's options for one build, in the order they must be applied: the read-only root, /dev, /proc,
 * the private /tmp and the hidden state folder, then the writable folders bound back over them.
 */
export function bwrapArguments(
  paths: {
    stateDir: string;
    deployDir: string;
    workDir: string;
    runnerDir: string;
  },
  hostPath: string | undefined = process.env.PATH,
): string[] {
  return [
    ...BWRAP_ISOLATION,
    ...toolsUnderTmp(hostPath).flatMap((dir) => ['--ro-bind-try', dir, dir]),
    '--tmpfs',
    paths.stateDir,
    ...[paths.workDir, paths.deployDir, paths.runnerDir].flatMap((dir) => ['--bind', dir, dir]),
  ];
}

/**
 * The folders of the build's PATH (the operator's, see build-variables.ts) that the private /tmp would hide,
 * to bind back read-only: a project checked out under /tmp runs its `node_modules/.bin` tools (and the Node
 * of the `node` package, which they link into the rest of node_modules) from there. Without them a build
 * would silently run another `node` found further along the PATH.
 */
export function toolsUnderTmp(hostPath: string | undefined): string[] {
  const dirs = new Set<string>();
  for (const entry of (hostPath ?? '').split(':')) {
    if (!entry.startsWith('/tmp/')) continue;
    dirs.add(/^(.*\/node_modules)\/\.bin\/?$/.exec(entry)?.[1] ?? entry);
  }
  return [...dirs];
}

/** Runs `true` in the sandbox's shape; returns why it failed, or undefined. */
function tryBwrap(bwrap: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(
      bwrap,
      [...BWRAP_ISOLATION, 'true'],
      { timeout: 5_000, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } },
      (error, _stdout, stderr) =>
        resolve(error ? (String(stderr).trim().split('\n')[0] ?? error.message) || error.message : undefined),
    );
  });
}
