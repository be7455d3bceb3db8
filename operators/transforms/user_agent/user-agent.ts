/**
 * The user_agent transform: ua-parser-js (with its bot extensions: crawlers, fetchers, command-line clients,
 * libraries) for browser, engine, OS and device, isbot's pattern list for the bots ua-parser-js does not name.
 * Parsing an agent takes tens of microseconds and logs repeat a few thousand agents, so answers are cached.
 */
import { isbot, isbotMatch } from 'isbot';
import { UAParser } from 'ua-parser-js';
import { Bots } from 'ua-parser-js/extensions';
import type { OperatorContext, PortRecords, Transform } from '../../../engine/operator.ts';
import type { EtlRecord } from '../../../engine/record.ts';
import { AnswerCache, recordUpdater } from '../../shared/enrich.ts';
import { fieldReader } from '../../shared/fields.ts';
import { type BotKind, UA_FIELD_NAMES } from './fields.ts';
import type { UserAgentOptions } from './schema.ts';

type Value = string | boolean | null;
/** Values in the order of UA_FIELD_NAMES. */
type Answer = readonly Value[];

const NULLS: Answer = Object.freeze(UA_FIELD_NAMES.map(() => null));
const BOT_TYPES = new Set<string>(['crawler', 'fetcher', 'cli', 'library']);
const DEVICE_TYPES = new Set(['mobile', 'tablet', 'smarttv', 'console', 'wearable', 'xr', 'embedded']);

/** What one agent string says. */
export interface Agent {
  readonly browser: string | null;
  readonly browser_version: string | null;
  readonly engine: string | null;
  readonly os: string | null;
  readonly os_version: string | null;
  readonly device_type: string | null;
  readonly device_vendor: string | null;
  readonly device_model: string | null;
  readonly is_bot: boolean | null;
  readonly bot_name: string | null;
  readonly bot_kind: BotKind | null;
}

const str = (v: string | undefined): string | null => (v === undefined || v === '' ? null : v);

/**
 * The token of `ua` around what isbot matched (`Pingdom.com_bot_version_1.4_`, `kube-probe`), without its version:
 * isbot says that it is a bot, not which.
 */
function nameAround(ua: string, match: string): string | null {
  const at = ua.indexOf(match);
  if (at < 0) return null;
  let start = at;
  while (start > 0 && !' ;(),+'.includes(ua[start - 1] as string)) start--;
  let end = at + 1;
  while (end < ua.length && !' ;(),+/'.includes(ua[end] as string)) end++;
  const name = ua.slice(start, end).slice(0, 100);
  return name === '' ? null : name;
}

export function parseAgent(parser: UAParser, ua: string): Agent {
  // The four parts asked one by one: getResult() asks the same and the CPU too (not used), at twice the cost.
  parser.setUA(ua);
  const browser = parser.getBrowser();
  const engine = parser.getEngine();
  const os = parser.getOS();
  const device = parser.getDevice();
  let kind: BotKind | null = null;
  let name: string | null = null;
  if (browser.type !== undefined && BOT_TYPES.has(browser.type)) {
    kind = browser.type as BotKind;
    name = str(browser.name);
  } else if (browser.name !== undefined && /headless/i.test(browser.name)) {
    kind = 'headless';
    name = browser.name;
  } else if (isbot(ua)) {
    const match = isbotMatch(ua);
    kind = match !== null && /headless|phantomjs|puppeteer|playwright|selenium/i.test(match) ? 'headless' : 'other';
    name = match === null ? null : nameAround(ua, match);
  }
  const bot = kind !== null;
  const deviceType =
    device.type !== undefined && DEVICE_TYPES.has(device.type) ? device.type : !bot && os.name ? 'desktop' : null;
  return {
    browser: str(browser.name),
    browser_version: str(browser.version),
    engine: str(engine.name),
    os: str(os.name),
    os_version: str(os.version),
    device_type: deviceType,
    device_vendor: str(device.vendor),
    device_model: str(device.model),
    is_bot: bot,
    bot_name: name,
    bot_kind: kind,
  };
}

export class UserAgentTransform implements Transform {
  private readonly parser = new UAParser(Bots);
  private readonly cache: AnswerCache<Answer>;
  private readonly build: (record: EtlRecord, values: readonly unknown[]) => EtlRecord;
  private readonly read: (record: EtlRecord) => unknown;

  constructor(options: UserAgentOptions, ctx: OperatorContext) {
    const prefix = options.prefix ?? 'ua_';
    this.build = recordUpdater(UA_FIELD_NAMES.map((name) => `${prefix}${name}`));
    this.read = fieldReader(options.source_field ?? 'user_agent');
    this.cache = new AnswerCache(options.cache_size ?? 20000, ctx.metrics, 'etl_user_agent', 'Agent strings');
  }

  private readonly answer = (ua: string): Answer => {
    const agent = parseAgent(this.parser, ua);
    return Object.freeze(UA_FIELD_NAMES.map((name) => agent[name]));
  };

  process(records: EtlRecord[]): PortRecords {
    const out: EtlRecord[] = new Array(records.length);
    const build = this.build;
    for (let r = 0; r < records.length; r++) {
      const record = records[r] as EtlRecord;
      const ua = this.read(record);
      // No agent (null, empty, `-` as some formats log it): nothing is known, not even whether it is a bot.
      const answer = typeof ua === 'string' && ua !== '' && ua !== '-' ? this.cache.get(ua, this.answer) : NULLS;
      out[r] = build(record, answer);
    }
    this.cache.publish();
    return { default: out };
  }

  /** Share of agents answered from the cache since the start. */
  get hitRatio(): number {
    return this.cache.hitRatio;
  }
}
