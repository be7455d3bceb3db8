import type { FromSchema } from 'json-schema-to-ts';

export const schema = {
  $id: 'https://etl.dev/schemas/operators/transforms/geoip.json',
  type: 'object',
  additionalProperties: false,
  description:
    'Adds the country, subdivision, city, coordinates and autonomous system of each record’s client address, from ' +
    'MaxMind DB (MMDB) files, as flat prefixed fields (`geo_country_code`, `geo_asn`, …). Private, reserved and ' +
    'unparseable addresses get null fields. A database file replaced on disk is reopened.',
  properties: {
    database: {
      description:
        'The MMDB file(s) to look addresses up in, relative to the directory `etl` runs in: one file (a GeoLite2 / ' +
        'GeoIP2 City database holds country, subdivision, city and coordinates) or several (`[GeoLite2-Country.mmdb, ' +
        'GeoLite2-ASN.mmdb]`), each field taken from the first file that has it. Omitted: the bundled country ' +
        'database (`@ip-location-db/geo-whois-asn-country-mmdb`, country codes only).',
      anyOf: [
        { type: 'string', minLength: 1, description: 'One MMDB file.' },
        {
          type: 'array',
          minItems: 1,
          maxItems: 8,
          items: { type: 'string', minLength: 1, description: 'An MMDB file.' },
          description: 'Several MMDB files (country or city, and ASN), looked up in order.',
        },
      ],
      examples: ['GeoLite2-City.mmdb', ['/var/lib/GeoIP/GeoLite2-Country.mmdb', '/var/lib/GeoIP/GeoLite2-ASN.mmdb']],
    },
    source_field: {
      type: 'string',
      minLength: 1,
      default: 'client_ip',
      description: 'The field holding the address to look up (IPv4 or IPv6, IPv4-mapped IPv6 included).',
      examples: ['client_ip'],
    },
    prefix: {
      type: 'string',
      pattern: '^[a-z][a-z0-9_]*$',
      default: 'geo_',
      description: 'Prefix of the added fields: `geo_` gives `geo_country_code`, `geo_city`, `geo_asn`, …',
      examples: ['geo_', 'client_geo_'],
    },
    language: {
      type: 'string',
      pattern: '^[a-z]{2}(-[A-Za-z]{2,4})?$',
      default: 'en',
      description:
        'Language of country, subdivision and city names, as the database names them (`en`, `de`, `fr`, `pt-BR`…); ' +
        'English where it has no name in that language.',
      examples: ['en', 'fr'],
    },
    cache_size: {
      type: 'integer',
      minimum: 0,
      maximum: 10000000,
      default: 50000,
      description:
        'Addresses whose answer is kept in memory, IPv4 and other addresses each (older ones make room; see the README); 0 for none.',
      examples: [50000],
    },
  },
} as const;

export type GeoipOptions = FromSchema<typeof schema>;
