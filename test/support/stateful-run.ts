/**
 * One run of a stateful pipeline in a process of its own, for crash loops: a counting source, a transform
 * with keyed and inline state, the real file sink (exactly once). `node stateful-run.ts <dataDir> <output>
 * <count>`; exits 0 when the run completed.
 */
import fileSink from '../../operators/sinks/file/index.ts';
import { runPipeline } from '../../engine/runtime/run.ts';
import { countingSource, countingTransform } from './operators.ts';
import { pipeline, stage } from './spec.ts';

const [dataDir, output, count] = process.argv.slice(2) as [string, string, string];

const spec = pipeline(
  'stateful-crash',
  dataDir,
  [
    stage({ id: 'src', def: countingSource, options: { count: Number(count), batch: 500 } }),
    stage({ id: 'count', def: countingTransform, inputs: ['src'], options: { keys: 97 } }),
    stage({
      id: 'out',
      def: fileSink,
      inputs: ['count'],
      options: { path: output, format: 'jsonl', compression: 'none', append: false },
    }),
  ],
  { checkpointIntervalMs: 20 },
);

const result = await runPipeline(spec);
if (!result.ok) process.stderr.write(`${result.error?.message}\n`);
process.exitCode = result.ok ? 0 : 1;
