// moved-check.sh's two steps (see there):
//   state PLAN_JSON SCHEMA_JSON          a state (format 4) holding every resource the plan
//                                        creates, with the values it planned; what stays unknown
//                                        until apply (ids, ARNs) gets a plausible made-up value
//   settle STATE PLAN_JSON               the state again, with what a plan against it computed
//                                        (an attribute that was unknown before a made-up id it
//                                        refers to existed: a policy's role, a rule's queue URL);
//                                        exits 3 while that plan still creates or deletes
//   compare STATE OLD_PLAN NEW_PLAN      both trees' plans against that state: the new one must
//                                        create and delete nothing, and act on each resource as
//                                        the old one does, at its old address or through a move
import { readFileSync } from 'node:fs';

const PROVIDER = 'registry.terraform.io/hashicorp/aws';
const read = (file) => JSON.parse(readFileSync(file, 'utf8'));

function service(type) {
  const table = [
    ['aws_cloudwatch_log_group', 'logs'],
    ['aws_cloudwatch_', 'cloudwatch'],
    ['aws_sfn_', 'states'],
    ['aws_iam_', 'iam'],
    ['aws_lambda_', 'lambda'],
  ];
  const known = table.find(([prefix]) => type.startsWith(prefix));
  return known ? known[1] : type.split('_')[1];
}

/** A made-up value of an attribute's type, for what is known only after apply. */
function madeUp(type, label, name) {
  if (type === 'string') return `${label}-${name}`;
  if (type === 'number') return 0;
  if (type === 'bool') return false;
  if (Array.isArray(type) && (type[0] === 'list' || type[0] === 'set')) return [];
  if (Array.isArray(type) && type[0] === 'map') return {};
  return null;
}

/**
 * What apply would have filled in: an id, an ARN of the resource's own service, a URL for a
 * queue, a key id, and a value of its type for any other identifier (…_arn, …_id, …_url) still unknown.
 */
function applied(resource, unknown, attributes) {
  const values = { ...resource.values };
  const label = String(values.name ?? (resource.index === undefined ? resource.name : `${resource.name}-${resource.index}`));
  values.id ??= label;
  if (resource.type === 'aws_sqs_queue') values.url ??= `https://sqs.eu-west-1.amazonaws.com/123456789012/${label}`;
  if (resource.type === 'aws_kms_key') values.key_id ??= '0f3a8c1e-5b7d-4e2a-9c61-2d8f4b7a6e10';
  // Dropped again below where the resource has no ARN.
  values.arn ??=
    resource.type === 'aws_cloudwatch_log_group'
      ? `arn:aws:logs:eu-west-1:123456789012:log-group:${label}`
      : `arn:aws:${service(resource.type)}:eu-west-1:123456789012:${resource.type}/${label}`;
  for (const [name, isUnknown] of Object.entries(unknown ?? {})) {
    // Only identifiers that apply computes (never an argument, which a plan against the state
    // fills in: settle), and only those: an invented value of a setting (a topic's FIFO scope,
    // say) would be refused by the provider's own checks.
    const attribute = attributes[name];
    const computedOnly = attribute?.computed && !attribute.optional && !attribute.required;
    if (isUnknown === true && values[name] === undefined && computedOnly && /(^|_)(arn|id|url)$/.test(name)) values[name] = madeUp(attribute.type, label, name);
  }
  return values;
}

function state(planFile, schemaFile) {
  const plan = read(planFile);
  const schemas = read(schemaFile).provider_schemas[PROVIDER];
  const unknown = new Map((plan.resource_changes ?? []).map((c) => [c.address, c.change.after_unknown]));
  const groups = new Map();
  for (const resource of plan.planned_values.root_module.resources ?? []) {
    const key = `${resource.mode}.${resource.type}.${resource.name}`;
    if (!groups.has(key)) groups.set(key, { mode: resource.mode, type: resource.type, name: resource.name, provider: `provider["${PROVIDER}"]`, instances: [] });
    const kind = resource.mode === 'managed' ? schemas.resource_schemas : schemas.data_source_schemas;
    const attributes = applied(resource, unknown.get(resource.address), kind[resource.type].block.attributes);
    // Only what the schema declares: anything else makes the provider refuse the state.
    for (const name of Object.keys(attributes)) if (!(name in kind[resource.type].block.attributes) && !(name in (kind[resource.type].block.block_types ?? {}))) delete attributes[name];
    groups.get(key).instances.push({
      ...(resource.index === undefined ? {} : { index_key: resource.index }),
      schema_version: kind[resource.type].version ?? 0,
      attributes,
      sensitive_attributes: [],
    });
  }
  return { version: 4, terraform_version: plan.terraform_version, serial: 1, lineage: 'moved-check', outputs: {}, resources: [...groups.values()], check_results: null };
}

function settle(stateFile, planFile) {
  const current = read(stateFile);
  const changes = read(planFile).resource_changes.filter((c) => c.mode === 'managed');
  const after = new Map(changes.map((c) => [c.address, c.change]));
  for (const resource of current.resources.filter((r) => r.mode === 'managed')) {
    for (const instance of resource.instances) {
      const address = `${resource.type}.${resource.name}${instance.index_key === undefined ? '' : `[${JSON.stringify(instance.index_key)}]`}`;
      const change = after.get(address);
      if (!change) continue;
      // What the plan computed from the made-up ids: unset until now, or what made it replace.
      const replaced = new Set((change.replace_paths ?? []).map((path) => path[0]));
      for (const [name, value] of Object.entries(change.after ?? {})) if (value !== null && (instance.attributes[name] == null || replaced.has(name))) instance.attributes[name] = value;
    }
  }
  current.serial += 1;
  return { state: current, settled: changes.every((c) => !c.change.actions.includes('create') && !c.change.actions.includes('delete')) };
}

function compare(stateFile, oldPlanFile, newPlanFile) {
  const stateAddresses = read(stateFile)
    .resources.filter((r) => r.mode === 'managed')
    .flatMap((r) => r.instances.map((i) => `${r.type}.${r.name}${i.index_key === undefined ? '' : `[${JSON.stringify(i.index_key)}]`}`));
  const changes = (file) => read(file).resource_changes.filter((c) => c.mode === 'managed');
  const before = new Map(changes(oldPlanFile).map((c) => [c.address, c.change.actions.join('+')]));
  const after = changes(newPlanFile);
  const problems = [];
  for (const [address, actions] of before) if (actions !== 'no-op' && actions !== 'update') problems.push(`OLD_REV against its own state: ${address} ${actions} (the made-up state is incomplete)`);
  const moves = [];
  const seen = new Set();
  for (const change of after) {
    const actions = change.change.actions.join('+');
    const from = change.previous_address ?? change.address;
    seen.add(from);
    if (change.previous_address) moves.push(`${change.previous_address} -> ${change.address}`);
    if (actions.includes('create') || actions.includes('delete')) problems.push(`${change.address}: ${actions}`);
    else if (before.has(from) && before.get(from) !== actions) problems.push(`${change.address}: ${actions}, where OLD_REV plans ${before.get(from)}`);
  }
  for (const address of stateAddresses) if (!seen.has(address)) problems.push(`${address} is in the state but the new plan does not act on it`);
  const tally = {};
  for (const change of after) tally[change.change.actions.join('+')] = (tally[change.change.actions.join('+')] ?? 0) + 1;
  console.log(`moved-check: ${stateAddresses.length} resources in the state; the new plan: ${JSON.stringify(tally)}, ${moves.length} moved`);
  for (const move of moves) console.log(`  moved ${move}`);
  if (problems.length > 0) {
    for (const problem of problems) console.error(`moved-check: ${problem}`);
    process.exit(1);
  }
  console.log('moved-check: no create, no delete, no replacement');
}

const [step, ...files] = process.argv.slice(2);
if (step === 'state' && files.length === 2) console.log(JSON.stringify(state(...files), null, 1));
else if (step === 'settle' && files.length === 2) {
  const { state: next, settled } = settle(...files);
  console.log(JSON.stringify(next, null, 1));
  process.exit(settled ? 0 : 3);
} else if (step === 'compare' && files.length === 3) compare(...files);
else {
  console.error('usage: moved-check-state.mjs state PLAN_JSON SCHEMA_JSON | compare STATE OLD_PLAN NEW_PLAN');
  process.exit(2);
}
