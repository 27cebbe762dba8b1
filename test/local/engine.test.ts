import { describe, expect, it } from 'vitest';
import { LocalTaskTokens } from '#local/stepfunctions/engine.ts';
import { TaskNoLongerWaitingError } from '#shared/errors.ts';

describe('LocalTaskTokens', () => {
  it('mints unguessable tokens, each one different', () => {
    const tokens = new LocalTaskTokens();
    const a = tokens.mint('arn:run');
    const b = tokens.mint('arn:run');
    expect(a).not.toBe(b);
    expect(Buffer.from(a, 'base64url')).toHaveLength(32);
  });

  it('resolves a waiting task once with the decision, and refuses a second decision', async () => {
    const tokens = new LocalTaskTokens();
    const token = tokens.mint('arn:run');
    const waiting = tokens.wait(token);
    await tokens.succeed(token, { approved: true });
    await expect(waiting).resolves.toEqual({ approved: true });
    await expect(tokens.succeed(token, { approved: true })).rejects.toEqual(
      new TaskNoLongerWaitingError('not-waiting'),
    );
    await expect(tokens.fail(token, 'Approval.Rejected', '{}')).rejects.toMatchObject({
      reason: 'not-waiting',
    });
  });

  it('fails a waiting task with the error name and cause SendTaskFailure gives', async () => {
    const tokens = new LocalTaskTokens();
    const token = tokens.mint('arn:run');
    const waiting = tokens.wait(token);
    await tokens.fail(token, 'Approval.Rejected', '{"approved":false}');
    await expect(waiting).rejects.toMatchObject({ name: 'Approval.Rejected', message: '{"approved":false}' });
  });

  it('answers an unknown token as invalid', async () => {
    await expect(new LocalTaskTokens().succeed('forged', {})).rejects.toMatchObject({ reason: 'invalid' });
  });

  it('times a waiting task out as States.Timeout and then answers "expired"', async () => {
    const tokens = new LocalTaskTokens();
    const token = tokens.mint('arn:run');
    await expect(tokens.wait(token, 0.01)).rejects.toMatchObject({ name: 'States.Timeout' });
    await expect(tokens.succeed(token, {})).rejects.toMatchObject({ reason: 'timed-out' });
  });

  it('stops every token of a run that ended', async () => {
    const tokens = new LocalTaskTokens();
    const token = tokens.mint('arn:run');
    void tokens.wait(token).catch(() => undefined);
    expect(tokens.waiting).toBe(1);
    tokens.endExecution('arn:run');
    expect(tokens.waiting).toBe(0);
    await expect(tokens.succeed(token, {})).rejects.toMatchObject({ reason: 'not-waiting' });
  });

  it('keeps a decision sent before the task waits (a Lambda resuming its own token) and gives it once', async () => {
    const tokens = new LocalTaskTokens();
    const token = tokens.mint('arn:run');
    await tokens.succeed(token, { environment: 'dev', entered: true });
    await expect(tokens.succeed(token, {})).rejects.toMatchObject({ reason: 'not-waiting' });

    await expect(tokens.wait(token)).resolves.toEqual({ environment: 'dev', entered: true });
    await expect(tokens.fail(token, 'Environment.Behind', 'late')).rejects.toMatchObject({
      reason: 'not-waiting',
    });
  });

  it('keeps an early failure too, with its error name', async () => {
    const tokens = new LocalTaskTokens();
    const token = tokens.mint('arn:run');
    await tokens.fail(token, 'Environment.Behind', 'prod already runs a newer commit');
    await expect(tokens.wait(token)).rejects.toMatchObject({ name: 'Environment.Behind' });
  });
});
