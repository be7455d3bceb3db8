import { defineTransform } from '../../../engine/operator.ts';
import { withFields } from '../../../engine/record-schema.ts';
import { replacedFields } from '../../shared/added-fields.ts';
import { prefixedFields } from './fields.ts';
import { type GeoipOptions, schema } from './schema.ts';

const defaults = {
  source_field: schema.properties.source_field.default,
  prefix: schema.properties.prefix.default,
  language: schema.properties.language.default,
  cache_size: schema.properties.cache_size.default,
};

export default defineTransform<typeof schema, GeoipOptions>({
  type: 'geoip',
  stability: 'beta',
  summary: 'Add country, subdivision, city, coordinates and ASN of the client address from MaxMind DB files',
  schema,
  accepts: ['access'],
  outputs: { default: 'access' },
  // Adds its fields to the records themselves.
  changesRecords: true,
  // Every record gets every field (null when unknown): one shape, one column each.
  outputSchemas: (options, input) => {
    const fields = prefixedFields(options.prefix ?? 'geo_');
    return { default: withFields(input, fields, Object.keys(fields)) };
  },
  validate: (options, context) => {
    const problems = replacedFields(Object.keys(prefixedFields(options.prefix ?? 'geo_')), context);
    const files =
      options.database === undefined
        ? []
        : typeof options.database === 'string'
          ? [options.database]
          : options.database;
    files.forEach((file, i) => {
      // MaxMind's downloads are archives (GeoLite2-City_20261201.tar.gz): the reader wants the .mmdb inside.
      if (/\.(tar\.gz|tgz|gz|zip)$/i.test(file)) {
        problems.push({
          path: typeof options.database === 'string' ? ['database'] : ['database', i],
          message: `\`${file}\` is a compressed archive, not an MMDB file`,
          hint: 'extract the .mmdb file from it (tar xzf, gunzip, unzip) and name that',
        });
      }
    });
    return problems;
  },
  fields: (options) => [{ path: ['source_field'], field: options.source_field ?? 'client_ip' }],
  examples: [
    { ...defaults },
    { ...defaults, prefix: 'client_geo_', cache_size: 0 },
    { ...defaults, database: ['GeoLite2-City.mmdb', 'GeoLite2-ASN.mmdb'], language: 'fr' },
  ],
  // Lookups in a database each instance opens (and reopens when it changes); the cache only saves time.
  stateless: true,
  create: async (options, ctx) => new (await import('./geoip.ts')).GeoipTransform(options, ctx),
});
