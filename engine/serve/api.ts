/**
 * The REST API's routes. Each route says who may call it (`config.role`: `public`, `viewer`, `operator`,
 * `admin`) for the security layer to enforce; without that layer the server listens on loopback only.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { Registry } from 'prom-client';
import { renderGraph } from '../cli/commands/graph.ts';
import { formatDiagnostic } from '../diagnostics.ts';
import { buildGraph } from '../graph/graph.ts';
import { redact } from '../redact.ts';
import { serveTap } from '../telemetry/tap.ts';
import type { Telemetry } from '../telemetry/types.ts';
import type { ConfigDir } from './config-dir.ts';
import {
  actionAnswer,
  applyAnswer,
  applyBody,
  applyQuery,
  configAnswer,
  deadLetters,
  errorAnswer,
  nameParams,
  pipelineDetail,
  pipelineSummary,
  readyAnswer,
} from './schemas.ts';
import type { PipelineSlot } from './slot.ts';
import type { ApplyOutcome, Supervisor } from './supervisor.ts';

export type Role = 'public' | 'viewer' | 'operator' | 'admin';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Who may call the route; the security layer denies a route without one. */
    role?: Role;
  }
}

export interface ApiOptions {
  readonly supervisor: Supervisor;
  readonly telemetry: Telemetry;
  readonly registry: Registry;
  readonly configDir?: ConfigDir;
  readonly configDirPath?: string;
}

/** The owner of pipelines applied through the API. */
export const API_OWNER = 'api';

type NameRequest = { Params: { name: string } };

export async function registerRoutes(app: FastifyInstance, options: ApiOptions): Promise<void> {
  const { supervisor } = options;
  const role = (r: Role) => ({ role: r });

  app.addContentTypeParser(
    ['application/yaml', 'application/x-yaml', 'text/yaml'],
    { parseAs: 'string' },
    (_r, body, done) => done(null, body),
  );

  app.get(
    '/healthz',
    { config: role('public'), schema: { summary: 'Liveness: the process answers', tags: ['health'] } },
    async () => ({ status: 'ok' }),
  );

  app.get(
    '/readyz',
    {
      config: role('public'),
      schema: {
        summary: 'Readiness: every pipeline that should run is up (its sinks and sources opened)',
        tags: ['health'],
        response: { 200: readyAnswer, 503: readyAnswer },
      },
    },
    async (_request, reply) => {
      const waiting = supervisor
        .list()
        .filter((slot) => !['running', 'paused', 'stopped', 'completed'].includes(slot.status))
        .map((slot) => ({ name: slot.name, status: slot.status }));
      // Until the config directory was read once, its pipelines are not even known.
      const scanned = !options.configDir || options.configDir.scans > 0;
      const ready = scanned && waiting.length === 0;
      return reply.code(ready ? 200 : 503).send({ ready, configScanned: scanned, pipelines: waiting });
    },
  );

  app.get(
    '/metrics',
    {
      config: role('viewer'),
      schema: { summary: 'Prometheus metrics of every pipeline and of the daemon', tags: ['health'] },
    },
    async (_request, reply) => {
      const text = (await options.telemetry.metricsText()) + (await options.registry.metrics());
      return reply.type(options.registry.contentType).send(text);
    },
  );

  app.get(
    '/tap',
    {
      // Records may hold personal data: more than a viewer's right.
      config: role('operator'),
      schema: {
        summary: "Live samples of the records on a stage's port, as JSON lines (what `etl tap --url` reads)",
        tags: ['health'],
        querystring: {
          type: 'object',
          required: ['stage'],
          properties: {
            stage: { type: 'string', minLength: 1 },
            port: { type: 'string', minLength: 1 },
            pipeline: { type: 'string', minLength: 1 },
            rate: { type: 'number', exclusiveMinimum: 0 },
          },
        },
      },
    },
    (request, reply) => {
      reply.hijack();
      serveTap(request.raw, reply.raw);
    },
  );

  app.get(
    '/pipelines',
    {
      config: role('viewer'),
      schema: {
        summary: 'Every pipeline with its status and live figures',
        tags: ['pipelines'],
        response: { 200: { type: 'array', items: pipelineSummary } },
      },
    },
    async () => supervisor.list().map(summary),
  );

  app.get<NameRequest>(
    '/pipelines/:name',
    {
      config: role('viewer'),
      schema: {
        summary: 'One pipeline: its YAML, its graph, its last errors',
        tags: ['pipelines'],
        params: nameParams,
        response: { 200: pipelineDetail, 404: errorAnswer },
      },
    },
    async (request, reply) => {
      const slot = supervisor.get(request.params.name);
      if (!slot) return notFound(reply, request.params.name);
      return detail(slot);
    },
  );

  app.post<{ Body: string | { yaml: string; file?: string }; Querystring: { dryRun: boolean } }>(
    '/pipelines',
    {
      config: role('operator'),
      schema: {
        summary: 'Create or update pipelines from YAML; `dryRun=true` tells what would change',
        description:
          'Validated as `etl validate` does (diagnostics with line and column). Applying a pipeline unchanged does ' +
          'nothing; a changed one drains, checkpoints and is replaced by the new version, which resumes from ' +
          'that checkpoint. 422: invalid YAML (nothing changed). 409: a pipeline was refused (managed by a ' +
          'file of the config directory, its checkpoint does not fit, or it failed to start): the version ' +
          'running before keeps running.',
        tags: ['pipelines'],
        body: applyBody,
        querystring: applyQuery,
        response: { 200: applyAnswer, 409: applyAnswer, 422: applyAnswer },
      },
    },
    async (request, reply) => {
      const body = request.body;
      const yaml = typeof body === 'string' ? body : body.yaml;
      const file = (typeof body === 'string' ? undefined : body.file) ?? API_OWNER;
      const dryRun = request.query.dryRun;
      const outcome = await supervisor.apply(yaml, file, API_OWNER, { dryRun });
      return reply.code(applyStatus(outcome)).send(applyAnswerOf(outcome, dryRun));
    },
  );

  for (const action of ['pause', 'resume', 'stop'] as const) {
    app.post<NameRequest>(
      `/pipelines/:name/${action}`,
      {
        config: role('operator'),
        schema: {
          summary: ACTION_SUMMARIES[action],
          tags: ['pipelines'],
          params: nameParams,
          response: { 200: actionAnswer, 404: errorAnswer },
        },
      },
      async (request, reply) => {
        const slot = supervisor.get(request.params.name);
        if (!slot) return notFound(reply, request.params.name);
        await slot[action]();
        return { name: slot.name, status: slot.status };
      },
    );
  }

  app.delete<NameRequest>(
    '/pipelines/:name',
    {
      config: role('operator'),
      schema: {
        summary: 'Stop a pipeline (drained, checkpointed) and remove it from the daemon',
        description: 'Its checkpoint stays in its data directory: applying it again resumes from there.',
        tags: ['pipelines'],
        params: nameParams,
        response: { 200: actionAnswer, 404: errorAnswer, 409: errorAnswer },
      },
    },
    async (request, reply) => {
      const slot = supervisor.get(request.params.name);
      if (!slot) return notFound(reply, request.params.name);
      if (slot.owner !== API_OWNER) {
        return reply.code(409).send({
          statusCode: 409,
          error: 'Conflict',
          message: `pipeline ${slot.name} is managed by ${slot.owner}: remove it there (or stop it here)`,
        });
      }
      await supervisor.remove(slot.name);
      return { name: slot.name, status: 'deleted' };
    },
  );

  app.get(
    '/dead-letters',
    {
      config: role('viewer'),
      schema: {
        summary: 'Dead-letter counts of every pipeline',
        tags: ['pipelines'],
        response: { 200: { type: 'array', items: deadLetters } },
      },
    },
    async () => supervisor.list().map((slot) => ({ pipeline: slot.name, ...slot.deadLetterCounts() })),
  );

  app.get<NameRequest>(
    '/pipelines/:name/dead-letters',
    {
      config: role('viewer'),
      schema: {
        summary: 'Dead-letter counts of one pipeline',
        tags: ['pipelines'],
        params: nameParams,
        response: { 200: deadLetters, 404: errorAnswer },
      },
    },
    async (request, reply) => {
      const slot = supervisor.get(request.params.name);
      if (!slot) return notFound(reply, request.params.name);
      return { pipeline: slot.name, ...slot.deadLetterCounts() };
    },
  );

  app.get(
    '/config',
    {
      config: role('viewer'),
      schema: {
        summary: 'The config directory: each file, whether its last change was taken, its diagnostics',
        tags: ['config'],
        response: { 200: configAnswer },
      },
    },
    async () => ({
      ...(options.configDirPath ? { dir: options.configDirPath } : {}),
      scans: options.configDir?.scans ?? 0,
      files: (options.configDir?.state() ?? []).map((f) => ({
        ...f,
        diagnostics: f.diagnostics.map((d) => ({ ...d, text: formatDiagnostic(d) })),
      })),
    }),
  );
}

const ACTION_SUMMARIES = {
  pause: 'Pause: sources stop, everything in flight drains, a checkpoint is written; resume continues from it',
  resume: 'Resume a paused or stopped pipeline from its last checkpoint',
  stop: 'Stop: as pause, and it stays stopped until resumed or applied again',
} as const;

function notFound(reply: FastifyReply, name: string) {
  return reply.code(404).send({ statusCode: 404, error: 'Not Found', message: `no pipeline named ${name}` });
}

function applyStatus(outcome: ApplyOutcome): number {
  if (!outcome.valid) return 422;
  return outcome.pipelines.some((p) => p.action === 'refused') ? 409 : 200;
}

function applyAnswerOf(outcome: ApplyOutcome, dryRun: boolean) {
  return {
    valid: outcome.valid,
    dryRun,
    diagnostics: outcome.diagnostics.map((d) => ({ ...d, text: formatDiagnostic(d) })),
    pipelines: outcome.pipelines,
  };
}

function summary(slot: PipelineSlot) {
  const version = slot.desired ?? slot.running;
  const stats = slot.stats;
  return {
    name: slot.name,
    status: slot.status,
    ...(slot.owner ? { owner: slot.owner } : {}),
    ...(version ? { file: version.spec.file, version: version.fingerprint, appliedAt: version.appliedAt } : {}),
    ...(slot.running ? { runningVersion: slot.running.fingerprint } : {}),
    runs: slot.runs,
    ...(slot.lastError ? { lastError: slot.lastError } : {}),
    ...(stats
      ? {
          stats: {
            recordsIn: stats.recordsIn,
            recordsOut: stats.recordsOut,
            rejected: stats.rejected,
            errors: stats.errors,
            bytesRead: stats.bytesRead,
            checkpoints: stats.checkpoints,
            // A run's own figure is set when it ends; while it runs, the time since it started.
            elapsedMs: slot.running && slot.startedAt !== undefined ? Date.now() - slot.startedAt : stats.elapsedMs,
          },
        }
      : {}),
  };
}

function detail(slot: PipelineSlot) {
  const version = slot.desired ?? slot.running;
  const spec = version?.spec;
  return {
    ...summary(slot),
    ...(version && spec ? { yaml: redact(version.yaml, spec.secrets) } : {}),
    ...(spec
      ? {
          graph: {
            stages: spec.stages.map((s) => ({
              id: s.id,
              kind: s.kind,
              type: s.type,
              inputs: s.inputs.map((i) => i.text),
            })),
            edges: buildGraph(spec.stages).edges.map((e) => ({ from: e.from, port: e.port, to: e.to })),
            mermaid: renderGraph([spec], 'mermaid'),
          },
        }
      : {}),
    lastErrors: slot.recentProblems(),
    ...(slot.lastRefusal
      ? {
          lastRefusal: {
            version: slot.lastRefusal.fingerprint,
            message: slot.lastRefusal.message,
            time: slot.lastRefusal.time,
          },
        }
      : {}),
    deadLetters: { pipeline: slot.name, ...slot.deadLetterCounts() },
  };
}
