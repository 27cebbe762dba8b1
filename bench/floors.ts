import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { checkOutCommit, removeCheckout } from '#local/codebuild/checkout.ts';
import { createLocalRemote, writeWebhookSecret } from '#local/git/remote.ts';

/**
 * The floors of the local mode's figures: what the machine itself takes for the steps a run cannot do
 * without, measured by the bench in the same run as the figures they are compared with (the load of a
 * shared machine moves both alike).
 *
 * - a stage cannot cost less than one fresh checkout of its commit plus one shell;
 * - a push cannot reach its first command faster than the push with its hook (git push, the hook's Node
 *   and its git commands, the POST) plus one stage floor.
 */

const exec = promisify(execFile);

/** One sample of each floor, in milliseconds. */
export interface FloorSample {
  /** `node -e 0`: starting the Node the hook runs with. */
  nodeStart: number;
  /** `sh -c true`. */
  shell: number;
  /** `git clone` of the pushed repository (working tree included): what a checkout used to be. */
  gitClone: number;
  /** The checkout the builds use (local/codebuild/checkout.ts) of the pushed commit, into a new folder. */
  checkout: number;
  /** That checkout, then `sh -c true` in it: the floor of a stage. */
  stage: number;
  /** `git push` of a new commit to a repository with stepline's hook, until a server that answers at once reads its POST. */
  hook: number;
}

/** Measures the floors against the repository the runs are pushed to, and a twin of it for the hook. */
export class Floors {
  readonly samples: FloorSample[] = [];
  readonly #dir: string;
  readonly #server: Server;
  /** Called when the stub server has read a POST; the sample waiting for one is in it. */
  readonly #posted: Set<() => void>;
  #count = 0;

  private constructor(dir: string, server: Server, posted: Set<() => void>) {
    this.#dir = dir;
    this.#server = server;
    this.#posted = posted;
  }

  /**
   * A stub webhook server answering 202 at once, and a local remote whose hook posts to it, under `dir`.
   * Returns the floors and the path of that remote, for the working clone to push to.
   */
  static async start(dir: string): Promise<{ floors: Floors; hookRemote: string }> {
    const posted = new Set<() => void>();
    const server = createServer((request, response) => {
      request.resume();
      request.on('end', () => {
        for (const wake of posted) wake();
        response.writeHead(202, { 'content-type': 'application/json' });
        response.end(
          JSON.stringify({ message: 'Started 0 runs', started: [], alreadyStarted: [], skipped: [] }),
        );
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const floors = new Floors(dir, server, posted);
    const stateDir = join(dir, 'floor-state');
    await writeWebhookSecret(stateDir, 'floor-secret');
    const { remotePath } = await createLocalRemote({
      stateDir,
      name: 'floor',
      webhookUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhooks/github`,
    });
    return { floors, hookRemote: remotePath };
  }

  /**
   * Takes one sample of each floor: `push` pushes a new commit to the hook's remote; `source` and `commit`
   * are the runs' repository and a commit in it.
   */
  async sample(push: () => Promise<unknown>, source: string, commit: string): Promise<FloorSample> {
    const folder = () => join(this.#dir, `floor-${this.#count++}`);
    const nodeStart = await timed(() => exec(process.execPath, ['-e', '0']));
    const shell = await timed(() => exec('sh', ['-c', 'true']));
    const cloneDir = folder();
    const gitClone = await timed(() => exec('git', ['clone', '--quiet', '--', source, cloneDir]));
    const checkoutDir = folder();
    const checkout = await timed(() =>
      checkOutCommit({ location: source, version: commit, dir: checkoutDir }),
    );
    const stageDir = folder();
    const stage = await timed(async () => {
      await checkOutCommit({ location: source, version: commit, dir: stageDir });
      await exec('sh', ['-c', 'true'], { cwd: stageDir });
    });
    const hook = await this.#hook(push);
    await Promise.all([cloneDir, checkoutDir, stageDir].map(removeCheckout));
    const sample = { nodeStart, shell, gitClone, checkout, stage, hook };
    this.samples.push(sample);
    return sample;
  }

  /** From the start of the push to the moment the stub server has read the hook's POST. */
  async #hook(push: () => Promise<unknown>): Promise<number> {
    const before = performance.now();
    let postedAt: number | undefined;
    const posted = () => {
      postedAt ??= performance.now();
    };
    this.#posted.add(posted);
    try {
      await push();
    } finally {
      this.#posted.delete(posted);
    }
    // The hook posts before git push returns: no POST by then means the hook did not post.
    if (postedAt === undefined) throw new Error('The floor push ran no hook that posted');
    return postedAt - before;
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise((resolve) => this.#server.close(resolve));
  }
}

async function timed(work: () => Promise<unknown>): Promise<number> {
  const before = performance.now();
  await work();
  return performance.now() - before;
}
