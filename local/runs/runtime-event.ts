import type { Notification } from '#shared/ports.ts';
import type { BuildEvent } from '../codebuild/service.ts';
import type { ExecutionRecord } from '../state/store.ts';
import type { PendingApproval, RunStatus } from './read-model.ts';

/** What the local runtime tells the terminal, `stepline run` and the bench about, as it happens. */
export type RuntimeEvent =
  | { kind: 'execution'; record: ExecutionRecord }
  | { kind: 'build'; event: BuildEvent; executionArn?: string; logPath: string }
  | { kind: 'notification'; notification: Notification; file: string }
  | { kind: 'approval'; approval: PendingApproval }
  /** A forge's first status that was skipped (no token): said once per forge. */
  | { kind: 'status-skipped'; status: RunStatus };
