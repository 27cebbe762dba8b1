// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${AWS::Region} and friends are CloudFormation Fn::Sub syntax
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  allStatements,
  asList,
  type CfnTemplate,
  type PackagedStack,
  packagedStack,
  resource,
} from '../helpers/package-template.ts';

/**
 * states:RedriveExecution is an operator's: granted by one managed policy, on the pipeline's executions
 * only, and by nothing else of the stack (no function, state machine or build role). Its resource type is
 * the execution (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsstepfunctions.html).
 */

let stack: PackagedStack;
let template: CfnTemplate;

beforeAll(async () => {
  stack = await packagedStack();
  template = stack.template;
}, 180_000);

afterAll(async () => {
  await stack?.remove();
});

/** True when an IAM action pattern (`states:*`, `states:Redrive*`, `*`) covers the action. */
function covers(pattern: string, action: string): boolean {
  const regex = new RegExp(`^${pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replaceAll('*', '.*')}$`, 'i');
  return regex.test(action);
}

const PIPELINE_EXECUTIONS = {
  'Fn::Sub':
    'arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:execution:stepline-test-pipeline:*',
};

describe('who may redrive', () => {
  it('grants states:RedriveExecution in the operator policy alone, on the pipeline executions only', () => {
    const allowing = allStatements(template).filter(
      ({ statement }) =>
        statement.Effect === 'Allow' &&
        asList(statement.Action).some((action) => covers(action, 'states:RedriveExecution')),
    );

    expect(allowing.map(({ where }) => where)).toEqual(['PipelineOperatorPolicy']);
    expect(allowing[0]?.statement).toEqual({
      Sid: 'RedrivePipelineRuns',
      Effect: 'Allow',
      Action: ['states:RedriveExecution', 'states:DescribeExecution'],
      Resource: PIPELINE_EXECUTIONS,
    });
    expect(resource(template, 'PipelineOperatorPolicy').Type).toBe('AWS::IAM::ManagedPolicy');
  });

  it('attaches the operator policy to no role of the stack, and names it in the outputs', () => {
    const attached = Object.entries(template.Resources).filter(([, item]) =>
      JSON.stringify(item.Properties?.ManagedPolicyArns ?? []).includes('PipelineOperatorPolicy'),
    );
    expect(attached).toEqual([]);
    expect(template.Outputs?.PipelineOperatorPolicyArn).toMatchObject({
      Value: { Ref: 'PipelineOperatorPolicy' },
    });
  });

  it('denies every build a redrive of the pipeline, whatever its Terraform policy allows', () => {
    const denials = allStatements(template).filter(
      ({ where, statement }) =>
        where === 'BuildGuardrailsPolicy' &&
        statement.Effect === 'Deny' &&
        asList(statement.Action).some((action) => covers(action, 'states:RedriveExecution')),
    );
    expect(JSON.stringify(denials.map(({ statement }) => statement.Resource))).toContain(
      ':execution:stepline-test-*',
    );
  });
});
