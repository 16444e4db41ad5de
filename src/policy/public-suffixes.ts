/**
 * Multi-label public suffixes: names under which anyone can register a domain or publish a site, so a
 * `*.<suffix>` allowlist entry reaches every such site (`*.co.uk`, `*.github.io`). A hand-picked subset of the
 * Public Suffix List (https://publicsuffix.org/list/public_suffix_list.dat, MPL-2.0), checked against the
 * Debian `publicsuffix` 20230209 copy (test/unit/policy-lint.test.ts re-checks it against
 * /usr/share/publicsuffix when present): the second-level registries of the most used country codes (ICANN
 * section), and hosting, tunnel and dynamic-DNS domains commonly used for phishing and exfiltration (PRIVATE
 * section). Single-label suffixes (`*.com`) are refused as top-level domains without a list.
 */
export const ICANN_SUFFIXES: readonly string[] = [
  'co.uk', 'org.uk', 'me.uk', 'ltd.uk', 'plc.uk', 'net.uk', 'ac.uk', 'gov.uk', 'nhs.uk', 'com.au', 'net.au',
  'org.au', 'edu.au', 'gov.au', 'id.au', 'asn.au', 'co.nz', 'net.nz', 'org.nz', 'ac.nz', 'govt.nz', 'geek.nz',
  'gen.nz', 'school.nz', 'co.jp', 'ne.jp', 'or.jp', 'ac.jp', 'go.jp', 'gr.jp', 'ad.jp', 'ed.jp', 'co.kr', 'or.kr',
  'ne.kr', 're.kr', 'pe.kr', 'com.br', 'net.br', 'org.br', 'gov.br', 'blog.br', 'com.cn', 'net.cn', 'org.cn',
  'gov.cn', 'edu.cn', 'com.tw', 'org.tw', 'net.tw', 'idv.tw', 'com.hk', 'org.hk', 'net.hk', 'idv.hk', 'com.sg',
  'net.sg', 'org.sg', 'edu.sg', 'per.sg', 'com.my', 'net.my', 'org.my', 'co.in', 'net.in', 'org.in', 'firm.in',
  'gen.in', 'ind.in', 'co.za', 'org.za', 'net.za', 'web.za', 'com.mx', 'org.mx', 'net.mx', 'com.ar', 'net.ar',
  'org.ar', 'com.tr', 'net.tr', 'org.tr', 'gen.tr', 'web.tr', 'com.ua', 'net.ua', 'org.ua', 'in.ua', 'co.il',
  'org.il', 'net.il', 'co.id', 'or.id', 'web.id', 'my.id', 'biz.id', 'com.ph', 'net.ph', 'org.ph', 'com.pk',
  'net.pk', 'org.pk', 'com.ng', 'org.ng', 'com.eg', 'com.sa', 'com.vn', 'co.th', 'in.th', 'or.th', 'com.co',
  'net.co', 'nom.co', 'com.pe', 'com.ve', 'com.ec', 'co.ke', 'or.ke', 'com.pl', 'net.pl', 'org.pl', 'co.at', 'or.at',
  'com.es', 'nom.es', 'org.es', 'com.gr',
];

export const PRIVATE_SUFFIXES: readonly string[] = [
  'com.ru', 'net.ru', 'org.ru', 'com.de', 'github.io', 'githubusercontent.com', 'gitlab.io', 'netlify.app',
  'vercel.app', 'herokuapp.com', 'pages.dev', 'workers.dev', 'appspot.com', 'web.app', 'firebaseapp.com',
  'azurewebsites.net', 'cloudfront.net', 'blogspot.com', 'ngrok.io', 'trycloudflare.com', 'glitch.me',
  'onrender.com', 'fly.dev', 's3.amazonaws.com', 'elasticbeanstalk.com', 'cloudapp.net', 'azurestaticapps.net',
  'now.sh', 'readthedocs.io', 'deno.dev', 'pythonanywhere.com', 'repl.co', 'r2.dev', 'bitbucket.io', 'duckdns.org',
  'no-ip.org', 'ddns.net', 'dyndns.org', 'myftp.org', 'hopto.org', 'zapto.org', 'wixsite.com', 'myshopify.com',
];

const KINDS = new Map<string, string>([
  ...ICANN_SUFFIXES.map((s) => [s, 'a country registry'] as const),
  ...PRIVATE_SUFFIXES.map((s) => [s, 'a hosting, tunnel or dynamic-DNS service'] as const),
]);

/** The public suffix `domain` is exactly, if it is one in the list (case-insensitive, trailing dot ignored). */
export function publicSuffixOf(domain: string): { suffix: string; what: string } | undefined {
  const suffix = domain.toLowerCase().replace(/\.$/, '');
  const what = KINDS.get(suffix);
  return what === undefined ? undefined : { suffix, what };
}
