/**
 * The plain baseline of bench/whole-process.ts: what a user writes in a few lines of Node without etl. Reads a
 * combined log in 1 MiB chunks, splits lines, matches each against one combined-format regex and makes a record of
 * the groups (status and bytes as numbers, as any use of them would). Plain groups and an object literal: named
 * groups and spreading them cost about a third more here. Prints the count.
 * Usage: node bench/_regex-loop.ts <file>
 */
import { closeSync, openSync, readSync } from 'node:fs';

const COMBINED = /^(\S+) (\S+) (\S+) \[([^\]]+)\] "(\S+) (\S+) ([^"]+)" (\d{3}) (\d+|-) "([^"]*)" "([^"]*)"$/;

const file = process.argv[2];
if (!file) throw new Error('usage: node bench/_regex-loop.ts <file>');
const fd = openSync(file, 'r');
const buffer = Buffer.allocUnsafe(1 << 20);
let carry = '';
let records = 0;
let bytesTotal = 0;
for (;;) {
  const n = readSync(fd, buffer, 0, buffer.length, null);
  if (n === 0) break;
  const lines = (carry + buffer.toString('utf8', 0, n)).split('\n');
  carry = lines.pop() ?? '';
  for (const line of lines) {
    const m = COMBINED.exec(line);
    if (m === null) continue;
    const record = {
      client_ip: m[1],
      ident: m[2],
      user: m[3],
      time: m[4],
      method: m[5],
      path: m[6],
      protocol: m[7],
      status: Number(m[8]),
      bytes: m[9] === '-' ? 0 : Number(m[9]),
      referrer: m[10],
      user_agent: m[11],
    };
    bytesTotal += record.bytes;
    records++;
  }
}
closeSync(fd);
process.stdout.write(`${records} ${bytesTotal}\n`);
