import { describe, expect, it } from 'vitest';
import { StageFailedError } from '#shared/errors.ts';

describe('StageFailedError', () => {
  const error = new StageFailedError('prod: Deploy', 'the build FAILED');

  it('is named as the error Step Functions records, and names the stage first', () => {
    expect(error.name).toBe('Pipeline.StageFailed');
    expect(error.message).toMatch(/^prod: Deploy failed \(the build FAILED\)\. /);
  });

  it('reads the stage back from the JSON cause of a Lambda task on AWS, and from the message locally', () => {
    const cause = JSON.stringify({ errorType: error.name, errorMessage: error.message, trace: ['at x'] });
    expect(StageFailedError.stageOf(error.name, cause)).toBe('prod: Deploy');
    expect(StageFailedError.stageOf(error.name, error.message)).toBe('prod: Deploy');
    expect(
      StageFailedError.stageOf(error.name, new StageFailedError('qa-eu: Infrastructure', 'x').message),
    ).toBe('qa-eu: Infrastructure');
  });

  it('reads no stage from another error, a missing cause, or a cause that names none', () => {
    expect(StageFailedError.stageOf('Approval.Rejected', error.message)).toBeNull();
    expect(StageFailedError.stageOf(error.name, undefined)).toBeNull();
    // The state machine's own Fail states (a hold or an approval request that failed) name no stage.
    expect(
      StageFailedError.stageOf(error.name, 'An approval request or an environment hold failed.'),
    ).toBeNull();
    expect(StageFailedError.stageOf(error.name, '{"errorMessage":42}')).toBeNull();
  });
});
