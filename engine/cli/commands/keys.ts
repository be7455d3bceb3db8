/**
 * `etl keys create|list|revoke`: the API keys of `etl serve`, in the daemon's store (the embedded
 * database under `<data-dir>/security/pgdata`, or `--postgres-url`). A key's secret is printed once, at
 * creation; only its scrypt hash is kept.
 */
import { EtlError, errorMessage } from '../../errors.ts';
import { isRole, ROLES, type Role } from '../../server/security/keys.ts';
import { redactText } from '../../server/security/redact-text.ts';
import { type KeyInfo, SecurityStore, type StoreLocation } from '../../server/security/store.ts';

export interface KeysOptions extends StoreLocation {
  format: 'text' | 'json';
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
}

export type KeysCommand =
  | { readonly action: 'create'; readonly name: string; readonly role: string }
  | { readonly action: 'list'; readonly all: boolean }
  | { readonly action: 'revoke'; readonly id: string };

export async function runKeys(command: KeysCommand, options: KeysOptions): Promise<number> {
  if (command.action === 'create' && !isRole(command.role)) {
    options.err.write(`etl keys: unknown role ${JSON.stringify(command.role)}; one of ${ROLES.join(', ')}\n`);
    return 2;
  }
  let store: SecurityStore;
  try {
    store = await SecurityStore.open(options, 'etl keys');
  } catch (error) {
    options.err.write(`etl keys: ${redactText(errorMessage(error))}\n`);
    if (error instanceof EtlError && error.code === 'ETL_LOCKED') {
      options.err.write(
        'etl keys: while `etl serve` runs on this data directory, manage keys through its API ' +
          '(POST, GET /keys, DELETE /keys/:id, as admin), or keep them on a shared server (--postgres-url)\n',
      );
    }
    return 1;
  }
  try {
    return await run(store, command, options);
  } catch (error) {
    options.err.write(`etl keys (${store.label}): ${redactText(errorMessage(error))}\n`);
    return 1;
  } finally {
    await store.close().catch(() => {});
  }
}

async function run(store: SecurityStore, command: KeysCommand, options: KeysOptions): Promise<number> {
  const { out, err, format } = options;
  switch (command.action) {
    case 'create': {
      const made = await store.createKey(command.name, command.role as Role);
      if (format === 'json') out.write(`${JSON.stringify(made, null, 2)}\n`);
      else {
        out.write(`${made.key}\n`);
        err.write(`key ${made.id} (${made.name}, ${made.role}) created: the line above is shown only now, keep it\n`);
      }
      return 0;
    }
    case 'list': {
      const keys = await store.listKeys(command.all);
      out.write(format === 'json' ? `${JSON.stringify(keys, null, 2)}\n` : table(keys));
      return 0;
    }
    case 'revoke': {
      const revoked = await store.revokeKey(command.id);
      if (!revoked) {
        err.write(`etl keys: no key ${JSON.stringify(command.id)} in ${store.label}\n`);
        return 1;
      }
      if (format === 'json') out.write(`${JSON.stringify(revoked, null, 2)}\n`);
      else out.write(`revoked ${revoked.id} (${revoked.name}, ${revoked.role}) at ${revoked.revokedAt}\n`);
      return 0;
    }
  }
}

function table(keys: readonly KeyInfo[]): string {
  const rows = [
    ['ID', 'NAME', 'ROLE', 'CREATED', 'REVOKED'],
    ...keys.map((k) => [k.id, k.name, k.role, k.createdAt, k.revokedAt ?? '']),
  ];
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] as string).length))) ?? [];
  return `${rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i] as number))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')}\n`;
}
