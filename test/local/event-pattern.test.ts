import { describe, expect, it } from 'vitest';
import { matchesPattern } from '#local/eventbridge/event-pattern.ts';

const buildEvent = {
  source: 'aws.codebuild',
  'detail-type': 'CodeBuild Build State Change',
  detail: { 'project-name': 'stepline-local-image', 'build-status': 'FAILED', tags: ['a', 'b'] },
};

describe('matchesPattern', () => {
  it('matches when every field has one of the allowed values, nested fields included', () => {
    expect(
      matchesPattern(
        {
          source: ['aws.codebuild'],
          'detail-type': ['CodeBuild Build State Change', 'CodeBuild Build Phase Change'],
          detail: { 'project-name': ['stepline-local-image', 'stepline-local-deploy'] },
        },
        buildEvent,
      ),
    ).toBe(true);
  });

  it('does not match another value or a missing field', () => {
    expect(matchesPattern({ source: ['aws.states'] }, buildEvent)).toBe(false);
    expect(matchesPattern({ detail: { 'project-name': ['other'] } }, buildEvent)).toBe(false);
    expect(matchesPattern({ detail: { missing: ['x'] } }, buildEvent)).toBe(false);
  });

  it('matches an array field when any element matches', () => {
    expect(matchesPattern({ detail: { tags: ['b'] } }, buildEvent)).toBe(true);
  });

  it('supports prefix, exists and anything-but filters', () => {
    expect(matchesPattern({ detail: { 'project-name': [{ prefix: 'stepline-' }] } }, buildEvent)).toBe(true);
    expect(matchesPattern({ detail: { missing: [{ exists: false }] } }, buildEvent)).toBe(true);
    expect(matchesPattern({ detail: { 'build-status': [{ exists: true }] } }, buildEvent)).toBe(true);
    expect(
      matchesPattern({ detail: { 'build-status': [{ 'anything-but': ['IN_PROGRESS'] }] } }, buildEvent),
    ).toBe(true);
    expect(matchesPattern({ detail: { 'build-status': [{ 'anything-but': 'FAILED' }] } }, buildEvent)).toBe(
      false,
    );
  });
});
