import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { loadWiring, REPO_ROOT } from '../../wiring/index.js';

/**
 * The IAM actions each function's code needs, derived from the code itself: every
 * `new XxxCommand(` the function's file reaches — its own code, and the declarations of the
 * functions/ modules it imports, followed symbol by symbol (a shared module counts only for
 * what is actually used) — mapped to the action IAM checks for it.
 */
const FUNCTIONS_DIR = join(REPO_ROOT, 'functions');

function read(file: string): string {
  return readFileSync(file, 'utf8');
}

const TOP_LEVEL = /^(?:export\s+)?(?:default\s+)?(?:async\s+)?(?:function|const|let|class|interface|type)\s+(\w+)/;

/** The top-level declarations of a module: name → its text (up to the next declaration). */
function declarations(source: string): Map<string, string> {
  const chunks = new Map<string, string>();
  let current: { name: string; lines: string[] } | undefined;
  for (const line of source.split('\n')) {
    const match = TOP_LEVEL.exec(line);
    if (match) {
      if (current) chunks.set(current.name, current.lines.join('\n'));
      current = { name: match[1], lines: [line] };
    } else if (current) {
      current.lines.push(line);
    }
  }
  if (current) chunks.set(current.name, current.lines.join('\n'));
  return chunks;
}

/** Names a module imports from other functions/ modules: local name → where it is declared. */
function localImports(file: string, source: string): Map<string, { file: string; name: string }> {
  const names = new Map<string, { file: string; name: string }>();
  for (const match of source.matchAll(/import\s+(?:type\s+)?\{([^}]*)\}\s+from\s+'(\.{1,2}\/[^']+)\.js'/g)) {
    const target = resolve(dirname(file), `${match[2]}.ts`);
    // domain/ is pure (no SDK) by design; only functions/ code can call AWS.
    if (!target.startsWith(FUNCTIONS_DIR) || !existsSync(target)) continue;
    for (const part of match[1].split(',')) {
      const [exported, local] = part.replace(/^\s*type\s+/, '').split(/\s+as\s+/).map((name) => name.trim());
      if (exported) names.set(local ?? exported, { file: target, name: exported });
    }
  }
  return names;
}

interface Reached {
  file: string;
  /** The code reached in that file. */
  text: string;
}

/** The code a function's handler file reaches: the whole file, then imported declarations, transitively. */
function reachedCode(entry: string): Reached[] {
  const reached: Reached[] = [];
  const seen = new Set<string>();
  const visit = (file: string, text: string): void => {
    reached.push({ file, text });
    const source = read(file);
    const own = declarations(source);
    const imported = localImports(file, source);
    for (const [identifier] of text.matchAll(/\b[A-Za-z_$][\w$]*\b/g)) {
      const target = own.has(identifier) && file !== entry ? { file, name: identifier } : imported.get(identifier);
      if (!target) continue;
      const key = `${target.file}#${target.name}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const body = declarations(read(target.file)).get(target.name);
      if (body !== undefined) visit(target.file, body);
    }
  };
  visit(entry, read(entry));
  return reached;
}

/** Which SDK package each imported name comes from, per file. */
function importedFrom(source: string): Map<string, string> {
  const names = new Map<string, string>();
  // functions/aws/acm-pca.ts stands in for @aws-sdk/client-acm-pca (see its comment): its commands count as that package's.
  for (const match of source.matchAll(/import\s+(?:type\s+)?\{([^}]*)\}\s+from\s+'(@aws-sdk\/[^']+|(?:\.{1,2}\/)+aws\/acm-pca\.js)'/g)) {
    for (const part of match[1].split(',')) {
      const name = part.replace(/^\s*type\s+/, '').split(/\s+as\s+/)[0].trim();
      if (name) names.set(name, match[2].endsWith('aws/acm-pca.js') ? '@aws-sdk/client-acm-pca' : match[2]);
    }
  }
  return names;
}

const DOCUMENT_CLIENT_ACTIONS: Record<string, string> = {
  Get: 'dynamodb:GetItem',
  Put: 'dynamodb:PutItem',
  Update: 'dynamodb:UpdateItem',
  Delete: 'dynamodb:DeleteItem',
  Query: 'dynamodb:Query',
  Scan: 'dynamodb:Scan',
  BatchGet: 'dynamodb:BatchGetItem',
  BatchWrite: 'dynamodb:BatchWriteItem',
};

/** TransactWriteItems is authorised per item: the item actions it contains. */
function transactionActions(source: string): string[] {
  const kinds: Record<string, string> = { Put: 'dynamodb:PutItem', Update: 'dynamodb:UpdateItem', Delete: 'dynamodb:DeleteItem', ConditionCheck: 'dynamodb:ConditionCheckItem' };
  return Object.entries(kinds)
    .filter(([kind]) => new RegExp(`\\b${kind}:\\s*\\{`).test(source))
    .map(([, action]) => action);
}

function actionFor(command: string, pkg: string, source: string): string[] {
  const operation = command.replace(/Command$/, '');
  switch (pkg) {
    case '@aws-sdk/client-iot':
      return [`iot:${operation}`];
    case '@aws-sdk/client-iot-data-plane':
      return [`iot:${operation}`];
    case '@aws-sdk/client-acm-pca':
      return [`acm-pca:${operation}`];
    case '@aws-sdk/client-sfn':
      return [`states:${operation}`];
    case '@aws-sdk/client-sns':
      return [`sns:${operation}`];
    case '@aws-sdk/client-lambda':
      return [operation === 'Invoke' ? 'lambda:InvokeFunction' : `lambda:${operation}`];
    case '@aws-sdk/client-dynamodb':
      return operation === 'TransactWriteItems' ? transactionActions(source) : [`dynamodb:${operation}`];
    case '@aws-sdk/lib-dynamodb':
      if (operation === 'TransactWrite') return transactionActions(source);
      if (!DOCUMENT_CLIENT_ACTIONS[operation]) throw new Error(`no IAM mapping for lib-dynamodb ${command}`);
      return [DOCUMENT_CLIENT_ACTIONS[operation]];
    default:
      throw new Error(`no IAM mapping for ${command} from ${pkg}`);
  }
}

function actionsOf(name: string): string[] {
  const actions = new Set<string>();
  for (const { file, text } of reachedCode(join(FUNCTIONS_DIR, `${name}.ts`))) {
    const imports = importedFrom(read(file));
    for (const match of text.matchAll(/new\s+(\w+Command)\s*\(/g)) {
      const pkg = imports.get(match[1]);
      if (!pkg) throw new Error(`${relative(REPO_ROOT, file)} builds ${match[1]} without importing it from an AWS SDK package`);
      for (const action of actionFor(match[1], pkg, text)) actions.add(action);
    }
  }
  return [...actions].sort();
}

const wiring = loadWiring();

describe('function permissions', () => {
  it('has a source file for every function in the wiring', () => {
    for (const name of Object.keys(wiring.functions)) expect(existsSync(join(FUNCTIONS_DIR, `${name}.ts`))).toBe(true);
  });

  it.each(Object.keys(wiring.functions))('%s is granted exactly the actions its code calls', (name) => {
    expect(actionsOf(name)).toEqual(Object.keys(wiring.functions[name].permissions).sort());
  });
});

function typescriptFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    return statSync(path).isDirectory() ? typescriptFiles(path) : path.endsWith('.ts') ? [path] : [];
  });
}

describe('topics the functions publish to', () => {
  it('are never spelled outside domain/topics.ts', () => {
    const spelled = typescriptFiles(FUNCTIONS_DIR).filter((file) => read(file).includes('management/topic'));
    expect(spelled.map((file) => relative(REPO_ROOT, file))).toEqual([]);
  });

  it('are all made by topicFor, in the one module that publishes', () => {
    const publishers = typescriptFiles(FUNCTIONS_DIR).filter((file) => /new\s+PublishCommand\s*\(/.test(read(file)));
    expect(publishers.map((file) => relative(REPO_ROOT, file))).toEqual(['functions/core/device-channel.ts']);
    expect(read(publishers[0])).toMatch(/topic:\s*topicFor\(/);
  });
});

describe('message types each function may publish (issue 9, scenario 9)', () => {
  const KIND = 'deviceTopics:';
  /** MessageType.Key → 'wire_name', from the domain itself. */
  const { MessageType, CLOUD_TO_DEVICE, TrustMessageType, TRUST_CLOUD_TO_DEVICE } = jest.requireActual<typeof import('../../domain/topics')>('../../domain/topics');

  /** The message types a function's reached code hands to publishToDevice. */
  function publishedTypes(name: string): string[] {
    const types = new Set<string>();
    for (const { text } of reachedCode(join(FUNCTIONS_DIR, `${name}.ts`))) {
      for (const call of text.matchAll(/publishToDevice\([^;]*?type:\s*MessageType\.(\w+)/gs)) {
        const wire = (MessageType as Record<string, string>)[call[1]];
        if (!wire) throw new Error(`${name}: MessageType.${call[1]} is not in domain/topics.ts`);
        types.add(wire);
      }
      // Protocol v1.2: trust-store messages go through their own publisher.
      for (const call of text.matchAll(/publishTrustToDevice\([^;]*?type:\s*TrustMessageType\.(\w+)/gs)) {
        const wire = (TrustMessageType as Record<string, string>)[call[1]];
        if (!wire) throw new Error(`${name}: TrustMessageType.${call[1]} is not in domain/topics.ts`);
        types.add(wire);
      }
    }
    return [...types].sort();
  }

  it.each(Object.keys(wiring.functions))('%s may publish exactly the cloud → device types its code sends', (name) => {
    // Prepare
    const kind = wiring.functions[name].permissions['iot:Publish'];
    // Act
    const granted = kind === undefined ? [] : kind.startsWith(KIND) ? kind.slice(KIND.length).split(',').sort() : [`unscoped:${kind}`];
    // Assess
    expect(granted).toEqual(publishedTypes(name));
    for (const type of granted) expect([...CLOUD_TO_DEVICE, ...TRUST_CLOUD_TO_DEVICE] as readonly string[]).toContain(type);
  });
});
