import { describe, expect, it } from 'vitest';
import {
  checkParams,
  describeFailure,
  EnvironmentError,
  explainListenError,
  parsePort,
  UsageError,
} from '#local/cli/checks.ts';
import { StoreInUseError } from '#local/state/store.ts';
import { ConfigurationError } from '#shared/errors.ts';

describe('checkParams', () => {
  it('passes name=value parameters through, whatever the value holds', () => {
    const params = ['triggers={"push":[]}', 'settings=', 'approval-emails=a@example.com,b=c'];
    expect(checkParams(params)).toEqual(params);
  });

  it.each(['triggers', '={"push":[]}', '{"environments":[]}', ' settings={}', '1x=y'])(
    'refuses %j, naming it',
    (param) => {
      expect(() => checkParams([param])).toThrow(UsageError);
      expect(() => checkParams([param])).toThrow(`--param ${JSON.stringify(param)} is not name=value`);
    },
  );
});

describe('parsePort', () => {
  it.each([
    ['0', 0],
    ['4700', 4700],
    ['65535', 65535],
  ])('reads %s', (text, port) => {
    expect(parsePort(text)).toBe(port);
  });

  it.each(['', 'http', '-1', '65536', '47.5', '0x10'])('refuses %j', (text) => {
    expect(() => parsePort(text)).toThrow(UsageError);
  });
});

describe('explainListenError', () => {
  it('names the port in use and --port', () => {
    const error = explainListenError(
      Object.assign(new Error('listen EADDRINUSE'), { code: 'EADDRINUSE' }),
      4700,
    );
    expect(error).toBeInstanceOf(EnvironmentError);
    expect(error.message).toMatch(/^port 4700 is in use .*--port/);
  });
});

describe('describeFailure', () => {
  it('prints a command-line mistake as one line, exit 2', () => {
    expect(describeFailure(new UsageError('--port must be a port number'))).toEqual({
      text: 'stepline: --port must be a port number',
      exitCode: 2,
    });
  });

  it('prints any stepline error as one line, exit 1', () => {
    for (const error of [
      new StoreInUseError('/tmp/state is in use by process 42'),
      new ConfigurationError('settings is invalid\nat environments'),
    ]) {
      const failure = describeFailure(error);
      expect(failure.exitCode).toBe(1);
      expect(failure.text).toMatch(/^stepline: [^\n]+$/);
    }
  });

  it("prints a system error's message as one line", () => {
    const error = Object.assign(new Error("EACCES: permission denied, mkdir '/state'"), { code: 'EACCES' });
    expect(describeFailure(error)).toEqual({
      text: "stepline: EACCES: permission denied, mkdir '/state'",
      exitCode: 1,
    });
  });

  it('keeps the stack of anything else, which is a fault of stepline to report', () => {
    const failure = describeFailure(new TypeError('undefined is not a function'));
    expect(failure.text).toContain('please report it');
    expect(failure.text).toContain('    at ');
  });
});
