import { readFileSync, writeFileSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import type { Command } from 'commander';
import { buildConsoleAssets } from '../../local/console/console-server.js';
import { REPORT_DATA_ID, type ReportSpec } from '../../local/console/report-spec.js';
import { ReportError, reportSpec } from './report-model.js';

export { reportSpec, reportKind, histogram, progressSeries, ReportError } from './report-model.js';

/**
 * `rotor report FILE [--html OUT]`: any report demo, bench or simulate writes, as one
 * self-contained HTML page with charts (chart.js, bundled into the page by esbuild): it opens
 * from disk, offline, and its Content-Security-Policy forbids loading anything from anywhere.
 */
export const REPORT_CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'";

/** JSON inside a <script> element: nothing in it may close the element. */
function scriptSafe(text: string): string {
  return text.replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export async function reportHtml(spec: ReportSpec): Promise<string> {
  const assets = await buildConsoleAssets('report-main.ts');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${REPORT_CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(spec.title)}</title>
<style>${assets.css}
.chart { height: 360px; }</style>
</head>
<body>
<header class="top"><span class="brand">Rotor</span><span class="where">report</span></header>
<main id="page"><noscript>This report draws its charts with JavaScript.</noscript></main>
<script type="application/json" id="${REPORT_DATA_ID}">${scriptSafe(JSON.stringify(spec))}</script>
<script>${assets.js.replace(/<\/script/gi, '<\\/script')}</script>
</body>
</html>
`;
}

export function readReport(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ReportError(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ReportError(`${file} is not JSON: ${(error as Error).message}`);
  }
}

export function defaultHtmlPath(file: string): string {
  return resolve(file).replace(/\.json$/i, '') + '.html';
}

export async function renderReport(file: string, out: string | undefined): Promise<{ out: string; spec: ReportSpec }> {
  const spec = reportSpec(readReport(file), basename(file));
  const target = out ?? defaultHtmlPath(file);
  writeFileSync(target, await reportHtml(spec));
  return { out: target, spec };
}

export function registerReportCommand(program: Command, out: (line: string) => void = (line) => process.stdout.write(`${line}\n`)): Command {
  program
    .command('report')
    .description('render a report written by demo, bench or simulate as one self-contained HTML page with charts')
    .argument('<file>', 'the report JSON (rotor demo --report, npm run bench -- --report, rotor simulate --report)')
    .option('--html <out>', 'where to write the page (default: FILE with .html)')
    .action(async (file: string, opts: { html?: string }) => {
      const { out: written, spec } = await renderReport(file, opts.html);
      out(`${spec.kind} report ${file}: ${spec.charts.length} charts (${spec.charts.map((c) => c.id).join(', ')})`);
      out(`  ${written}`);
    });
  return program;
}
