import { type FromEnvInit, fromEnv } from '@aws-sdk/credential-provider-env';

/**
 * The AWS SDK clients' default credential provider inside the Lambda bundles: serverless.yml's esbuild
 * `alias` puts this module in place of `@aws-sdk/credential-provider-node`, whose chain tries the
 * environment first and, on Lambda, always ends there: the runtime puts the execution role's credentials
 * in `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`
 * (https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime).
 * The chain's other links (SSO, shared ini files, credential process, web identity, container and instance
 * metadata) and the STS, SSO and sign-in clients they carry are never reached there, yet each cold start
 * would compile them. Same signature as the chain's `defaultProvider`, same credentials (the chain's
 * first link is this very `fromEnv`). Tests and the local mode keep the whole chain: they run unbundled.
 */
export const defaultProvider = (init: FromEnvInit = {}): ReturnType<typeof fromEnv> => fromEnv(init);
