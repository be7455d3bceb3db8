import type { FieldSchema } from '../../../engine/record-schema.ts';

const text = (description: string) => ({ type: ['string', 'null'], description }) as const;

export const BOT_KINDS = ['crawler', 'fetcher', 'cli', 'library', 'headless', 'other'] as const;
export type BotKind = (typeof BOT_KINDS)[number];

/** The fields user_agent adds, unprefixed, with their types: each becomes a typed column (a postgres sink's). */
export const UA_FIELDS = {
  browser: text('Browser (`Chrome`, `Mobile Safari`, `Firefox`), or the bot’s client (`Googlebot`, `curl`).'),
  browser_version: text('Its full version (`120.0.6099.144`).'),
  engine: text('Rendering engine (`Blink`, `WebKit`, `Gecko`).'),
  os: text('Operating system (`Windows`, `macOS`, `iOS`, `Android`, `Linux`).'),
  os_version: text('Its version (`10`, `17.1`).'),
  device_type: text(
    'mobile, tablet, smarttv, console, wearable, xr or embedded as the agent says; desktop when it names an ' +
      'operating system but no such device; null for bots and agents that say neither.',
  ),
  device_vendor: text('Device maker (`Apple`, `Samsung`).'),
  device_model: text('Device model (`iPhone`, `SM-S918B`).'),
  is_bot: {
    type: ['boolean', 'null'],
    description: 'True for crawlers, monitoring, scripts and libraries, headless browsers; null without an agent.',
  },
  bot_name: text('The bot’s name (`Googlebot`, `curl`, `UptimeRobot`, `Chrome Headless`); null for people.'),
  bot_kind: {
    type: ['string', 'null'],
    enum: [...BOT_KINDS, null],
    description:
      '`crawler` (search engines, SEO and AI crawlers), `fetcher` (monitoring, previews, on-demand fetches), ' +
      '`cli` (curl, wget), `library` (python-requests, Go, axios), `headless` (headless browsers), `other` ' +
      '(known to be a bot, of no known kind).',
  },
} as const satisfies Record<string, FieldSchema>;

export type UaField = keyof typeof UA_FIELDS;
export const UA_FIELD_NAMES = Object.keys(UA_FIELDS) as UaField[];

export function prefixedFields(prefix: string): Record<string, FieldSchema> {
  return Object.fromEntries(UA_FIELD_NAMES.map((name) => [`${prefix}${name}`, UA_FIELDS[name]]));
}
