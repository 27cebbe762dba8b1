import { awsIngestDeps } from '#shared/aws/ingest.ts';
import { createCodeCommitHandler } from '#shared/handlers/codecommit.ts';

export const handler = createCodeCommitHandler(awsIngestDeps('codecommit'));
