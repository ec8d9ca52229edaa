import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { REPO_ROOT } from '../../wiring/index.js';
import { CONSOLE_PREFIX, type ConsoleSource, type ExecutionFilter } from './api.js';
import { maskTokens, maskTokenText } from './mask.js';

/**
 * The local console's HTTP side, mounted on the edge at /console/: one HTML shell for every
 * page, one script and one stylesheet built by esbuild from local/console/app when first asked
 * for (from the repository's own sources and node_modules: nothing is fetched at run time),
 * and a read-only JSON API over a ConsoleSource.
 *
 * Safe by default: GET and HEAD only; only loopback peers, and only with a loopback Host (so a
 * web page elsewhere cannot reach it by DNS rebinding); a Content-Security-Policy that allows
 * this origin alone; every answer goes through the task-token masks.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-resource-policy': 'same-origin',
};

export interface ConsoleAssets {
  js: string;
  css: string;
}

const APP_DIR = join(REPO_ROOT, 'local', 'console', 'app');

/** Bundles the pages (TypeScript, dagre, chart.js) into one script; the CSS is read as it is. */
export async function buildConsoleAssets(entry: 'main.ts' | 'report-main.ts' = 'main.ts'): Promise<ConsoleAssets> {
  const { build } = await import('esbuild');
  const result = await build({
    entryPoints: [join(APP_DIR, entry)],
    bundle: true,
    write: false,
    format: 'iife',
    platform: 'browser',
    target: 'es2020',
    minify: true,
    legalComments: 'none',
    logLevel: 'silent',
  });
  return { js: result.outputFiles[0].text, css: readFileSync(join(APP_DIR, 'console.css'), 'utf8') };
}

export function shellHtml(title = 'Rotor console'): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<link rel="stylesheet" href="${CONSOLE_PREFIX}assets/console.css">
<script defer src="${CONSOLE_PREFIX}assets/console.js"></script>
</head>
<body>
<header class="top"><a class="brand" href="${CONSOLE_PREFIX}">Rotor</a><span class="where">local runtime · read-only</span>
<nav><a href="${CONSOLE_PREFIX}" data-nav="fleet">Fleet</a><a href="${CONSOLE_PREFIX}executions" data-nav="executions">Executions</a></nav></header>
<main id="page"><p class="muted">loading…</p></main>
</body>
</html>
`;
}

export function isLoopbackAddress(address: string | undefined): boolean {
  if (!address) return false;
  const plain = address.startsWith('::ffff:') ? address.slice(7) : address;
  return plain === '::1' || (isIP(plain) === 4 && plain.startsWith('127.'));
}

/** Host header names a loopback address (or localhost), with any port. */
export function isLoopbackHost(host: string | undefined): boolean {
  if (!host) return false;
  const name = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.replace(/:\d+$/, '');
  return name === 'localhost' || isLoopbackAddress(name);
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

function limitOf(value: string | null): number {
  if (value === null || value === '') return 100;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 1000) throw new HttpError(400, 'limit must be a whole number from 1 to 1000');
  return n;
}

function timeOf(name: string, value: string | null): string | undefined {
  if (value === null || value === '') return undefined;
  if (Number.isNaN(Date.parse(value))) throw new HttpError(400, `${name} must be a date and time (ISO 8601)`);
  return new Date(value).toISOString();
}

/** A path segment decoded, or a 400 when its %-escapes are malformed. */
function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new HttpError(400, 'the path has a malformed %-escape');
  }
}

export function executionFilterOf(query: URLSearchParams): ExecutionFilter {
  const status = query.get('status') || undefined;
  if (status !== undefined && !/^(RUNNING|SUCCEEDED|FAILED|TIMED_OUT|ABORTED)$/.test(status)) {
    throw new HttpError(400, 'status must be RUNNING, SUCCEEDED, FAILED, TIMED_OUT or ABORTED');
  }
  const thing = query.get('thing') || undefined;
  if (thing !== undefined && !/^[a-zA-Z0-9:_-]{1,128}$/.test(thing)) throw new HttpError(400, 'thing must be (part of) a thing name');
  return { status, thing, since: timeOf('since', query.get('since')), until: timeOf('until', query.get('until')), limit: limitOf(query.get('limit')) };
}

export class ConsoleServer {
  private assets: Promise<ConsoleAssets> | undefined;

  constructor(private readonly source: ConsoleSource) {}

  /** For the edge's mount(): answers every request under /console/. */
  readonly handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    try {
      await this.route(req, res);
    } catch (error) {
      const status = error instanceof HttpError ? error.status : 500;
      this.send(res, status, 'application/json', JSON.stringify({ message: error instanceof Error ? error.message : String(error) }));
    }
  };

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!isLoopbackAddress(req.socket.remoteAddress)) throw new HttpError(403, 'the console answers loopback clients only');
    if (!isLoopbackHost(req.headers.host)) throw new HttpError(403, 'the console answers requests for a loopback host only');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      throw new HttpError(405, 'the console is read-only: GET and HEAD only');
    }
    const url = new URL(req.url ?? '/', 'http://console');
    const path = url.pathname;
    if (path === CONSOLE_PREFIX.slice(0, -1)) {
      res.writeHead(308, { ...SECURITY_HEADERS, location: CONSOLE_PREFIX });
      res.end();
      return;
    }
    const rest = path.slice(CONSOLE_PREFIX.length);
    if (rest.startsWith('assets/')) return this.asset(res, rest.slice('assets/'.length));
    if (rest.startsWith('api/')) return this.api(res, rest.slice('api/'.length), url.searchParams);
    this.send(res, 200, 'text/html; charset=utf-8', shellHtml());
  }

  private async asset(res: ServerResponse, name: string): Promise<void> {
    this.assets ??= buildConsoleAssets();
    let assets: ConsoleAssets;
    try {
      assets = await this.assets;
    } catch (error) {
      this.assets = undefined;
      throw error;
    }
    if (name === 'console.js') return this.send(res, 200, 'text/javascript; charset=utf-8', assets.js, 'private, max-age=60', false);
    if (name === 'console.css') return this.send(res, 200, 'text/css; charset=utf-8', assets.css, 'private, max-age=60', false);
    throw new HttpError(404, `no console asset ${name}`);
  }

  private async api(res: ServerResponse, route: string, query: URLSearchParams): Promise<void> {
    const json = (value: unknown): void => this.send(res, 200, 'application/json', JSON.stringify(maskTokens(value)));
    if (route === 'fleet') return json(await this.source.fleet());
    if (route === 'executions') return json(await this.source.executions(executionFilterOf(query)));
    if (route.startsWith('executions/')) {
      const arn = decodeSegment(route.slice('executions/'.length));
      if (!/^arn:aws[a-z-]*:states:[^:]*:\d*:execution:[^:]+:[^:]+$/.test(arn)) throw new HttpError(400, 'not a Step Functions execution ARN');
      const view = await this.source.execution(arn);
      if (!view) throw new HttpError(404, `no execution ${arn}`);
      return json(view);
    }
    if (route.startsWith('things/')) {
      const thing = decodeSegment(route.slice('things/'.length));
      if (!/^[a-zA-Z0-9:_-]{1,128}$/.test(thing)) throw new HttpError(400, 'not a thing name');
      const view = await this.source.thing(thing);
      if (!view) throw new HttpError(404, `no rotation recorded for thing ${thing}`);
      return json(view);
    }
    throw new HttpError(404, `no console API ${route}`);
  }

  /** Pages and API answers are masked by shape too; the bundle (code from the repository) is not. */
  private send(res: ServerResponse, status: number, type: string, body: string, cache = 'no-store', mask = true): void {
    const bytes = Buffer.from(mask ? maskTokenText(body) : body, 'utf8');
    res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': type, 'content-length': String(bytes.length), 'cache-control': cache });
    res.end(res.req.method === 'HEAD' ? undefined : bytes);
  }
}
