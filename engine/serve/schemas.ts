/**
 * JSON Schemas of the API's requests and answers: Fastify validates requests with them, serialises answers
 * through them (a field not declared here never leaves the process), and @fastify/swagger publishes them.
 */
import { PIPELINE_NAME_PATTERN } from '../schema/envelope.ts';

export const nameParams = {
  type: 'object',
  required: ['name'],
  additionalProperties: false,
  properties: {
    name: {
      type: 'string',
      pattern: PIPELINE_NAME_PATTERN,
      maxLength: 63,
      description: 'The pipeline name (`metadata.name`): letters, digits, `_` and `-`.',
    },
  },
} as const;

const stats = {
  type: 'object',
  description: 'Figures of the current (or last) run.',
  properties: {
    recordsIn: { type: 'integer', description: 'Records read by sources.' },
    recordsOut: { type: 'integer', description: 'Records written by sinks (dead-letter sinks aside).' },
    rejected: { type: 'integer', description: 'Records routed to a dead_letter port.' },
    errors: { type: 'integer', description: 'Failed batches and unreadable inputs.' },
    bytesRead: { type: 'integer' },
    checkpoints: { type: 'integer', description: 'Checkpoints committed by this run.' },
    elapsedMs: { type: 'integer' },
  },
} as const;

const status = {
  type: 'string',
  enum: ['starting', 'running', 'stopping', 'paused', 'stopped', 'completed', 'failed', 'deleted'],
} as const;

export const pipelineSummary = {
  type: 'object',
  required: ['name', 'status'],
  properties: {
    name: { type: 'string' },
    status,
    owner: { type: 'string', description: '`file:<path>` (config directory) or `api`.' },
    file: { type: 'string' },
    version: { type: 'string', description: 'Fingerprint of the version asked for; equal for equal pipelines.' },
    runningVersion: { type: 'string', description: 'Fingerprint of the version running now.' },
    appliedAt: { type: 'string', format: 'date-time' },
    runs: { type: 'integer', description: 'Runs started since the daemon started (reloads and restarts).' },
    lastError: { type: 'string' },
    stats,
  },
} as const;

const diagnostic = {
  type: 'object',
  properties: {
    file: { type: 'string' },
    line: { type: 'integer' },
    column: { type: 'integer' },
    path: { type: 'string' },
    code: { type: 'string' },
    severity: { type: 'string', enum: ['error', 'warning'] },
    message: { type: 'string' },
    hint: { type: 'string' },
    text: { type: 'string', description: 'As `etl validate` prints it: `file:line:col: error CODE: message`.' },
  },
} as const;

const problem = {
  type: 'object',
  properties: {
    time: { type: 'string' },
    level: { type: 'string' },
    stage: { type: 'string' },
    message: { type: 'string' },
  },
} as const;

export const deadLetters = {
  type: 'object',
  properties: {
    pipeline: { type: 'string' },
    rejected: { type: 'integer', description: 'Records routed to a dead_letter port since the daemon started.' },
    sinks: {
      type: 'object',
      additionalProperties: { type: 'integer' },
      description: 'Records written by each dead-letter sink (one reading only dead_letter ports).',
    },
  },
} as const;

export const pipelineDetail = {
  type: 'object',
  properties: {
    ...pipelineSummary.properties,
    yaml: { type: 'string', description: 'The document as applied (secrets stay variable references).' },
    graph: {
      type: 'object',
      properties: {
        stages: {
          type: 'array',
          items: {
            type: 'object',
            properties: {
              id: { type: 'string' },
              kind: { type: 'string' },
              type: { type: 'string' },
              inputs: { type: 'array', items: { type: 'string' } },
            },
          },
        },
        edges: {
          type: 'array',
          items: {
            type: 'object',
            properties: { from: { type: 'string' }, port: { type: 'string' }, to: { type: 'string' } },
          },
        },
        mermaid: { type: 'string', description: 'The graph as `etl graph` draws it.' },
      },
    },
    lastErrors: { type: 'array', items: problem, description: 'The last warnings and errors it logged.' },
    lastRefusal: {
      type: 'object',
      properties: { version: { type: 'string' }, message: { type: 'string' }, time: { type: 'string' } },
    },
    deadLetters,
  },
} as const;

export const applyBody = {
  description:
    'The pipeline YAML: as the raw body (`Content-Type: application/yaml`), or as JSON `{ "yaml": "…" }`. ' +
    'Every document in it is applied; the documents follow the pipeline schema (schemas/pipeline.schema.json).',
  anyOf: [
    { type: 'string', maxLength: 1_000_000 },
    {
      type: 'object',
      required: ['yaml'],
      additionalProperties: false,
      properties: {
        yaml: { type: 'string', maxLength: 1_000_000 },
        file: { type: 'string', maxLength: 200, description: 'Name shown in diagnostics (default `api`).' },
      },
    },
  ],
} as const;

export const applyQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    dryRun: { type: 'boolean', default: false, description: 'Validate and tell what would change; change nothing.' },
  },
} as const;

export const applyAnswer = {
  type: 'object',
  properties: {
    valid: { type: 'boolean' },
    dryRun: { type: 'boolean' },
    diagnostics: { type: 'array', items: diagnostic },
    pipelines: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          name: { type: 'string' },
          action: { type: 'string', enum: ['create', 'update', 'unchanged', 'refused'] },
          changes: {
            type: 'array',
            items: {
              type: 'object',
              properties: { path: { type: 'string' }, change: { type: 'string' } },
            },
          },
          message: { type: 'string' },
          status,
        },
      },
    },
  },
} as const;

export const actionAnswer = {
  type: 'object',
  properties: { name: { type: 'string' }, status },
} as const;

export const errorAnswer = {
  type: 'object',
  properties: {
    statusCode: { type: 'integer' },
    error: { type: 'string' },
    message: { type: 'string' },
  },
} as const;

export const readyAnswer = {
  type: 'object',
  properties: {
    ready: { type: 'boolean' },
    configScanned: { type: 'boolean', description: 'The config directory (if any) was read once.' },
    pipelines: {
      type: 'array',
      items: { type: 'object', properties: { name: { type: 'string' }, status } },
      description: 'Pipelines that should run and are not up (sinks and sources opened).',
    },
  },
} as const;

export const configAnswer = {
  type: 'object',
  properties: {
    dir: { type: 'string' },
    scans: { type: 'integer' },
    files: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          file: { type: 'string' },
          valid: { type: 'boolean' },
          pipelines: { type: 'array', items: { type: 'string' } },
          diagnostics: { type: 'array', items: diagnostic },
          appliedAt: { type: 'string' },
        },
      },
    },
  },
} as const;
