/**
 * The buildspec's phase names, apart from its parser (local/codebuild/buildspec.ts) so that what runs
 * the phases can know them without loading the YAML parser at start-up.
 */

/** The buildspec's own phases, in the order CodeBuild runs them. */
export const BUILDSPEC_PHASES = ['install', 'pre_build', 'build', 'post_build'] as const;
export type BuildspecPhaseName = (typeof BUILDSPEC_PHASES)[number];
