/**
 * Detection and field accuracy of `format: auto` on the corpus of real-world lines
 * (operators/transforms/parse/testdata/corpus/), per expected format: files detected as expected, lines
 * on the expected port (access, error_log or dead_letter), and hand-checked field values that match.
 * Prints the markdown table of the parse README.
 * Usage: node bench/parse-corpus.ts [--verbose] [--ignore field,field] (fields left out of the comparison)
 */
import {
  accuracyByFormat,
  corpusFiles,
  type FileResult,
  runCorpusFile,
} from '../operators/transforms/parse/corpus-support.ts';

const verbose = process.argv.includes('--verbose');
const at = process.argv.indexOf('--ignore');
const ignore = new Set(at > 0 ? (process.argv[at + 1] ?? '').split(',') : []);
const results: FileResult[] = corpusFiles().map((name) => runCorpusFile(name, {}, ignore));
const pct = (n: number, d: number) => (d === 0 ? '–' : `${((100 * n) / d).toFixed(1)}%`);

console.log('| expected format | files | detected | lines | on the right port | fields right |');
console.log('|---|---|---|---|---|---|');
let files = 0;
let detected = 0;
let lines = 0;
let onPort = 0;
let checked = 0;
let right = 0;
for (const row of accuracyByFormat(results)) {
  console.log(
    `| \`${row.format}\` | ${row.files} | ${row.filesDetected} | ${row.lines} | ${pct(row.linesOnPort, row.lines)} | ` +
      `${row.fieldsRight}/${row.fieldsChecked} (${pct(row.fieldsRight, row.fieldsChecked)}) |`,
  );
  files += row.files;
  detected += row.filesDetected;
  lines += row.lines;
  onPort += row.linesOnPort;
  checked += row.fieldsChecked;
  right += row.fieldsRight;
}
console.log(
  `| all | ${files} | ${detected} | ${lines} | ${pct(onPort, lines)} | ${right}/${checked} (${pct(right, checked)}) |`,
);
for (const file of results) {
  const wrong = file.lines.filter((l) => l.mismatches.length > 0);
  if (file.detected !== file.expectation.format || (verbose && wrong.length > 0)) {
    console.log(`\n${file.name}: detected ${file.detected}, expected ${file.expectation.format}`);
  }
  if (verbose) for (const l of wrong) console.log(`  line ${l.line}: ${l.mismatches.join('; ')}`);
}
