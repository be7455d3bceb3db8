/** The security layer of `etl serve`: see README.md. */
export { type Role, ROLES } from './keys.ts';
export { type SecurityLayer, type SecurityLayerOptions, securityLayer } from './layer.ts';
export {
  isPipelineName,
  PIPELINE_NAME_MAX_LENGTH,
  pipelineNameProblem,
  pipelineNameSchema,
  pipelinePath,
} from './pipeline-name.ts';
export {
  DEFAULT_MAX_JSON_DEPTH,
  type Principal,
  type RateLimitOptions,
  registerSecurity,
  requiredRole,
  type RouteRole,
  type SecurityOptions,
} from './plugin.ts';
export { redactText } from './redact-text.ts';
export { SecurityStore, type StoreLocation } from './store.ts';
export { assertListenAllowed, isLoopback, REDACTED_LOG_PATHS, serverOptions, type TlsFiles } from './transport.ts';
