import { copyFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { ArtifactResult } from './build-result.ts';
import type { ArtifactSpec, Buildspec } from './buildspec.ts';
import { selectFiles } from './file-selection.ts';

/** The primary artifact and the secondary ones, by identifier, in the buildspec's order. */
export function artifactSpecs(spec: Buildspec | undefined): { identifier?: string; spec: ArtifactSpec }[] {
  const artifacts = spec?.artifacts;
  if (artifacts === undefined) return [];
  return [
    { spec: artifacts },
    ...Object.entries(artifacts.secondaryArtifacts).map(([identifier, spec]) => ({ identifier, spec })),
  ];
}

/**
 * Copies each artifact's files to `<artifactsDir>/primary` or `<artifactsDir>/secondary/<identifier>` (or
 * only lists them when there is no artifactsDir). Stops at the first artifact that matches nothing.
 */
export async function uploadArtifacts(options: {
  spec: Buildspec | undefined;
  workDir: string;
  artifactsDir: string | undefined;
  /** `artifacts.name` of each, as the build's shell evaluated it. */
  artifactNames: (string | undefined)[];
  log: (message: string) => void;
}): Promise<{ artifacts: ArtifactResult[]; problem?: { message: string; identifier?: string } }> {
  const { artifactsDir } = options;
  const artifacts: ArtifactResult[] = [];
  for (const [index, { identifier, spec }] of artifactSpecs(options.spec).entries()) {
    const location =
      artifactsDir === undefined
        ? undefined
        : identifier === undefined
          ? path.join(artifactsDir, 'primary')
          : path.join(artifactsDir, 'secondary', identifier);
    const collected = await collectArtifact(spec, options.workDir, location);
    if ('problem' in collected) {
      return { artifacts, problem: { message: collected.problem, ...(identifier ? { identifier } : {}) } };
    }
    const name = options.artifactNames[index];
    artifacts.push({
      primary: identifier === undefined,
      ...(identifier === undefined ? {} : { identifier }),
      ...(name === undefined ? {} : { name }),
      ...(location === undefined ? {} : { location }),
      files: collected.files,
    });
    options.log(
      `Artifact ${identifier ?? 'primary'}: ${collected.files.length} file(s)${location ? ` in ${location}` : ''}`,
    );
  }
  return { artifacts };
}

async function collectArtifact(
  spec: ArtifactSpec,
  workDir: string,
  location: string | undefined,
): Promise<{ files: string[] } | { problem: string }> {
  const selected = await selectFiles(spec, workDir);
  if ('problem' in selected) return selected;
  if (selected.length === 0) return { problem: 'no matching artifact paths found' };
  for (const { source, output } of selected) {
    if (location === undefined) break;
    const target = path.join(location, output);
    await mkdir(path.dirname(target), { recursive: true });
    await copyFile(source, target);
  }
  return { files: [...new Set(selected.map(({ output }) => output))].sort() };
}
