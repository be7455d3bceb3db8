import type { FieldSchema } from '../../../engine/record-schema.ts';

/** The fields geoip adds, unprefixed, with their types: each becomes a typed column (a postgres sink's). */
export const GEO_FIELDS = {
  country_code: { type: ['string', 'null'], description: 'ISO 3166-1 alpha-2 code of the country (`FR`).' },
  country: { type: ['string', 'null'], description: 'Name of the country (`France`), in `language`.' },
  subdivision_code: {
    type: ['string', 'null'],
    description: 'ISO 3166-2 code of the largest subdivision, without the country (`IDF`); City databases only.',
  },
  subdivision: {
    type: ['string', 'null'],
    description: 'Name of the largest subdivision (region, state); City databases only.',
  },
  city: { type: ['string', 'null'], description: 'Name of the city; City databases only.' },
  latitude: {
    type: ['number', 'null'],
    minimum: -90,
    maximum: 90,
    description: 'Approximate latitude in degrees; City databases only.',
  },
  longitude: {
    type: ['number', 'null'],
    minimum: -180,
    maximum: 180,
    description: 'Approximate longitude in degrees; City databases only.',
  },
  asn: {
    type: ['integer', 'null'],
    minimum: 0,
    maximum: 4294967295,
    description: 'Autonomous system number announcing the address; ASN databases only.',
  },
  as_org: { type: ['string', 'null'], description: 'Organisation of the autonomous system; ASN databases only.' },
} as const satisfies Record<string, FieldSchema>;

export type GeoField = keyof typeof GEO_FIELDS;
export const GEO_FIELD_NAMES = Object.keys(GEO_FIELDS) as GeoField[];

/** The added fields with their prefix. */
export function prefixedFields(prefix: string): Record<string, FieldSchema> {
  return Object.fromEntries(GEO_FIELD_NAMES.map((name) => [`${prefix}${name}`, GEO_FIELDS[name]]));
}
