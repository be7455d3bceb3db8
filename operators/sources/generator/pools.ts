/**
 * The material synthetic lines are built from, computed once per process with a fixed seed: clients,
 * paths, query strings, agents, referrers, sizes and durations, with realistic weights. A line then
 * costs a handful of table reads and one string concatenation.
 */
import { below, type Random, sfc32, unit, Weighted } from './random.ts';

const rng = sfc32(0x5eed, 0x9001);

// ---------------------------------------------------------------------------------------- clients

function ipv4(r: Random): string {
  for (;;) {
    const a = 1 + below(r, 223);
    const b = below(r, 256);
    // Skip private, loopback, link-local and documentation ranges: clients of a public site.
    if (
      a === 10 ||
      a === 127 ||
      (a === 169 && b === 254) ||
      (a === 172 && b >= 16 && b < 32) ||
      (a === 192 && b === 168)
    ) {
      continue;
    }
    return `${a}.${b}.${below(r, 256)}.${1 + below(r, 254)}`;
  }
}

const V6_PREFIXES = [
  '2a02:810d',
  '2a01:e0a',
  '2600:1700',
  '2601:646',
  '2001:4860',
  '2a00:1450',
  '2406:da18',
  '2804:14c',
];

function ipv6(r: Random): string {
  const prefix = V6_PREFIXES[below(r, V6_PREFIXES.length)] as string;
  // A /32 prefix (two groups) plus six groups is a full address; the short form compresses the zeros.
  const groups: string[] = [];
  for (let i = 0; i < 6; i++) groups.push(below(r, 0x10000).toString(16));
  return below(r, 3) === 0 ? `${prefix}::${groups[5]}` : `${prefix}:${groups.join(':')}`;
}

/** Client addresses; about 6% IPv6. Picked with a skew, so a few clients make many requests. */
export const CLIENTS: readonly string[] = Array.from({ length: 5000 }, (_, i) =>
  i % 16 === 7 ? ipv6(rng) : ipv4(rng),
);

export const USERS = new Weighted<string>([
  ['-', 1000],
  ['alice', 8],
  ['bob', 6],
  ['deploy', 5],
  ['admin', 5],
]);

// ----------------------------------------------------------------------------------------- requests

export const METHODS = new Weighted<string>([
  ['GET', 860],
  ['POST', 100],
  ['HEAD', 20],
  ['PUT', 8],
  ['OPTIONS', 6],
  ['DELETE', 5],
  ['PATCH', 5],
]);

export const PROTOCOLS = new Weighted<string>([
  ['HTTP/1.1', 700],
  ['HTTP/2.0', 260],
  ['HTTP/1.0', 40],
]);

const WORDS = [
  'shoes',
  'coffee',
  'laptop',
  'garden',
  'winter-jacket',
  'headphones',
  'desk',
  'bike',
  'camera',
  'tent',
  'kettle',
  'lamp',
  'chair',
  'backpack',
  'watch',
  'sofa',
];

function hash(r: Random, length: number): string {
  let s = '';
  while (s.length < length) s += r.next().toString(16).padStart(8, '0');
  return s.slice(0, length);
}

function word(r: Random): string {
  return WORDS[below(r, WORDS.length)] as string;
}

type PathMaker = (r: Random) => string;

const PAGE_KINDS: ReadonlyArray<readonly [PathMaker, number]> = [
  [() => '/', 120],
  [(r) => `/products/${1 + below(r, 5000)}`, 140],
  [(r) => `/category/${word(r)}`, 60],
  [(r) => `/blog/${word(r)}-${2015 + below(r, 12)}`, 40],
  [() => '/search', 30],
  [() => '/cart', 25],
  [() => '/checkout', 10],
  [() => '/login', 15],
  [() => '/account/orders', 10],
  [(r) => `/api/v1/users/${1 + below(r, 20000)}`, 60],
  [(r) => `/api/v1/orders/${100000 + below(r, 900000)}`, 40],
  [() => '/api/v1/products', 30],
  [() => '/api/health', 25],
  [(r) => `/static/js/app.${hash(r, 8)}.js`, 90],
  [(r) => `/static/css/main.${hash(r, 8)}.css`, 50],
  [(r) => `/images/${word(r)}-${below(r, 100)}.${['jpg', 'png', 'webp'][below(r, 3)]}`, 120],
  [(r) => `/fonts/inter-${['regular', 'bold', 'italic'][below(r, 3)]}.woff2`, 20],
  [() => '/favicon.ico', 40],
  [() => '/robots.txt', 10],
  [() => '/sitemap.xml', 5],
  // What scanners try on every public address.
  [() => '/wp-login.php', 6],
  [() => '/.env', 4],
  [() => '/xmlrpc.php', 3],
  [() => '/.git/config', 3],
  [() => '/phpmyadmin/index.php', 2],
  [() => '/cgi-bin/luci/;stok=/locale', 1],
];

function buildPaths(): string[] {
  const kinds = new Weighted<PathMaker>(PAGE_KINDS);
  const paths: string[] = [];
  for (let i = 0; i < 4096; i++) paths.push(kinds.pick(rng)(rng));
  return paths;
}

/** Request paths in realistic proportions (a draw is uniform over this pool). */
export const PATHS: readonly string[] = buildPaths();

function buildQueries(): string[] {
  const makers: PathMaker[] = [
    (r) => `?q=${word(r)}`,
    (r) => `?q=${word(r)}+${word(r)}&page=${1 + below(r, 9)}`,
    (r) => `?page=${1 + below(r, 20)}`,
    () => '?utm_source=google&utm_medium=cpc&utm_campaign=spring',
    () => '?utm_source=newsletter&utm_medium=email',
    (r) => `?id=${below(r, 100000)}&ref=home`,
    () => '?sort=price&order=asc',
    (r) => `?v=${hash(r, 6)}`,
    (r) => `?session=${hash(r, 16)}`,
  ];
  return Array.from({ length: 512 }, () => (makers[below(rng, makers.length)] as PathMaker)(rng));
}

export const QUERIES: readonly string[] = buildQueries();

/** Targets of requests that send a body (POST, PUT, PATCH, DELETE). */
export const WRITE_PATHS: readonly string[] = Array.from({ length: 256 }, (_, i) => {
  const n = 1 + below(rng, 20000);
  const choices = [
    '/api/v1/orders',
    `/api/v1/users/${n}`,
    '/api/v1/events',
    '/login',
    '/cart',
    '/checkout',
    `/api/v1/orders/${100000 + n}`,
    i % 32 === 0 ? '/xmlrpc.php' : '/api/v1/events',
  ];
  return choices[below(rng, choices.length)] as string;
});

/** Share of requests with a query string. */
export const QUERY_RATIO = 0.25;

// ---------------------------------------------------------------------------------------- responses

export const STATUSES = new Weighted<number>([
  [200, 790],
  [304, 55],
  [404, 60],
  [301, 20],
  [302, 15],
  [206, 6],
  [201, 10],
  [204, 10],
  [400, 8],
  [401, 6],
  [403, 8],
  [429, 3],
  [500, 5],
  [502, 2],
  [503, 2],
]);

/** Response sizes, heavy-tailed (log-normal around a few KB). */
export const SIZES: readonly number[] = Array.from({ length: 2048 }, () => {
  const gaussian = Math.sqrt(-2 * Math.log(1 - unit(rng))) * Math.cos(2 * Math.PI * unit(rng));
  return Math.max(20, Math.round(Math.exp(8.3 + 1.4 * gaussian)));
});

/** Small error bodies. */
export const ERROR_SIZES: readonly number[] = Array.from({ length: 64 }, () => 150 + below(rng, 400));

/** Request durations in seconds with millisecond resolution, as nginx prints them (mostly fast, a long tail). */
export const DURATIONS: readonly string[] = Array.from({ length: 2048 }, () => {
  const seconds = -Math.log(1 - unit(rng)) * 0.06 + (below(rng, 50) === 0 ? unit(rng) * 4 : 0);
  return seconds.toFixed(3);
});

// ------------------------------------------------------------------------------- agents and referrers

export const AGENTS = new Weighted<string>([
  [
    'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
    260,
  ],
  [
    'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15',
    110,
  ],
  ['Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0', 50],
  ['Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0', 50],
  [
    'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0',
    60,
  ],
  [
    'Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1',
    150,
  ],
  [
    'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36',
    120,
  ],
  [
    'Mozilla/5.0 (Linux; Android 13; SM-A536B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Mobile Safari/537.36',
    60,
  ],
  ['Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)', 40],
  ['Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)', 20],
  ['Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)', 15],
  ['Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)', 8],
  ['facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)', 6],
  ['curl/8.5.0', 12],
  ['python-requests/2.32.3', 10],
  ['Go-http-client/1.1', 8],
  ['Wget/1.21.4', 3],
  ['kube-probe/1.31', 10],
  ['-', 8],
]);

export const REFERRERS = new Weighted<string>([
  ['-', 480],
  ['https://www.google.com/', 200],
  ['https://www.bing.com/', 25],
  ['https://duckduckgo.com/', 20],
  ['https://example.com/', 90],
  ['https://example.com/products/1234', 50],
  ['https://example.com/category/shoes', 40],
  ['https://example.com/search?q=coffee', 30],
  ['https://t.co/x9Fk2LmQ', 20],
  ['https://www.facebook.com/', 25],
  ['android-app://com.google.android.gm/', 10],
  ['https://news.ycombinator.com/', 10],
]);

// --------------------------------------------------------------------------------------- malformed

/** Junk the way it reaches logs: control bytes, high Latin-1, replacement characters (never a newline). */
export const JUNK: readonly string[] = Array.from({ length: 64 }, () => {
  let s = '';
  const length = 4 + below(rng, 60);
  for (let i = 0; i < length; i++) {
    const kind = below(rng, 4);
    const code =
      kind === 0
        ? below(rng, 0x20)
        : kind === 1
          ? 0x80 + below(rng, 0x80)
          : kind === 2
            ? 0xfffd
            : 0x21 + below(rng, 0x5e);
    s += code === 0x0a || code === 0x0d ? ' ' : String.fromCharCode(code);
  }
  return s;
});

/** TLS ClientHello bytes sent to a plain HTTP port, as nginx escapes them into the request field. */
export const TLS_REQUESTS: readonly string[] = Array.from({ length: 32 }, () => {
  let s = '\\x16\\x03\\x01\\x02\\x00\\x01\\x00\\x01\\xFC\\x03\\x03';
  for (let i = 0; i < 12; i++) {
    s += `\\x${below(rng, 256).toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return s;
});
