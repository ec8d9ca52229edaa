import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DescribeStateMachineCommand, GetExecutionHistoryCommand, ListExecutionsCommand, SFNClient } from '@aws-sdk/client-sfn';
import type { Page } from 'playwright-core';
import { runDemo, type DemoReport } from '../../cli/demo/index.js';
import { runOperatorCli } from '../../cli/operator/index.js';
import type { StatusReport } from '../../cli/operator/status.js';
import type { Trace } from '../../cli/operator/trace.js';
import { CONTENT_SECURITY_POLICY } from '../../local/console/console-server.js';
import { stateGraph } from '../../local/console/execution-view.js';
import { MASKED } from '../../local/console/mask.js';
import { capturedIo } from '../unit/cli/fake-target.js';
import { describeWithBrowser, launchChromium, type Browser } from '../fixtures/browser.js';
import { describeWithBundles } from '../fixtures/bundles.js';

/**
 * The console in a real browser (Debian's Chromium through playwright-core) over REAL
 * rotations: `rotor demo` rotates two devices, one sending a garbage CSR, and while the runtime
 * is still up (the hook `--keep` uses) the pages are checked against what the operator
 * commands say, every answer the console serves is searched for the executions' task tokens,
 * and screenshots go to .rotor/test-artifacts/console/. Needs the bundles and Chromium.
 */
const SUITE = 'test/e2e/console.test.ts';
const describeBoth = describeWithBundles(SUITE) === describe ? describeWithBrowser(SUITE) : describe.skip;

const ARTIFACTS = join(process.cwd(), '.rotor', 'test-artifacts', 'console');
const TOKEN = /AQ[A-Za-z0-9_-]{200,}/g;
const HAPPY_PATH_AFTER = (graph: ReturnType<typeof stateGraph>, from: string): string[] => {
  // The states the definition's Next edges lead to from `from`: where the execution would have gone.
  const out: string[] = [];
  let at = graph.edges.find((e) => e.from === from && e.kind === 'next')?.to;
  while (at && !out.includes(at)) {
    out.push(at);
    const here = at;
    at = graph.edges.find((e) => e.from === here && e.kind === 'next')?.to;
  }
  return out;
};

function rawRequest(url: string, options: { method?: string; host?: string }): Promise<number> {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ host: target.hostname, port: target.port, path: target.pathname, method: options.method ?? 'GET', headers: options.host ? { host: options.host } : {} }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

describeBoth('the local console in a browser, after real rotations', () => {
  jest.setTimeout(240_000);
  let workDir = '';
  let report: DemoReport;
  const lines: string[] = [];
  /** Filled while the runtime is up. */
  const seen: {
    status?: Extract<StatusReport, { kind: 'fleet' }>;
    trace?: Trace;
    thingLink?: string;
    escalationLinksConsole?: boolean;
    consoleUrl?: string;
    fleetCards?: Record<string, number>;
    fleetRefreshed?: boolean;
    failedArn?: string;
    outcomes?: Record<string, string>;
    failureText?: string;
    failedList?: { status: string; name: string }[];
    thingLinks?: string[];
    tokens: string[];
    served: { url: string; body: string }[];
    pages: { url: string; html: string }[];
    graph?: ReturnType<typeof stateGraph>;
    csp?: string | null;
    postStatus?: number;
    foreignHostStatus?: number;
    pageErrors: string[];
  } = { tokens: [], served: [], pages: [], pageErrors: [] };

  async function cliJson<T>(...args: string[]): Promise<T> {
    const io = capturedIo();
    const code = await runOperatorCli([...args, '--json', '--local', '--data-dir', join(workDir, 'aws')], { io });
    if (code !== 0) throw new Error(`rotor ${args.join(' ')} exited ${code}: ${io.stderr.join('\n')}`);
    return JSON.parse(io.stdout.join('\n')) as T;
  }

  async function open(page: Page, url: string, shot: string): Promise<void> {
    await page.goto(url);
    await page.waitForSelector('#page[data-loaded="true"]', { timeout: 30_000 });
    await page.screenshot({ path: join(ARTIFACTS, `${shot}.png`) });
    await page.screenshot({ path: join(ARTIFACTS, `${shot}-full.png`), fullPage: true });
    seen.pages.push({ url, html: await page.content() });
  }

  async function inspect(consoleUrl: string, awsEndpoint: string, stateMachineArn: string): Promise<void> {
    seen.status = await cliJson<Extract<StatusReport, { kind: 'fleet' }>>('status');
    const failedRow = seen.status.rows.find((r) => r.status === 'FAILED');
    if (!failedRow) throw new Error('the demo made no failed rotation');
    seen.failedArn = failedRow.executionArn;
    seen.trace = await cliJson<Trace>('trace', '--execution', failedRow.executionArn);
    const thing = await cliJson<Extract<StatusReport, { kind: 'thing' }>>('status', '--thing', failedRow.thing);
    seen.thingLink = thing.current?.link;
    seen.consoleUrl = consoleUrl;

    // The tokens the executions were given, read from the public history with its data.
    const sfn = new SFNClient({ endpoint: awsEndpoint, region: 'us-east-1', credentials: { accessKeyId: 'console-e2e', secretAccessKey: 'console-e2e' } });
    try {
      const machine = await sfn.send(new DescribeStateMachineCommand({ stateMachineArn }));
      seen.graph = stateGraph(machine.definition ?? '');
      const listed = await sfn.send(new ListExecutionsCommand({ stateMachineArn, maxResults: 1000 }));
      for (const execution of listed.executions ?? []) {
        const history = await sfn.send(new GetExecutionHistoryCommand({ executionArn: execution.executionArn, includeExecutionData: true, maxResults: 1000 }));
        const text = JSON.stringify(history.events);
        seen.tokens.push(...(text.match(TOKEN) ?? []));
        // The escalation Record failure composed (its output, published by Escalate) links the local console.
        if (execution.executionArn === failedRow.executionArn) seen.escalationLinksConsole = text.includes(`${consoleUrl}executions/${failedRow.executionArn}`);
      }
    } finally {
      sfn.destroy();
    }

    seen.csp = (await fetch(consoleUrl)).headers.get('content-security-policy');
    seen.postStatus = await rawRequest(`${consoleUrl}api/fleet`, { method: 'POST' });
    seen.foreignHostStatus = await rawRequest(`${consoleUrl}api/fleet`, { host: 'rebound.example:80' });

    let browser: Browser | undefined;
    try {
      browser = await launchChromium();
      const page = await browser.context.newPage();
      page.on('pageerror', (error) => seen.pageErrors.push(error.message));
      page.on('response', (response) => {
        if (!response.url().includes('/console/') || response.url().includes('/assets/')) return;
        void response.text().then((body) => seen.served.push({ url: response.url(), body }), () => undefined);
      });

      await open(page, consoleUrl, 'fleet');
      seen.fleetCards = Object.fromEntries(
        await page.$$eval('#counts [data-status]', (cards) => cards.map((c) => [c.getAttribute('data-status') ?? '', Number(c.querySelector('.count')?.textContent)])),
      );
      const stamp = await page.textContent('#updated');
      // The page's CSP forbids eval, so waitForFunction cannot run there: poll from here.
      for (let i = 0; i < 150 && !seen.fleetRefreshed; i += 1) {
        await page.waitForTimeout(100);
        seen.fleetRefreshed = (await page.textContent('#updated')) !== stamp;
      }

      await open(page, `${consoleUrl}executions/${failedRow.executionArn}`, 'execution-failed');
      seen.outcomes = Object.fromEntries(await page.$$eval('svg.graph .state', (nodes) => nodes.map((n) => [n.getAttribute('data-state') ?? '', n.getAttribute('data-outcome') ?? ''])));
      seen.failureText = (await page.textContent('#failure')) ?? '';

      await open(page, `${consoleUrl}executions?status=FAILED`, 'executions-failed');
      seen.failedList = await page.$$eval('#executions tbody tr', (rows) => rows.map((r) => ({ status: r.getAttribute('data-status') ?? '', name: r.querySelector('a')?.textContent ?? '' })));

      await open(page, `${consoleUrl}things/${failedRow.thing}`, 'thing');
      seen.thingLinks = await page.$$eval('a[href*="/console/executions/"]', (links) => links.map((a) => decodeURIComponent(a.getAttribute('href') ?? '')));
      // Let the fleet page's last refreshes land in `served`.
      await page.waitForTimeout(200);
    } finally {
      await browser?.close();
    }
  }

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    workDir = mkdtempSync(join(tmpdir(), 'rotor-console-e2e-'));
    report = await runDemo(
      {
        devices: 2,
        faults: 'garbage-csr=1',
        seed: 1,
        dataDir: workDir,
        timeScale: 0.01,
        settings: { csrTimeoutSeconds: 600, csrRetryIntervalSeconds: 100, csrRequestRetries: 1, ackTimeoutSeconds: 600 },
        timeoutSeconds: 120,
        beforeStop: async (_report, consoleUrl) => {
          const endpoints = JSON.parse(readFileSync(join(workDir, 'aws', 'endpoints.json'), 'utf8')) as { awsEndpoint: string; stateMachineArn: string };
          await inspect(consoleUrl, endpoints.awsEndpoint, endpoints.stateMachineArn);
        },
      },
      { out: (line) => lines.push(line), progressStream: process.stdout, tty: false },
    );
  });

  afterAll(() => {
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  });

  it('rotated one device and failed the one with the garbage CSR', () => {
    expect(report.rotated).toBe(1);
    expect(report.failed).toEqual({ CSR_REJECTED: 1 });
    expect(lines.some((line) => /^console: http:\/\/127\.0\.0\.1:\d+\/console\/$/.test(line))).toBe(true);
  });

  it('shows on the fleet page the counts `rotor status --json` gives, and refreshes them', () => {
    const status = seen.status!;
    expect(seen.fleetCards).toMatchObject({ TOTAL: status.total, ...status.counts });
    expect(seen.fleetCards).toMatchObject({ SUCCEEDED: 1, FAILED: 1, IN_PROGRESS: 0 });
    expect(seen.fleetRefreshed).toBe(true);
  });

  it('colours the failed execution: its failing state failed (caught), the Fail state failed, the states after it not reached', () => {
    const failing = seen.trace!.failure!.state!;
    expect(failing).toBe('Issue certificate');
    expect(seen.outcomes![failing]).toBe('caught');
    expect(seen.outcomes!['Rotation failed']).toBe('failed');
    expect(seen.outcomes!['Claim device']).toBe('succeeded');
    expect(seen.failureText).toContain(`Failed in ${failing}`);
    expect(seen.failureText).toContain('CsrRejected');
  });

  it('draws every state of the definition, and those after the failing one on its Next path as not reached', () => {
    const graph = seen.graph!;
    const after = HAPPY_PATH_AFTER(graph, seen.trace!.failure!.state!);
    expect(after.length).toBeGreaterThan(0);
    for (const state of after) expect([state, seen.outcomes![state]]).toEqual([state, 'not-reached']);
    expect(Object.keys(seen.outcomes!).sort()).toEqual(graph.nodes.map((n) => n.name).sort());
  });

  it('is where `rotor trace --local`, `rotor status --local` and the escalation link an execution', () => {
    const page = `${seen.consoleUrl}executions/${seen.failedArn}`;
    expect(seen.trace!.link).toBe(page);
    expect(seen.thingLink).toBe(page);
    expect(seen.escalationLinksConsole).toBe(true);
    expect(seen.pages.map((p) => p.url)).toContain(page);
  });

  it('filters the executions list by status, and links the thing page to its executions', () => {
    expect(seen.failedList).toHaveLength(1);
    expect(seen.failedList![0].status).toBe('FAILED');
    expect(seen.failedArn!.endsWith(`:${seen.failedList![0].name}`)).toBe(true);
    expect(seen.thingLinks!.some((href) => href.endsWith(seen.failedArn!))).toBe(true);
  });

  it('serves no task token in any page or API answer, and shows where one was masked', () => {
    expect(seen.tokens.length).toBeGreaterThan(0);
    expect(seen.served.length).toBeGreaterThan(4);
    for (const { url, body } of [...seen.served, ...seen.pages.map((p) => ({ url: p.url, body: p.html }))]) {
      for (const token of seen.tokens) expect([url, body.includes(token)]).toEqual([url, false]);
    }
    expect(seen.served.some((s) => s.body.includes(MASKED))).toBe(true);
  });

  it('is read-only, loopback-only, forbids remote loads, and ran without script errors', () => {
    expect(seen.csp).toBe(CONTENT_SECURITY_POLICY);
    expect(seen.csp).toContain("default-src 'none'");
    expect(seen.csp).not.toMatch(/https?:|\*/);
    expect(seen.postStatus).toBe(405);
    expect(seen.foreignHostStatus).toBe(403);
    expect(seen.pageErrors).toEqual([]);
  });
});
