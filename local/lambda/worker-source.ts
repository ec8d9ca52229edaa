/**
 * The code each function's worker thread runs, as a string (Worker with eval: true) so that it
 * runs the same under tsx, jest and a compiled build, none of which could load a .ts worker
 * file alike. It loads the function's ESM bundle once (a warm container), then runs one
 * invocation at a time, posting the JSON result or the error in Lambda's shape
 * ({errorType, errorMessage, trace}).
 *
 * A crash fault (local/edge/faults.ts) comes as crashAfterAwsCalls on the invoke message: the
 * worker counts the HTTP responses the function's SDK clients receive (every AWS call goes to
 * the edge over HTTP) and exits the moment the Nth one arrives, before the function reads it —
 * the call took effect at "AWS", the function never knew.
 *
 * With workerData.dynamodbDirect (local/dynamodb/direct-path.ts) the worker wraps node:http's
 * request before the bundle loads: DynamoDB calls skip the edge's hop, counted all the same.
 */
export const WORKER_SOURCE = String.raw`
const { parentPort, workerData } = require('node:worker_threads');
const { pathToFileURL } = require('node:url');

if (workerData.discardOutput) {
  // Nobody reads this function's output: drop it here instead of streaming it to the parent.
  const drop = (_chunk, encoding, callback) => {
    const done = typeof encoding === 'function' ? encoding : callback;
    if (typeof done === 'function') process.nextTick(done);
    return true;
  };
  process.stdout.write = drop;
  process.stderr.write = drop;
}

if (workerData.dynamodbDirect) {
  // local/dynamodb/direct-path.ts: a DynamoDB call the SDK addressed to the edge goes straight to
  // DynamoDB Local (counted in memory the main thread reads), unless the edge must see it.
  const direct = workerData.dynamodbDirect;
  const counts = new Int32Array(direct.counts);
  const control = new Int32Array(direct.control);
  const slots = new Map(direct.operations.map((operation, index) => [operation, index]));
  const PREFIX = 'DynamoDB_20120810.';
  const http = require('node:http');
  const request = http.request;
  const slotOf = (options) => {
    if (!options || typeof options !== 'object' || options instanceof URL) return undefined;
    if (Number(options.port) !== direct.edgePort || (options.host ?? options.hostname) !== direct.edgeHost) return undefined;
    if (Atomics.load(control, 0) !== 0) return undefined;
    const headers = options.headers ?? {};
    for (const name of Object.keys(headers)) {
      if (name.toLowerCase() !== 'x-amz-target') continue;
      const target = String(headers[name]);
      return target.startsWith(PREFIX) ? slots.get(target.slice(PREFIX.length)) : undefined;
    }
    return undefined;
  };
  http.request = function directRequest(options, ...rest) {
    const slot = slotOf(options);
    if (slot === undefined) return request.call(this, options, ...rest);
    Atomics.add(counts, slot, 1);
    return request.call(this, { ...options, host: direct.upstreamHost, hostname: undefined, port: direct.upstreamPort }, ...rest);
  };
  // The bundles import node:http as an ES module: its exports must see the wrapper too.
  require('node:module').syncBuiltinESMExports();
}

{
  // The answer of device-sim/memory-probe.ts (same channel, same shape), for this Lambda worker:
  // the high-water marks of its own heap and off-heap memory, sampled every 250 ms.
  const { getHeapStatistics } = require('node:v8');
  const { threadId, BroadcastChannel } = require('node:worker_threads');
  let peakHeap = 0;
  let peakExternal = 0;
  const record = () => {
    const stats = getHeapStatistics();
    peakHeap = Math.max(peakHeap, stats.total_heap_size);
    peakExternal = Math.max(peakExternal, stats.external_memory);
    return stats;
  };
  record();
  setInterval(record, 250).unref();
  const probes = new BroadcastChannel('rotor:memory-probe');
  probes.unref();
  probes.onmessage = (event) => {
    if (event.data?.type !== 'ask') return;
    const stats = record();
    // This thread's CPU time (device-sim/memory-probe.ts threadCpuMs): Linux only.
    let cpuMs;
    try {
      const stat = require('node:fs').readFileSync('/proc/thread-self/stat', 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      cpuMs = (Number(fields[11]) + Number(fields[12])) * 10;
    } catch {}
    probes.postMessage({
      type: 'answer', id: event.data.id, kind: 'lambda:' + process.env.AWS_LAMBDA_FUNCTION_NAME, threadId,
      heapBytes: stats.total_heap_size, peakHeapBytes: peakHeap, externalBytes: stats.external_memory, peakExternalBytes: peakExternal,
      ...(cpuMs === undefined ? {} : { cpuMs }),
    });
  };
}

// Crash faults: the responses still allowed to the invocation in flight (undefined: no fault).
let responsesBeforeCrash;
function dieNow() {
  process.exit(1);
}
require('node:diagnostics_channel').subscribe('http.client.response.finish', () => {
  if (responsesBeforeCrash === undefined) return;
  responsesBeforeCrash -= 1;
  if (responsesBeforeCrash <= 0) dieNow();
});

let loaded;
function load() {
  loaded ??= import(pathToFileURL(workerData.bundlePath).href).then(
    (module) => {
      const handler = module[workerData.handlerName] ?? module.default?.[workerData.handlerName];
      if (typeof handler !== 'function') {
        const error = new Error(workerData.bundlePath + ' does not export a function named ' + workerData.handlerName);
        error.name = 'Runtime.HandlerNotFound';
        throw error;
      }
      return handler;
    },
    (cause) => {
      const error = new Error(String(cause && cause.message ? cause.message : cause));
      error.name = 'Runtime.ImportModuleError';
      error.stack = cause && cause.stack;
      throw error;
    },
  );
  return loaded;
}

function errorPayload(error) {
  if (error instanceof Error) {
    return {
      errorType: error.name || 'Error',
      errorMessage: error.message,
      trace: typeof error.stack === 'string' ? error.stack.split('\n') : [],
    };
  }
  return { errorType: 'Error', errorMessage: typeof error === 'string' ? error : JSON.stringify(error), trace: [] };
}

parentPort.on('message', async (message) => {
  if (message.type !== 'invoke') return;
  const { id, event, context: base } = message;
  responsesBeforeCrash = typeof message.crashAfterAwsCalls === 'number' ? message.crashAfterAwsCalls : undefined;
  if (responsesBeforeCrash === 0) dieNow();
  let settled = false;
  const reply = (outcome) => {
    if (settled) return;
    settled = true;
    parentPort.postMessage({ type: 'done', id, ...outcome });
  };
  const succeed = (value) => {
    try {
      reply({ ok: true, payload: JSON.stringify(value === undefined ? null : value) });
    } catch (error) {
      reply({ ok: false, error: { errorType: 'Runtime.ResponseSerializationError', errorMessage: String(error && error.message), trace: [] } });
    }
  };
  const fail = (error) => reply({ ok: false, error: errorPayload(error) });
  const context = {
    ...base,
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => Math.max(0, base.deadlineMs - Date.now()),
    done: (error, value) => (error ? fail(error) : succeed(value)),
    succeed: (value) => succeed(value),
    fail: (error) => fail(error),
  };
  try {
    const handler = await load();
    const callback = (error, value) => (error ? fail(error) : succeed(value));
    const result = handler(JSON.parse(event), context, callback);
    if (result && typeof result.then === 'function') succeed(await result);
    else if (handler.length < 3) succeed(result);
  } catch (error) {
    fail(error);
  }
});
`;
